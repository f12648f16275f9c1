"""Token importance for the method and its ablations (WeFT, arXiv 2509.20863 v1, §3.3, §4.4; GIFT, its
later version, App. D, H).

- `entropy_beta`: beta_i = H_i ** power. power 0.5 is WeFT/GIFT's square root (eq. 13); power 1 is the
  raw-entropy ablation, which the papers found unstable (Table 5, gradient norms).
- `nll_beta`: beta_i = -log p(x0_i) under the fully masked answer, the NLL ablation.
- `sw_weights`: "simple weighting" ablation: keep SFT's uniform t and 1/t, and multiply each token's
  loss by sqrt(H_i). We divide by the sequence's mean so the loss keeps SFT's scale (our choice; the
  paper does not state a normalisation).
- `cart_weights`: Dream's context-adaptive reweighting, which replaces 1/t: a masked token's weight is
  the geometric-decay mass of the unmasked context around it,
  w_n = sum over unmasked j != n of 0.5 p (1 - p)^(|n - j| - 1) (HKUNLP/Dream SFT trainer).
"""

from __future__ import annotations

import torch

from dlmtune.objectives.masking import beta_reference

Tensor = torch.Tensor


def entropy_beta(entropy: Tensor, power: float = 0.5) -> Tensor:
    """beta_i = max(H_i, 0) ** power."""
    return entropy.float().clamp_min(0.0).pow(power)


def nll_beta(nll: Tensor, power: float = 1.0) -> Tensor:
    """beta_i = max(-log p(x0_i), 0) ** power (power 1 is the papers' NLL ablation)."""
    return nll.float().clamp_min(0.0).pow(power)


def sw_weights(beta: Tensor, answer_mask: Tensor) -> Tensor:
    """Per-token loss weights beta_i / mean(beta over the answer); 1 where that mean is 0."""
    beta_ref = beta_reference(beta, answer_mask)[:, None]
    safe_ref = torch.where(beta_ref > 0, beta_ref, 1.0)  # not clamp_min(tiny): a subnormal mean is valid
    return torch.where(beta_ref > 0, beta.float() / safe_ref, 1.0)


def cart_weights(masked: Tensor, context_mask: Tensor, p: float = 0.3) -> Tensor:
    """CART weights [B, L] for every position (use them at masked positions).

    Args:
        masked: [B, L] bool, masked positions (these are not context).
        context_mask: [B, L] bool, real tokens (attention mask); prompt tokens count as unmasked context,
            left/right padding excluded from it by the caller.
        p: the geometric parameter (0.1 in Dream's configs, 0.3 in the papers' ablation and dllm).
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"CART geometric p must be in (0, 1], got {p}")
    length = masked.shape[-1]
    pos = torch.arange(length, device=masked.device)
    dist = (pos[:, None] - pos[None, :]).abs()
    kernel = torch.where(dist > 0, 0.5 * p * (1.0 - p) ** (dist.clamp_min(1) - 1).float(), 0.0)
    unmasked = (context_mask.bool() & ~masked.bool()).float()
    return unmasked @ kernel
