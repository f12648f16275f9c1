"""Sample from a masked diffusion LM by iterative unmasking: LLaDA's semi-autoregressive sampler, plus
Fast-dLLM's accelerations (threshold parallel decoding, and a per-block prefix or dual KV cache; Fast-dLLM,
arXiv 2505.22618).

The sampler (facts from ML-GSAI/LLaDA generate.py): the prompt is followed by `gen_length` mask tokens,
decoded in blocks of `block_length`, left to right, each block given `steps // num_blocks` steps. Within a
block a row commits `masked // steps_per_block` tokens per step, the remainder one extra on the first
steps. A step runs the model (on a doubled batch for classifier-free guidance), picks a token per position
(argmax, with Gumbel noise at temperature > 0) and commits the most confident still-masked positions of
the current block ("low_confidence": the token's probability; "random": a uniform draw).

Deliberate differences from LLaDA's code, none of which changes its greedy output on a trained model:
- The mask token is never predicted (its logit is set to -inf): committing it would leave the position
  masked after its step was spent. Trained models give it ~zero probability anyway.
- Noise and random confidences are drawn only for the current block, from `generator` (a CPU generator
  may drive a GPU run). Seeded runs are reproducible, but the random stream is not LLaDA's.
- Steps after a block is fully decoded (`steps_per_block > block_length`) are skipped, not run idle.
- The per-step count is recomputed from the row's remaining masks and remaining steps; with no threshold
  this equals LLaDA's schedule fixed at the block start (see `num_transfer_tokens`).

Padding: batch prompts of different lengths with left padding and `attention_mask` (0 on pads). Position
ids follow the mask (first real token at 0), so a padded prompt sits where it would alone. The model is
called through `DLMForward` (`dlmtune.sampling.forward`), which passes only the arguments its forward
accepts: the native model classes take them all; remote code may not (see there).

Threshold (Fast-dLLM's parallel decoding): each step commits every masked position of the block whose
confidence is >= `threshold`, and at least as many as the plain schedule gives for the masks and steps
left (always at least one). A block ends when it has no masks left, so blocks usually take fewer steps than
`steps_per_block`, and never more: `steps` stays the budget. With `steps == gen_length` the floor is one
token per step, Fast-dLLM's rule; with fewer steps it is the plain sampler's count. Nothing reaching the threshold (e.g. threshold 1.0)
gives exactly the plain sampler. Needs low_confidence remasking (random draws are not probabilities).

KV caches (`cache="prefix"` or `"dual"`, Fast-dLLM's two): see `dlmtune.sampling.kv_cache`. A model whose
forward takes no position ids or cache decodes without one, with a warning. Classifier-free guidance works
with either cache (the conditional and unconditional rows share one batch, and one cache).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from dlmtune.sampling.forward import DLMForward
from dlmtune.sampling.kv_cache import CACHE_MODES, CacheLayout, cached_step, keep_positions

Tensor = torch.Tensor

REMASKING = ("low_confidence", "random")


def num_transfer_tokens(mask_count: Tensor, steps: int) -> Tensor:
    """Tokens to commit at each of `steps` steps for rows with `mask_count` [B] masked positions: an even
    split, one extra on each of the first `mask_count % steps` steps (LLaDA's schedule). Returns [B, steps].
    Taking column 0 after every step, from the masks left and steps left, rebuilds the same schedule."""
    extra = torch.arange(steps, device=mask_count.device) < (mask_count % steps).unsqueeze(1)
    return (mask_count // steps).unsqueeze(1) + extra.long()


def _uniform(shape: torch.Size, generator: torch.Generator | None, device: torch.device,
            dtype: torch.dtype = torch.float32) -> Tensor:
    """U(0, 1) draws made on the generator's own device (so a CPU generator can drive a GPU run)."""
    source = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=source, dtype=dtype).to(device)


def add_gumbel_noise(logits: Tensor, temperature: float, generator: torch.Generator | None = None) -> Tensor:
    """Scores whose argmax is a draw from softmax(logits / temperature) (Gumbel-max), computed as LLaDA
    does: exp(logits) / (-log u) ** temperature in float64, because in low precision the noise collapses
    into ties and the draw is biased. Temperature 0 returns `logits` (greedy)."""
    if temperature == 0:
        return logits
    u = _uniform(logits.shape, generator, logits.device, torch.float64)
    return logits.double().exp() / (-torch.log(u)) ** temperature


def token_confidence(logits: Tensor, tokens: Tensor, remasking: str,
                     generator: torch.Generator | None = None) -> Tensor:
    """Confidence in each chosen token, the order in which positions get committed: its probability
    under softmax(logits) ("low_confidence"), or a uniform draw ("random")."""
    if remasking == "random":
        return _uniform(tokens.shape, generator, tokens.device)
    probs = torch.softmax(logits.float(), dim=-1)
    return probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def select_commits(confidence: Tensor, candidates: Tensor, count: Tensor, threshold: float | None = None) -> Tensor:
    """Positions to commit [B, N]: per row the `count` [B] most confident `candidates` [B, N], plus (with
    a threshold) every candidate at least that confident. `count` must not exceed a row's candidates."""
    confidence = confidence.masked_fill(~candidates, -math.inf)
    order = confidence.argsort(dim=1, descending=True, stable=True)
    places = torch.arange(order.shape[1], device=order.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, places)
    chosen = rank < count.unsqueeze(1)
    if threshold is not None:
        chosen |= candidates & (confidence >= threshold)
    return chosen


@dataclass(frozen=True)
class _Settings:
    """The per-step choices of one `generate` call."""

    mask_id: int
    temperature: float
    remasking: str
    cfg_scale: float
    threshold: float | None
    shift_logits: bool
    generator: torch.Generator | None
    cache: str | None  # None, "prefix" or "dual"


@dataclass
class _Canvas:
    """The sequences being decoded, with what every forward needs alongside them."""

    tokens: Tensor  # [B, L]: prompt, then the answer, mask tokens where not yet decoded
    attention_mask: Tensor | None  # [B, L]; None when nothing is padded
    position_ids: Tensor  # [B, L]
    prompt_length: int

    @classmethod
    def start(cls, input_ids: Tensor, attention_mask: Tensor | None, mask_id: int, gen_length: int) -> _Canvas:
        answer = input_ids.new_full((input_ids.shape[0], gen_length), mask_id)
        tokens = torch.cat([input_ids, answer], dim=1)
        if attention_mask is None or bool(attention_mask.all()):
            positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
            return cls(tokens, None, positions, input_ids.shape[1])
        mask = torch.cat([attention_mask.to(input_ids.device, torch.long), torch.ones_like(answer)], dim=1)
        return cls(tokens, mask, (mask.cumsum(-1) - 1).clamp_min(0), input_ids.shape[1])

    def unconditional(self, mask_id: int) -> Tensor:
        """The tokens with the prompt hidden, for classifier-free guidance."""
        tokens = self.tokens.clone()
        tokens[:, : self.prompt_length] = mask_id
        return tokens


def _guided_inputs(canvas: _Canvas, settings: _Settings) -> tuple[Tensor, Tensor | None, Tensor]:
    """Tokens, attention mask and positions of the whole canvas as the model sees them: with guidance the
    unconditional rows follow the conditional ones in the same batch (and share one cache)."""
    tokens, mask, positions = canvas.tokens, canvas.attention_mask, canvas.position_ids
    if settings.cfg_scale > 0:
        tokens = torch.cat([tokens, canvas.unconditional(settings.mask_id)])
        mask = None if mask is None else mask.repeat(2, 1)
        positions = positions.repeat(2, 1)
    return tokens, mask, positions


def _guided_block_logits(logits: Tensor, first: int, block: slice, settings: _Settings) -> Tensor:
    """Aligned, guided logits [B, block, V] for the block, from `logits` whose row 0 is canvas position
    `first`. Shifted-logit models read each prediction one position earlier: Dream's shift, without
    copying the full logits."""
    start = block.start - int(settings.shift_logits) - first
    logits = logits[:, start : start + block.stop - block.start]
    if settings.cfg_scale > 0:
        cond, uncond = logits.chunk(2)
        logits = uncond + (settings.cfg_scale + 1) * (cond - uncond)
    return logits


def _denoise_step(canvas: _Canvas, block: slice, logits: Tensor, steps_left: int, settings: _Settings) -> None:
    """Commit this step's tokens of the block in place."""
    current = canvas.tokens[:, block]
    masked = current == settings.mask_id
    logits = logits.index_fill(-1, torch.tensor([settings.mask_id], device=logits.device), -math.inf)
    guess = add_gumbel_noise(logits, settings.temperature, settings.generator).argmax(-1)
    confidence = token_confidence(logits, guess, settings.remasking, settings.generator)
    count = num_transfer_tokens(masked.sum(1), steps_left)[:, 0]
    commit = select_commits(confidence, masked, count, settings.threshold)
    canvas.tokens[:, block] = torch.where(commit, guess, current)


def _decode_block(forward: DLMForward, canvas: _Canvas, block: slice, steps: int, settings: _Settings) -> None:
    """Decode one block. With a cache, its first step is a full forward that fills the cache, kept then
    to the layout's cached positions; the later steps recompute only the layout's span."""
    layout = None if settings.cache is None else CacheLayout.of(
        settings.cache, block, settings.shift_logits, canvas.tokens.shape[1])
    cache = None
    for step in range(steps):
        if not (canvas.tokens[:, block] == settings.mask_id).any():
            return
        inputs = _guided_inputs(canvas, settings)
        if layout is None or step == 0:
            cache = None if layout is None else forward.new_cache()
            logits, first = forward(*inputs, cache), 0
            if layout is not None:
                cache = keep_positions(cache, layout.cached, forward.config)
        else:
            logits, first = cached_step(forward, inputs, layout, cache), layout.span.start
        _denoise_step(canvas, block, _guided_block_logits(logits, first, block, settings), steps - step, settings)


def check_schedule(gen_length: int, block_length: int, steps: int) -> None:
    """Blocks must tile the generation and share the steps evenly; the message says what to change."""
    if block_length < 1 or gen_length < 1 or gen_length % block_length:
        raise ValueError(f"gen_length ({gen_length}) must be a positive multiple of block_length ({block_length}); "
                         "pick a block_length that divides gen_length")
    num_blocks = gen_length // block_length
    if steps < 1 or steps % num_blocks:
        raise ValueError(f"steps ({steps}) must be a positive multiple of the number of blocks "
                         f"(gen_length // block_length = {num_blocks}) so every block gets the same steps; "
                         f"e.g. steps={num_blocks * max(steps // num_blocks, 1)}")


def _validate(input_ids: Tensor, attention_mask: Tensor | None, mask_id: int, gen_length: int,
              block_length: int, steps: int, temperature: float, remasking: str, cfg_scale: float,
              threshold: float | None, cache: str | None) -> None:
    """Reject argument combinations the sampler cannot honour, saying what to change."""
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids must be [batch, prompt_len] with prompt_len >= 1, got shape {tuple(input_ids.shape)}")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
                         f"got {tuple(attention_mask.shape)}")
    check_schedule(gen_length, block_length, steps)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if remasking not in REMASKING:
        raise ValueError(f"remasking must be one of {REMASKING}, got {remasking!r}")
    if cfg_scale < 0:
        raise ValueError(f"cfg_scale must be >= 0 (0 = no guidance), got {cfg_scale}")
    if threshold is not None and not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1] or None (no parallel decoding), got {threshold}")
    if cache is not None and cache not in CACHE_MODES:
        raise ValueError(f"cache must be None (no KV cache) or one of {CACHE_MODES}, got {cache!r}")
    if threshold is not None and remasking != "low_confidence":
        raise ValueError("threshold needs remasking='low_confidence': random confidences are not probabilities")
    attended = input_ids == mask_id
    if attention_mask is not None:
        attended &= attention_mask.bool()
    if attended.any():
        raise ValueError(f"input_ids contains mask_id ({mask_id}) in the prompt: give the prompt in full, and "
                         "mark padding with attention_mask=0 if the pad token is the mask token")


@torch.no_grad()
def generate(
    model: nn.Module,
    input_ids: Tensor,
    *,
    mask_id: int,
    gen_length: int,
    block_length: int,
    steps: int,
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    cfg_scale: float = 0.0,
    threshold: float | None = None,
    attention_mask: Tensor | None = None,
    shift_logits: bool = False,
    generator: torch.Generator | None = None,
    cache: str | None = None,
) -> Tensor:
    """Decode `gen_length` tokens after each (left-padded) prompt in `input_ids` [B, P]; returns
    [B, P + gen_length]. Semantics, `threshold` and `cache` ("prefix" or "dual" KV cache) are described
    in the module docstring; `shift_logits=True` is for Dream-style models that predict position i from
    position i-1."""
    _validate(input_ids, attention_mask, mask_id, gen_length, block_length, steps, temperature, remasking,
              cfg_scale, threshold, cache)
    forward = DLMForward.of(model)
    canvas = _Canvas.start(input_ids, attention_mask, mask_id, gen_length)
    if cache is not None and not forward.supports_cache:
        warnings.warn(f"cache={cache!r} ignored: the model's forward lacks position_ids or a KV cache argument "
                      "(cache / past_key_values); decoding without a KV cache", stacklevel=2)
        cache = None
    settings = _Settings(mask_id, temperature, remasking, cfg_scale, threshold, shift_logits, generator, cache)
    steps_per_block = steps // (gen_length // block_length)
    for start in range(canvas.prompt_length, canvas.tokens.shape[1], block_length):
        _decode_block(forward, canvas, slice(start, start + block_length), steps_per_block, settings)
    return canvas.tokens


def decode_completions(tokenizer: PreTrainedTokenizerBase, output_ids: Tensor, prompt_len: int,
                       eos_ids: Iterable[int]) -> list[str]:
    """The text of each row after the prompt, cut before its first stop token (LLaDA ends an answer with
    EOS or EoT, then pads with EOS), special tokens dropped."""
    answers = output_ids[:, prompt_len:]
    stops = torch.isin(answers, torch.tensor(list(eos_ids), dtype=answers.dtype, device=answers.device))
    lengths = torch.where(stops.any(1), stops.int().argmax(1), answers.shape[1]).tolist()
    return tokenizer.batch_decode([row[:n].tolist() for row, n in zip(answers, lengths, strict=True)],
                                  skip_special_tokens=True)
