"""Fast-dLLM's KV caches for the sampler (Fast-dLLM, arXiv 2505.22618): `prefix` and `dual`.

Each block starts with one full forward, exact, that also stores every layer's keys/values; the cache then
keeps only positions whose tokens stay fixed during the block, and the block's later steps recompute the
rest, attending to the cached keys. The "window" is the block (for shifted-logit models also the position
before it, whose output predicts the block's first token).
- "prefix": the cache keeps the positions before the window; later steps run the window and the masked
  tail after it.
- "dual": the cache keeps the positions before AND after the window (prefix, then suffix, cut out of the
  full forward's cache with one copy per block); later steps run the window alone. The attention mask
  is laid out in the cache's order (prefix, suffix, window); a bidirectional model does not care about
  the order of its keys, only about their positions, which RoPE applied before caching.
After each later step the cache is cut back to what it held, so it never grows. In a bidirectional model
both are approximations: the cached keys depend on the block's tokens, which change during the block (for
the dual cache the suffix's keys too), and only the first step of a block is exact; the cache is rebuilt
at each block, as in Fast-dLLM. In a one-layer model keys depend only on their own token, so both caches
are exact there. A cache needs a forward that takes position ids and a transformers cache
(`DLMForward.supports_cache`: the native model classes do).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache

from dlmtune.sampling.forward import DLMForward

Tensor = torch.Tensor

CACHE_MODES = ("prefix", "dual")


def crop_cache(cache: DynamicCache, length: int) -> None:
    """Keep the first `length` positions of `cache`. transformers 5 `crop` takes a negative count to drop
    (a positive target length raises), and 4.x reads `crop(0)` as "keep nothing", hence this wrapper."""
    excess = cache.get_seq_length() - length
    if excess > 0:
        cache.crop(-excess)


@dataclass(frozen=True)
class CacheLayout:
    """Which canvas positions a block's later steps take from the cache (`cached`) and which they
    recompute (`span`).

    The window is the block, one position earlier for shifted-logit models (whose first block prediction
    is read from the position before the block); the span always covers it. Prefix cache: the cache holds
    everything before the window, the span runs from the window to the end. Dual cache: the cache holds
    everything but the window (prefix, then suffix), the span is the window alone."""

    cached: tuple[slice, ...]
    span: slice

    @classmethod
    def of(cls, mode: str, block: slice, shift: bool, length: int) -> CacheLayout:
        window = slice(block.start - int(shift), block.stop)
        if mode == "prefix":
            return cls((slice(0, window.start),), slice(window.start, length))
        return cls((slice(0, window.start), slice(window.stop, length)), window)


def keep_positions(cache: DynamicCache, parts: tuple[slice, ...], config=None) -> DynamicCache:
    """A cache holding only the positions `parts` of `cache`, in that order (one copy of each layer's
    keys and values; a single leading part is a crop, no copy)."""
    if len(parts) == 1 and parts[0].start == 0:
        crop_cache(cache, parts[0].stop)
        return cache
    layers = [(torch.cat([keys[:, :, p] for p in parts], dim=2), torch.cat([values[:, :, p] for p in parts], dim=2))
              for keys, values, *_ in cache]
    return DynamicCache(layers, config=config)


def cached_step(forward: DLMForward, inputs: tuple, layout: CacheLayout, cache: DynamicCache) -> Tensor:
    """Logits of the layout's span, its keys attending to the cached positions; the cache is cut back to
    what it held before, so it never grows. The attention mask follows the cache's order of positions
    (cached parts, then the span)."""
    tokens, mask, positions = inputs
    if mask is not None:
        mask = torch.cat([mask[:, part] for part in (*layout.cached, layout.span)], dim=1)
    held = cache.get_seq_length()
    logits = forward(tokens[:, layout.span], mask, positions[:, layout.span], cache)
    crop_cache(cache, held)
    return logits
