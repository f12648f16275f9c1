"""The RL stage's math as pure tensor functions: group-relative advantages and the two policy losses.

Shapes: a batch holds whole groups, `num_generations` consecutive completions of one prompt each;
`B` completions, `C` completion positions. Per-token log-probabilities are [B, C] (the one-step
estimate of `dlmtune.rl.logprobs`), `completion_mask` [B, C] is 1 on the tokens that count (up to and
including the first EOS, as in d1).

- `group_advantages`: reward minus its group's mean (d1, arXiv 2504.12216, and wd1, arXiv 2507.08838,
  both leave out GRPO's division by the group's standard deviation; `scale=True` puts it back).
  A group whose rewards are all equal gets exactly zero, never NaN.
- `diffu_grpo_loss` (d1): PPO's clipped ratio per token, `-min(r A, clip(r, 1-eps, 1+eps) A)`, plus
  `beta` times the k3 estimator of KL(pi || pi_ref), `exp(ref - logp) - (ref - logp) - 1`, summed
  over the batch's counted tokens and divided by their number.
- `wd1_loss` (wd1): no ratio and no reference. Each completion's log-likelihood (sum over its counted
  tokens) is weighted by softmax(A) over its group and pushed up, and by softmax(-A) and pushed down:
  `sum_i (w-_i - w+_i) log pi(o_i)`, averaged over groups. wd1's code takes the softmax over each
  device's batch, which its configs make exactly one group; here it is per group whatever the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class LossOutput:
    loss: Tensor  # scalar, differentiable
    metrics: dict[str, Tensor]  # detached scalars, averaged over the logging window by the trainer


def _groups(values: Tensor, num_generations: int) -> Tensor:
    if num_generations < 2:
        raise ValueError(f"num_generations must be >= 2 (a group of one has no relative advantage), got {num_generations}")
    if values.shape[0] % num_generations:
        raise ValueError(f"{values.shape[0]} completions do not split into groups of num_generations={num_generations}")
    return values.reshape(-1, num_generations)


def group_advantages(rewards: Tensor, num_generations: int, scale: bool = False, eps: float = 1e-4) -> Tensor:
    """[B] advantages from [B] rewards: reward - group mean (divided by group std + eps when `scale`).
    Groups whose rewards are all equal get 0."""
    grouped = _groups(rewards.float(), num_generations)
    advantages = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        advantages = advantages / (grouped.std(dim=1, keepdim=True) + eps)
    constant = (grouped == grouped[:, :1]).all(dim=1, keepdim=True)
    return advantages.masked_fill(constant, 0.0).reshape(-1)


def kl_k3(logps: Tensor, ref_logps: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref) from samples of pi: exp(d) - d - 1 with d = ref - logp
    (non-negative, zero where the two agree)."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def diffu_grpo_loss(logps: Tensor, old_logps: Tensor, advantages: Tensor, completion_mask: Tensor, *,
                    epsilon: float, beta: float = 0.0, ref_logps: Tensor | None = None) -> LossOutput:
    """d1's loss; metrics: `clip_fraction` (tokens where the clipped term is the smaller one), and `kl`
    (mean k3 over counted tokens) when `beta` > 0. `old_logps` must be detached (the rollout policy)."""
    if beta > 0 and ref_logps is None:
        raise ValueError("beta > 0 needs ref_logps (the reference model's estimates)")
    ratio = torch.exp(logps - old_logps)  # [B, C]
    unclipped = ratio * advantages.unsqueeze(1)
    clipped = ratio.clamp(1 - epsilon, 1 + epsilon) * advantages.unsqueeze(1)
    per_token = -torch.minimum(unclipped, clipped)
    metrics = {"clip_fraction": _masked_mean((clipped < unclipped).float(), completion_mask).detach()}
    if beta > 0:
        kl = kl_k3(logps, ref_logps)
        per_token = per_token + beta * kl
        metrics["kl"] = _masked_mean(kl, completion_mask).detach()
    return LossOutput(_masked_mean(per_token, completion_mask), metrics)


def wd1_loss(logps: Tensor, advantages: Tensor, completion_mask: Tensor, *, num_generations: int) -> LossOutput:
    """wd1's weighted-likelihood loss; metrics: `positive_weight_max` (the largest softmax(A) weight,
    1/num_generations when a group's rewards are all equal)."""
    sequence_logp = (logps * completion_mask.to(logps.dtype)).sum(dim=1)  # [B]
    grouped_a = _groups(advantages.float(), num_generations)
    positive = torch.softmax(grouped_a, dim=1).reshape(-1)
    negative = torch.softmax(-grouped_a, dim=1).reshape(-1)
    groups = grouped_a.shape[0]
    loss = ((negative - positive) * sequence_logp).sum() / groups
    return LossOutput(loss, {"positive_weight_max": positive.max().detach()})
