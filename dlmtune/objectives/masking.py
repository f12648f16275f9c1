"""Noise levels and masks for masked-diffusion SFT.

- LLaDA's SFT (ML-GSAI/LLaDA GUIDELINES.md): t ~ U(0, 1) per sequence, p_mask = (1 - eps) t + eps, each
  answer token masked independently with Bernoulli(p_mask); prompt tokens are never masked.
- WeFT/GIFT (arXiv 2509.20863 v1, Theorem 1, eq. 10): token i is masked with t_i = 1 - (1 - t)^(beta_i / beta_ref),
  beta_ref the mean of beta over the sequence's answer tokens (§3.2, "for numerical stability").
- "stratified" t (one uniform offset, evenly spaced over the batch) is the low-discrepancy sampler of
  MDLM (Sahoo et al. 2024); it keeps each t uniform but lowers the variance of the batch loss.

Randomness always comes from an explicit `torch.Generator` (drawn on the generator's device, then
moved), so a run is reproducible and two objectives given the same generator state draw the same
numbers.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

T_SAMPLING = ("uniform", "stratified")


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def sample_t(
    batch_size: int,
    generator: torch.Generator | None = None,
    method: str = "uniform",
    device: torch.device | str = "cpu",
) -> Tensor:
    """Noise level per sequence, shape [B], in [0, 1)."""
    device = torch.device(device)
    if method == "uniform":
        return _rand((batch_size,), generator, device)
    if method == "stratified":
        offset = _rand((1,), generator, device)
        return (offset + torch.arange(batch_size, device=device) / batch_size) % 1.0
    raise ValueError(f"t_sampling must be one of {T_SAMPLING}, got {method!r}")


def llada_mask_probs(t_tok: Tensor, eps: float = 1e-3) -> Tensor:
    """LLaDA's p = (1 - eps) t + eps: every token keeps a floor eps so 1/p stays bounded by 1/eps."""
    return (1.0 - eps) * t_tok + eps


def uniform_mask_probs(t: Tensor, answer_mask: Tensor, eps: float = 1e-3) -> Tensor:
    """Standard SFT masking probabilities [B, L]: LLaDA's p_mask on answer positions, 0 elsewhere."""
    t_tok = t.float()[:, None].expand(answer_mask.shape)
    return torch.where(answer_mask.bool(), llada_mask_probs(t_tok, eps), 0.0)


def beta_reference(beta: Tensor, answer_mask: Tensor) -> Tensor:
    """beta_ref per sequence [B]: mean of beta over answer positions; 0 for a sequence with no answer."""
    answer = answer_mask.bool()
    # Summed in float64: the mean of equal float32 values is then exactly that value (partial sums of up to
    # 2^29 equal float32s are exact in float64), so a constant beta gives ratio 1 bit-for-bit.
    total = torch.where(answer, beta.double(), 0.0).sum(-1)
    return (total / answer.sum(-1).clamp_min(1)).float()


def importance_mask_probs(t: Tensor, beta: Tensor, answer_mask: Tensor, eps: float = 1e-3) -> Tensor:
    """WeFT/GIFT masking probabilities p_i = (1 - eps) t_i + eps, t_i = 1 - (1 - t)^(beta_i / beta_ref).

    Args:
        t: [B] noise level per sequence, in [0, 1].
        beta: [B, L] non-negative importance (negative values are clamped to 0).
        answer_mask: [B, L] bool, True on answer tokens (the only maskable ones).

    Returns float32 [B, L]: p_i on answer positions, exactly 0 elsewhere. Always finite:
    - all beta equal: ratio 1, so the result is bit-for-bit LLaDA's (1 - eps) t + eps;
    - beta_ref = 0 (all answer betas 0): falls back to the uniform ratio 1, i.e. plain SFT;
    - beta_i = 0 with beta_ref > 0: t_i = 0, so p_i = eps (masked rarely, weight 1/eps when it is);
    - t = 0 gives p = eps everywhere; t = 1 gives p = 1 wherever beta_i > 0;
    - a one-token answer has ratio 1; a sequence with no answer tokens gets all zeros.
    The exponent beta_i / beta_ref is at most the answer length, so the power never overflows.
    """
    answer = answer_mask.bool()
    beta = beta.float().clamp_min(0.0)
    beta_ref = beta_reference(beta, answer)[:, None]
    ratio = torch.where(beta_ref > 0, beta / torch.where(beta_ref > 0, beta_ref, 1.0), 1.0)  # subnormal-safe
    t_col = t.float()[:, None].expand(answer.shape)
    t_weighted = 1.0 - torch.pow(1.0 - t_col.double(), ratio.double())
    t_tok = torch.where(ratio == 1.0, t_col, t_weighted.float())
    return torch.where(answer, llada_mask_probs(t_tok, eps), 0.0)


def sample_mask(p_mask: Tensor, answer_mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Bernoulli(p_mask) on answer positions ([B, L] bool). One uniform draw per position, so equal
    probabilities and equal generator states give identical masks."""
    u = _rand(tuple(p_mask.shape), generator, p_mask.device)
    return (u < p_mask) & answer_mask.bool()
