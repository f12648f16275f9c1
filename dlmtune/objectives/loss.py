"""The masked-diffusion cross-entropy and its normalisations.

loss = sum over masked answer positions of weight_i * CE_i / p_i (the ELBO weight 1/t of LLaDA/MDLM and
1/t_i of WeFT, arXiv 2509.20863 v1, eq. 10), divided by one of three denominators that public trainers use:

- "token": the number of answer tokens in the batch (d1/wd1 SFT trainer, dllm's default);
- "sequence": per sequence by its answer length, then the mean over the batch (LLaDA GUIDELINES.md);
- "masked": the number of masked tokens (Dream's CART trainer).

Only "token" and "sequence" make the loss an unbiased estimate of the answer's mean CE: E[1[masked]/p] = 1
per token, whatever the masking probabilities are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

NORMALIZATIONS = ("token", "sequence", "masked")


def reduce_masked_loss(
    ce: Tensor,
    masked: Tensor,
    p_mask: Tensor | None,
    answer_mask: Tensor,
    weight: Tensor | None = None,
    normalize: str = "token",
) -> Tensor:
    """Reduce per-position cross-entropy `ce` [B, L] (values at unmasked positions are ignored) to the
    scalar diffusion loss. `p_mask=None` drops the 1/p factor, for weightings that replace it (CART)."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    selected = masked.bool() & answer_mask.bool()
    term = ce.float()
    if p_mask is not None:
        term = term / p_mask.float().clamp_min(torch.finfo(torch.float32).tiny)
    if weight is not None:
        term = term * weight.float()
    term = torch.where(selected, term, 0.0)
    if normalize == "token":
        return term.sum() / answer_mask.sum().clamp_min(1)
    if normalize == "sequence":
        return (term.sum(-1) / answer_mask.sum(-1).clamp_min(1)).mean()
    return term.sum() / selected.sum().clamp_min(1)


def masked_diffusion_loss(
    logits: Tensor,
    targets: Tensor,
    masked: Tensor,
    p_mask: Tensor | None,
    answer_mask: Tensor,
    weight: Tensor | None = None,
    normalize: str = "token",
) -> Tensor:
    """Diffusion SFT loss from aligned logits [B, L, V] and clean `targets` [B, L].

    Cross-entropy is evaluated only at masked answer positions (the loss needs nothing else).
    """
    selected = masked.bool() & answer_mask.bool()
    ce = torch.zeros(targets.shape, dtype=torch.float32, device=logits.device)
    ce[selected] = F.cross_entropy(logits[selected].float(), targets[selected], reduction="none")
    return reduce_masked_loss(ce, selected, p_mask, answer_mask, weight, normalize)
