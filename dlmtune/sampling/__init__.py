"""Sampling from masked diffusion LMs: LLaDA's semi-autoregressive sampler (`sampler`), with Fast-dLLM's
threshold decoding and KV caches (`kv_cache`), calling the model through `forward.DLMForward`."""

from dlmtune.sampling.forward import DLMForward
from dlmtune.sampling.kv_cache import CACHE_MODES, crop_cache, keep_positions
from dlmtune.sampling.sampler import (
    REMASKING,
    add_gumbel_noise,
    check_schedule,
    decode_completions,
    generate,
    num_transfer_tokens,
    select_commits,
    token_confidence,
)

__all__ = ["CACHE_MODES", "REMASKING", "DLMForward", "add_gumbel_noise", "check_schedule", "crop_cache",
           "decode_completions", "generate", "keep_positions", "num_transfer_tokens", "select_commits",
           "token_confidence"]
