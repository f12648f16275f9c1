"""Objectives as named, selectable units: what a trainer calls once per step.

Each objective is `objective(model, batch, generator) -> ObjectiveOutput(loss, metrics)` where `batch`
holds `input_ids`, `attention_mask` and `answer_mask` ([B, L]; True on maskable answer tokens, padded
EOS included by LLaDA's convention). The step is always the same four moves, and each objective only
overrides the move it changes:

1. `importance`: per-token beta from a no-grad first pass with the answer fully masked (None for SFT);
2. `mask_probs`: p_i from a per-sequence t (uniform for SFT, importance-tilted for WeFT/GIFT);
3. the masks are drawn and the model is run once with gradients, its head read only at masked tokens;
4. `loss_weights` / `divides_by_p`: the per-token weights of the masked cross-entropy.

Names (WeFT, arXiv 2509.20863 v1, §4.4; GIFT, its later version, App. H): `sft` (LLaDA baseline), `weft` = `gift` (online entropy),
`gift-star` (entropy from the frozen initial model), `weft-entropy` (no square root), `weft-nll` (beta =
target NLL), `sft-sw` (uniform t, loss weight sqrt(H)), `cart` (Dream's context-adaptive weights).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from accelerate.utils import extract_model_from_parallel
from torch import nn

from dlmtune.models.forward import logits_at, stat_at
from dlmtune.objectives.cache import EntropyCache
from dlmtune.objectives.entropy import token_entropy, token_nll
from dlmtune.objectives.loss import NORMALIZATIONS, reduce_masked_loss
from dlmtune.objectives.masking import (
    T_SAMPLING,
    beta_reference,
    importance_mask_probs,
    sample_mask,
    sample_t,
    uniform_mask_probs,
)
from dlmtune.objectives.weights import cart_weights, entropy_beta, nll_beta, sw_weights

Tensor = torch.Tensor
Batch = dict[str, Tensor]


@dataclass
class ObjectiveConfig:
    """Options shared by all objectives (YAML section `objective`)."""

    eps: float = 1e-3
    normalize: str | None = None  # None: the objective's own default ("token"; "masked" for cart)
    beta_power: float = 0.5
    t_sampling: str = "uniform"
    cart_p: float = 0.3
    chunk_size: int = 256  # first-pass rows per LM-head chunk: bounds its memory below the training pass
    tap_head: bool = True  # read the LM head only at the rows the loss needs; False = full logits
    beta_refresh_every: int = 1  # weft: 1 = measure every step (the papers); K = reuse K visits; 0 = once

    def __post_init__(self) -> None:
        if self.normalize is not None and self.normalize not in NORMALIZATIONS:
            raise ValueError(f"objective.normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        if self.t_sampling not in T_SAMPLING:
            raise ValueError(f"objective.t_sampling must be one of {T_SAMPLING}, got {self.t_sampling!r}")
        if not 0.0 < self.eps < 1.0:
            raise ValueError(f"objective.eps must be in (0, 1), got {self.eps}")
        if self.beta_power <= 0:
            raise ValueError(f"objective.beta_power must be > 0, got {self.beta_power}")
        if self.beta_refresh_every < 0:
            raise ValueError(f"objective.beta_refresh_every must be >= 0, got {self.beta_refresh_every}")


@dataclass
class Importance:
    """The first pass's result: beta [B, L] and, when it was measured, the entropy it came from."""

    beta: Tensor
    entropy: Tensor | None = None


@dataclass
class ObjectiveOutput:
    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Dropout off for a measurement pass, then the model's previous mode back."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    mask = mask.bool()
    return torch.where(mask, values.float(), 0.0).sum() / mask.sum().clamp_min(1)


class Objective:
    """Standard dLLM SFT (LLaDA GUIDELINES.md): uniform t, p = (1 - eps) t + eps, loss CE / p."""

    name = "sft"
    default_normalize = "token"
    divides_by_p = True
    cache: EntropyCache | None = None  # per-example entropies kept across steps (saved with checkpoints)
    precompute_before_training = False  # True: call `precompute` over the whole data set before step 1

    def __init__(self, config: ObjectiveConfig | None = None, *, mask_id: int, shift_logits: bool = False):
        self.config = config or ObjectiveConfig()
        self.mask_id = int(mask_id)
        self.shift = bool(shift_logits)
        self.normalize = self.config.normalize or self.default_normalize

    # --- the moves a subclass may override -------------------------------------------------------
    def importance(self, model: nn.Module, batch: Batch) -> Importance | None:
        return None

    def mask_probs(self, t: Tensor, beta: Tensor | None, answer_mask: Tensor) -> Tensor:
        return uniform_mask_probs(t, answer_mask, self.config.eps)

    def loss_weights(self, beta: Tensor | None, masked: Tensor, batch: Batch) -> Tensor | None:
        return None

    # --- the step ---------------------------------------------------------------------------------
    def __call__(self, model: nn.Module, batch: Batch, generator: torch.Generator | None = None) -> ObjectiveOutput:
        input_ids, answer = batch["input_ids"], batch["answer_mask"].bool()
        attention_mask = batch.get("attention_mask")
        importance = self.importance(model, batch)
        beta = importance.beta if importance is not None else None
        t = sample_t(input_ids.shape[0], generator, self.config.t_sampling, input_ids.device)  # [B]
        p_mask = self.mask_probs(t, beta, answer)  # [B, L]
        masked = sample_mask(p_mask, answer, generator)  # [B, L]
        noisy = torch.where(masked, torch.full_like(input_ids, self.mask_id), input_ids)
        logits = logits_at(model, noisy, attention_mask, masked, self.shift, self.config.tap_head)  # [N_masked, V]
        ce = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
        ce = ce.masked_scatter(masked, F.cross_entropy(logits.float(), input_ids[masked], reduction="none"))
        weight = self.loss_weights(beta, masked, batch)
        loss = reduce_masked_loss(ce, masked, p_mask if self.divides_by_p else None, answer, weight, self.normalize)
        return ObjectiveOutput(loss, self._metrics(t, p_mask, masked, answer, importance))

    def _metrics(self, t, p_mask, masked, answer, importance: Importance | None) -> dict[str, Tensor]:
        metrics = {
            "mean_t": t.float().mean(),
            "mask_fraction": masked.sum() / answer.sum().clamp_min(1),
            "mean_p_mask": _masked_mean(p_mask, answer),
        }
        if importance is not None:
            metrics["beta_ref"] = beta_reference(importance.beta, answer).mean()
            if importance.entropy is not None:
                metrics["mean_entropy"] = _masked_mean(importance.entropy, answer)
        return {k: v.detach() for k, v in metrics.items()}

    # --- the first pass, shared by every importance-weighted objective ----------------------------
    def answer_stat(self, model: nn.Module, batch: Batch, stat: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """`stat(logits [n, V], targets [n]) -> [n]` at every answer position with the whole answer masked,
        no gradients, dropout off. Returns float32 [B, L], zero off the answer."""
        input_ids, answer = batch["input_ids"], batch["answer_mask"].bool()
        targets = input_ids[answer]
        cursor = [0]

        def per_chunk(logits: Tensor) -> Tensor:
            start = cursor[0]
            cursor[0] += logits.shape[0]
            return stat(logits, targets[start : cursor[0]])

        fully_masked = torch.where(answer, torch.full_like(input_ids, self.mask_id), input_ids)
        with eval_mode(model), torch.no_grad():
            values = stat_at(
                model, fully_masked, batch.get("attention_mask"), answer, per_chunk, self.shift,
                self.config.chunk_size, self.config.tap_head,
            )
        return torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device).masked_scatter(answer, values)


def _entropy_stat(logits: Tensor, targets: Tensor) -> Tensor:
    return token_entropy(logits)


def _nll_stat(logits: Tensor, targets: Tensor) -> Tensor:
    return token_nll(logits, targets)


class Weft(Objective):
    """WeFT/GIFT (arXiv 2509.20863 v1, §3, Alg. 1): beta = H^power from the current model; t_i tilted by beta.

    With `beta_refresh_every != 1` and an `example_id` column in the batch, entropies are cached per
    example and re-measured only when stale (see `dlmtune.objectives.cache`).
    """

    name = "weft"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        refresh = self.cache_refresh_every()
        self.cache = EntropyCache(refresh) if refresh != 1 else None

    def cache_refresh_every(self) -> int:
        return self.config.beta_refresh_every

    def beta_power(self) -> float:
        return self.config.beta_power

    def reference_model(self, model: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
        return contextlib.nullcontext(model)

    def measure_entropy(self, model: nn.Module, batch: Batch) -> Tensor:
        """The first pass: answer entropies [B, L] with the whole answer masked."""
        with self.reference_model(model) as ref:
            return self.answer_stat(ref, batch, _entropy_stat)

    def entropy(self, model: nn.Module, batch: Batch) -> Tensor:
        if self.cache is None or "example_id" not in batch:
            return self.measure_entropy(model, batch)
        ids = batch["example_id"].cpu()
        stale = self.cache.stale_rows(ids)
        if stale.any():
            rows = stale.to(batch["input_ids"].device)
            sub_batch = {k: v[rows] for k, v in batch.items() if torch.is_tensor(v) and v.shape[:1] == rows.shape}
            self.cache.store(ids[stale], self.measure_entropy(model, sub_batch), sub_batch["answer_mask"])
        return self.cache.assemble(ids, batch["answer_mask"])

    def importance(self, model: nn.Module, batch: Batch) -> Importance:
        entropy = self.entropy(model, batch)
        return Importance(entropy_beta(entropy, self.beta_power()), entropy)

    def mask_probs(self, t: Tensor, beta: Tensor | None, answer_mask: Tensor) -> Tensor:
        return importance_mask_probs(t, beta, answer_mask, self.config.eps)


class WeftEntropy(Weft):
    """Ablation: beta = raw entropy (no square root); WeFT (arXiv 2509.20863 v1) Table 5 reports unstable grad norms."""

    name = "weft-entropy"

    def beta_power(self) -> float:
        return 1.0


class WeftNll(Weft):
    """Ablation: beta = -log p(x0_i) with the answer fully masked (WeFT, arXiv 2509.20863 v1, §4.4)."""

    name = "weft-nll"

    def importance(self, model: nn.Module, batch: Batch) -> Importance:
        return Importance(nll_beta(self.answer_stat(model, batch, _nll_stat)))


class GiftStar(Weft):
    """GIFT* (GIFT, arXiv 2509.20863 later version, App. H): beta from the frozen initial model, so the forward process is fixed.

    With a LoRA adapter the reference is the base model with adapters disabled (no extra memory);
    for full fine-tuning a frozen copy of the weights seen at the first step is kept.
    """

    name = "gift-star"
    precompute_before_training = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._frozen: nn.Module | None = None
        self._precomputed = False

    def cache_refresh_every(self) -> int:
        return 0  # the reference never changes, so a measured entropy never goes stale

    @contextlib.contextmanager
    def reference_model(self, model: nn.Module):
        inner = extract_model_from_parallel(model)
        if callable(getattr(inner, "disable_adapter", None)) and hasattr(inner, "peft_config"):
            with inner.disable_adapter():
                yield model
            return
        if self._frozen is None:
            if self._precomputed:
                raise RuntimeError("gift-star: an example missing from the precomputed entropies; its "
                                   "reference (the initial weights) is gone. Precompute over the whole data set.")
            self._frozen = copy.deepcopy(inner).requires_grad_(False).eval()
        yield self._frozen

    def precompute(self, model: nn.Module, batches) -> None:
        """Measure every example once with the initial `model` (call before the first update). Training
        steps then cost what an SFT step costs, and full fine-tuning needs no frozen copy."""
        if self._frozen is None and not self._precomputed:
            self._frozen = extract_model_from_parallel(model)  # still the initial weights: use them, don't copy them
        for batch in batches:
            ids = batch["example_id"].cpu()
            self.cache.store(ids, self.measure_entropy(model, batch), batch["answer_mask"])
        self._frozen, self._precomputed = None, True

    def load_precomputed(self, path) -> None:
        """Entropies saved by an earlier `precompute` on the same data and initial model."""
        self.cache.load(path)
        self._precomputed = True


class SftSw(Weft):
    """Ablation "SW" (WeFT, arXiv 2509.20863 v1, Table 4): SFT's uniform t and 1/t, loss weighted by sqrt(H) / mean."""

    name = "sft-sw"

    def mask_probs(self, t: Tensor, beta: Tensor | None, answer_mask: Tensor) -> Tensor:
        return uniform_mask_probs(t, answer_mask, self.config.eps)

    def loss_weights(self, beta: Tensor | None, masked: Tensor, batch: Batch) -> Tensor:
        return sw_weights(beta, batch["answer_mask"])


class Cart(Objective):
    """Dream's CART: uniform masking, weight = geometric mass of unmasked context instead of 1/t."""

    name = "cart"
    default_normalize = "masked"
    divides_by_p = False

    def loss_weights(self, beta: Tensor | None, masked: Tensor, batch: Batch) -> Tensor:
        context = batch.get("attention_mask")
        context = torch.ones_like(masked) if context is None else context.bool()
        return cart_weights(masked, context, self.config.cart_p)


OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (Objective, Weft, WeftEntropy, WeftNll, GiftStar, SftSw, Cart)
}
ALIASES = {"gift": "weft", "gift*": "gift-star", "weft-sw": "sft-sw"}
# Named settings of a registered objective, for comparisons that run several side by side (`dlmtune bench
# train`, `dlmtune demo`): the plain full-logits loss `sft` must not lose to, and weft's amortised form.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "sft-full-logits": ("sft", {"tap_head": False}),
    "weft-k4": ("weft", {"beta_refresh_every": 4}),
}


def get_objective(
    name: str, config: ObjectiveConfig | None = None, *, mask_id: int, shift_logits: bool = False
) -> Objective:
    """Build a registered objective by name (aliases: gift = weft, gift* = gift-star; a `VARIANTS` name
    is its objective with the variant's settings over `config`)."""
    if name in VARIANTS:
        name, settings = VARIANTS[name]
        config = replace(config or ObjectiveConfig(), **settings)
    key = ALIASES.get(name, name)
    if key not in OBJECTIVES:
        known = ", ".join(sorted([*OBJECTIVES, *ALIASES, *VARIANTS]))
        raise ValueError(f"unknown objective {name!r}; known objectives: {known}")
    return OBJECTIVES[key](config, mask_id=mask_id, shift_logits=shift_logits)
