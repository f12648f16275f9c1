"""d1's one-step estimate of a completion's per-token log-probabilities under a masked diffusion LM.

The exact likelihood of a dLLM's completion is intractable; d1 (arXiv 2504.12216, §3.2) estimates it
with a single forward: every completion token is replaced by the mask token, each real prompt token
is masked independently with probability `p_mask_prompt`, and the log-probability of completion token
j is read from the logits at j. A fresh prompt mask for each inner update is d1's regulariser against
overfitting one mask. wd1 (arXiv 2507.08838) uses the same estimate.

The prompt mask is drawn from an explicit generator (seeded by the trainer from seed, step, micro-batch
and rank), one uniform per prompt position whatever the padding, so the same generator state always
masks the same positions. Unlike d1's code the forward sees the attention mask, so left padding stays
invisible, as it is during sampling. Logits are read only at completion positions (the output head is
tapped, see `dlmtune.models.forward`); Dream-style shifted logits are aligned by `shift`.
"""

from __future__ import annotations

import torch
from torch import nn

from dlmtune.models.forward import logits_at

Tensor = torch.Tensor


def prompt_mask(prompt_attention: Tensor, p_mask_prompt: float, generator: torch.Generator) -> Tensor:
    """[B, P] bool: real prompt tokens (attention 1) chosen with probability `p_mask_prompt`."""
    draws = torch.rand(prompt_attention.shape, generator=generator, device=generator.device)
    return (draws.to(prompt_attention.device) < p_mask_prompt) & prompt_attention.bool()


def masked_input(prompt_ids: Tensor, prompt_attention: Tensor, completion_ids: Tensor, mask_id: int,
                 p_mask_prompt: float, generator: torch.Generator) -> Tensor:
    """[B, P + C] input of the estimate: the prompt with its drawn positions masked, the completion all masks."""
    prompt = prompt_ids.masked_fill(prompt_mask(prompt_attention, p_mask_prompt, generator), mask_id)
    return torch.cat([prompt, torch.full_like(completion_ids, mask_id)], dim=1)


def completion_logprobs(model: nn.Module, prompt_ids: Tensor, prompt_attention: Tensor, completion_ids: Tensor,
                        *, mask_id: int, p_mask_prompt: float, generator: torch.Generator,
                        shift: bool = False) -> Tensor:
    """[B, C] float32 log pi(completion token j | masked prompt, all-masked completion)."""
    noisy = masked_input(prompt_ids, prompt_attention, completion_ids, mask_id, p_mask_prompt, generator)
    attention = torch.cat([prompt_attention, torch.ones_like(completion_ids)], dim=1)
    at_completion = torch.zeros_like(noisy, dtype=torch.bool)
    at_completion[:, prompt_ids.shape[1]:] = True
    logits = logits_at(model, noisy, attention, at_completion, shift=shift).float()  # [B * C, V]
    targets = completion_ids.reshape(-1, 1)
    logps = logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return logps.view_as(completion_ids)
