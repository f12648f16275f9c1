"""How the sampler calls a dLLM: `DLMForward` passes only the arguments the model's forward accepts
and returns the logits.

The native classes (`dlmtune.models`: LLaDA, Dream and the presets are transformers models) take
position ids and a transformers KV cache, so padded prompts keep their own positions and both KV caches
of `dlmtune.sampling.kv_cache` work. A model run with its own remote code (`--trust-remote-code`) may
lack either: LLaDA's official code takes no position ids (left padding then shifts every real token by
the pad count, which RoPE, depending only on relative positions, turns into rounding differences) and
asserts it gets no cache (the sampler then decodes without one, with a warning). The accepted arguments
are read from the signature of the underlying model's forward, through peft and distributed wrappers.

Dream-family models (`model_type` "Dream") get `attention_mask` as a ready [B, 1, q, kv] boolean mask,
the form Dream's official code reads; the native Dream class (transformers' Qwen2) accepts it as well.
Every other model gets the usual [B, kv] mask.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from accelerate.utils import extract_model_from_parallel
from torch import nn
from transformers import DynamicCache

Tensor = torch.Tensor

CACHE_ARGUMENTS = ("cache", "past_key_values")  # transformers 5 renamed past_key_values to cache
FOUR_D_MASK_MODEL_TYPES = frozenset({"dream"})


def base_model(model: nn.Module) -> nn.Module:
    """The model whose forward defines the accepted arguments: through DDP-style wrappers and peft."""
    model = extract_model_from_parallel(model)
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model



@dataclass(frozen=True)
class DLMForward:
    """Calls a dLLM with only the arguments its forward accepts and returns the logits; see the module
    docstring for why each may be missing (LLaDA's remote code: no position ids, no cache) and for the
    mask formats."""

    model: nn.Module
    takes_position_ids: bool
    takes_use_cache: bool
    cache_argument: str | None
    four_d_mask: bool

    @classmethod
    def of(cls, model: nn.Module) -> DLMForward:
        base = base_model(model)
        params = inspect.signature(base.forward).parameters
        model_type = str(getattr(getattr(base, "config", None), "model_type", "")).lower()
        return cls(
            model=model,
            takes_position_ids="position_ids" in params,
            takes_use_cache="use_cache" in params,
            cache_argument=next((name for name in CACHE_ARGUMENTS if name in params), None),
            four_d_mask=model_type in FOUR_D_MASK_MODEL_TYPES,
        )

    @property
    def supports_cache(self) -> bool:
        """A prefix cache needs explicit positions for the tokens after it, and a cache argument."""
        return self.takes_position_ids and self.cache_argument is not None

    @property
    def config(self):
        """The underlying model's config (None if it has none); caches are laid out by it."""
        return getattr(base_model(self.model), "config", None)

    def new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.config)

    def __call__(self, input_ids: Tensor, attention_mask: Tensor | None, position_ids: Tensor,
                 cache: DynamicCache | None = None) -> Tensor:
        """Logits for `input_ids` [B, q]; `attention_mask` [B, kv] covers the cached positions too, and
        `position_ids` [B, q] are those of `input_ids`. Fills `cache` (if given) with the new keys."""
        kwargs: dict = {"input_ids": input_ids}
        if attention_mask is not None:
            kwargs["attention_mask"] = self._mask(attention_mask, input_ids.shape[1])
        if self.takes_position_ids:
            kwargs["position_ids"] = position_ids
        if self.takes_use_cache:
            kwargs["use_cache"] = cache is not None
        if cache is not None:
            kwargs[self.cache_argument] = cache
        return self.model(**kwargs).logits

    def _mask(self, attention_mask: Tensor, query_length: int) -> Tensor:
        if not self.four_d_mask:
            return attention_mask
        return attention_mask.bool()[:, None, None, :].expand(-1, 1, query_length, -1)
