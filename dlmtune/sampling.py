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
ids follow the mask (first real token at 0), so a padded prompt sits where it would alone. Models are
called with only the arguments their forward accepts, read from the signature of the underlying model
(through peft and distributed wrappers). LLaDA's remote code takes no position ids, so padding shifts every
real token by the pad count; RoPE depends only on relative positions, so that changes nothing beyond
rounding (models with absolute positions would decode differently). A KV cache, though, needs the
positions (the recomputed ones must match the cached ones), so it is only used when they can be passed.
Dream's remote code reads `attention_mask` as a ready [B, 1, q, kv] boolean mask, so it gets one;
everything else gets the usual 2D mask.

Threshold (Fast-dLLM's parallel decoding): each step commits every masked position of the block whose
confidence is >= `threshold`, and at least as many as the plain schedule gives for the masks and steps
left (always at least one). A block ends when it has no masks left, so blocks usually take fewer steps than
`steps_per_block`, and never more: `steps` stays the budget. With `steps == gen_length` the floor is one
token per step, Fast-dLLM's rule; with fewer steps it is the plain sampler's count. Nothing reaching the threshold (e.g. threshold 1.0)
gives exactly the plain sampler. Needs low_confidence remasking (random draws are not probabilities).

KV caches (`cache=`, Fast-dLLM's two). Each block starts with one full forward, exact, that also stores
every layer's keys/values; the cache then keeps only positions whose tokens stay fixed during the block,
and the block's later steps recompute the rest, attending to the cached keys. The "window" is the block
(for shifted-logit models also the position before it, whose output predicts the block's first token).
- "prefix": the cache keeps the positions before the window; later steps run the window and the masked
  tail after it.
- "dual": the cache keeps the positions before AND after the window (prefix, then suffix, cut out of the
  full forward's cache with one copy per block); later steps run the window alone. The attention mask
  is laid out in the cache's order (prefix, suffix, window); a bidirectional model does not care about
  the order of its keys, only about their positions, which RoPE applied before caching.
After each later step the cache is cut back to what it held, so it never grows. In a bidirectional
model both are approximations: the cached keys depend on the block's tokens, which change during the
block (for the dual cache the suffix's keys too), and only the first step of a block is exact; the cache
is rebuilt at each block, as in Fast-dLLM. In a one-layer model keys depend only on their own token, so
both caches are exact there. A cache needs a forward that takes position ids and a transformers cache
(`cache` in transformers 5, `past_key_values` before); other models (LLaDA's remote code asserts it
gets no cache) decode without it, with a warning. Classifier-free guidance works with either cache (the
conditional and unconditional rows share one batch, and one cache).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from accelerate.utils import extract_model_from_parallel
from torch import nn
from transformers import DynamicCache, PreTrainedTokenizerBase

Tensor = torch.Tensor

REMASKING = ("low_confidence", "random")
CACHE_MODES = ("prefix", "dual")
CACHE_ARGUMENTS = ("cache", "past_key_values")  # transformers 5 renamed past_key_values to cache
FOUR_D_MASK_MODEL_TYPES = frozenset({"dream"})


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


def crop_cache(cache: DynamicCache, length: int) -> None:
    """Keep the first `length` positions of `cache`. transformers 5 `crop` takes a negative count to drop
    (a positive target length raises), and 4.x reads `crop(0)` as "keep nothing", hence this wrapper."""
    excess = cache.get_seq_length() - length
    if excess > 0:
        cache.crop(-excess)


def _base_model(model: nn.Module) -> nn.Module:
    """The model whose forward defines the accepted arguments: through DDP-style wrappers and peft."""
    model = extract_model_from_parallel(model)
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


@dataclass(frozen=True)
class DLMForward:
    """Calls a dLLM with only the arguments its forward accepts and returns the logits; see the module
    docstring for why each may be missing (LLaDA: no position ids, no cache) and for the mask formats."""

    model: nn.Module
    takes_position_ids: bool
    takes_use_cache: bool
    cache_argument: str | None
    four_d_mask: bool

    @classmethod
    def of(cls, model: nn.Module) -> DLMForward:
        base = _base_model(model)
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
        return getattr(_base_model(self.model), "config", None)

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


@dataclass(frozen=True)
class _CacheLayout:
    """Which canvas positions a block's later steps take from the cache (`cached`) and which they
    recompute (`span`).

    The window is the block, one position earlier for shifted-logit models (whose first block prediction
    is read from the position before the block); the span always covers it. Prefix cache: the cache holds
    everything before the window, the span runs from the window to the end. Dual cache: the cache holds
    everything but the window (prefix, then suffix), the span is the window alone."""

    cached: tuple[slice, ...]
    span: slice

    @classmethod
    def of(cls, mode: str, block: slice, shift: bool, length: int) -> _CacheLayout:
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


def _cached_step(forward: DLMForward, inputs: tuple, layout: _CacheLayout, cache: DynamicCache) -> Tensor:
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
    layout = None if settings.cache is None else _CacheLayout.of(
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
            logits, first = _cached_step(forward, inputs, layout, cache), layout.span.start
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
