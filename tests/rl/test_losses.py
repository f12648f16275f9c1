"""The RL losses against values worked out by hand on 2 prompts x 3 completions, 2 tokens each.

Rewards [1, 0, 0.5 | 2, 2, 2]: group means 0.5 and 2, so advantages A = [0.5, -0.5, 0 | 0, 0, 0].
Per-token ratios pi / pi_old (old log-probs all -1):
    row 0 (A = 0.5):  [2.0, 1.0]   row 1 (A = -0.5): [0.25, 1.2]   rows 2-5: [1, 1]
completion_mask is 1 everywhere but row 1 token 1, so 11 tokens count.

diffu-GRPO, epsilon 0.5 (clip range [0.5, 1.5]):
    row 0: min(2*0.5, 1.5*0.5) = 0.75 (clipped), min(0.5, 0.5) = 0.5  -> -0.75, -0.5
    row 1: min(0.25*-0.5, 0.5*-0.5) = -0.25 (clipped)                   -> +0.25 (token 1 not counted)
    loss = (-0.75 - 0.5 + 0.25) / 11 = -1/11; clip fraction 2/11
epsilon 10 (nothing clipped): (-1.0 - 0.5 + 0.125) / 11 = -1.375/11; clip fraction 0
KL, d = ref - logp = ln 2 at row 0 token 0 and -ln 2 at row 3 token 1, 0 elsewhere:
    k3 = (2 - ln 2 - 1) + (0.5 + ln 2 - 1) = 0.5 -> mean KL 0.5/11, loss (-1 + 0.04 * 0.5) / 11

wd1: sequence log-likelihoods s = [-1, -2, -3 | -1, -1, -1] (row 1's second token not counted).
    group 2 has equal advantages: softmax(A) = softmax(-A), weight differences 0.
    group 1: w- - w+ = [-D, D, 0] with D = 2 sinh(0.5) / (1 + 2 cosh(0.5))
    loss = (-D * -1 + D * -2) / 2 groups = -D / 2
"""

from __future__ import annotations

import math

import pytest
import torch

from dlmtune.rl.losses import diffu_grpo_loss, group_advantages, kl_k3, wd1_loss

REWARDS = torch.tensor([1.0, 0.0, 0.5, 2.0, 2.0, 2.0])
RATIOS = torch.tensor([[2.0, 1.0], [0.25, 1.2], [1, 1], [1, 1], [1, 1], [1, 1]])
MASK = torch.ones(6, 2)
MASK[1, 1] = 0
OLD = torch.full((6, 2), -1.0)
LN2 = math.log(2)


def test_advantages_are_reward_minus_group_mean():
    torch.testing.assert_close(group_advantages(REWARDS, 3), torch.tensor([0.5, -0.5, 0.0, 0.0, 0.0, 0.0]))


def test_equal_rewards_give_exact_zero_advantages_even_scaled():
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.3, 0.7, 0.2])  # 0.1 * 3 / 3 is not exactly 0.1 in floats
    advantages = group_advantages(rewards, 3, scale=True)
    assert not torch.isnan(advantages).any()
    assert advantages[:3].eq(0).all()
    group = rewards[3:]
    torch.testing.assert_close(advantages[3:], (group - group.mean()) / (group.std() + 1e-4))


def test_advantages_refuse_single_generations_and_partial_groups():
    with pytest.raises(ValueError, match="num_generations must be >= 2"):
        group_advantages(REWARDS, 1)
    with pytest.raises(ValueError, match="groups of num_generations=4"):
        group_advantages(REWARDS, 4)


def _logps(requires_grad: bool = False) -> torch.Tensor:
    return (OLD + RATIOS.log()).requires_grad_(requires_grad)


def test_diffu_grpo_loss_with_clipping():
    logps = _logps(requires_grad=True)
    out = diffu_grpo_loss(logps, OLD, group_advantages(REWARDS, 3), MASK, epsilon=0.5)
    torch.testing.assert_close(out.loss, torch.tensor(-1.0 / 11))
    torch.testing.assert_close(out.metrics["clip_fraction"], torch.tensor(2.0 / 11))
    assert "kl" not in out.metrics
    out.loss.backward()
    assert logps.grad[0, 0] == 0 and logps.grad[1, 0] == 0  # clipped tokens carry no gradient
    torch.testing.assert_close(logps.grad[0, 1], torch.tensor(-0.5 / 11))  # d(-r A)/dlogp = -r A / 11


def test_diffu_grpo_loss_without_clipping():
    out = diffu_grpo_loss(_logps(), OLD, group_advantages(REWARDS, 3), MASK, epsilon=10.0)
    torch.testing.assert_close(out.loss, torch.tensor(-1.375 / 11))
    assert out.metrics["clip_fraction"] == 0


def test_diffu_grpo_loss_with_kl():
    logps = _logps()
    ref = logps.clone()
    ref[0, 0] += LN2
    ref[3, 1] -= LN2
    out = diffu_grpo_loss(logps, OLD, group_advantages(REWARDS, 3), MASK, epsilon=0.5, beta=0.04, ref_logps=ref)
    torch.testing.assert_close(out.metrics["kl"], torch.tensor(0.5 / 11))
    torch.testing.assert_close(out.loss, torch.tensor((-1.0 + 0.04 * 0.5) / 11))
    with pytest.raises(ValueError, match="ref_logps"):
        diffu_grpo_loss(logps, OLD, group_advantages(REWARDS, 3), MASK, epsilon=0.5, beta=0.04)


def test_k3_is_zero_where_policies_agree_and_positive_elsewhere():
    logps = torch.tensor([-1.0, -1.0, -1.0])
    ref = torch.tensor([-1.0, -1.0 + LN2, -1.0 - LN2])
    torch.testing.assert_close(kl_k3(logps, ref), torch.tensor([0.0, 1 - LN2, LN2 - 0.5]))


def test_wd1_loss():
    logps = torch.tensor([[-0.5, -0.5], [-2.0, -7.0], [-1.5, -1.5], [-1.0, 0.0], [0.0, -1.0], [-0.5, -0.5]])
    out = wd1_loss(logps, group_advantages(REWARDS, 3), MASK, num_generations=3)
    d = 2 * math.sinh(0.5) / (1 + 2 * math.cosh(0.5))
    torch.testing.assert_close(out.loss, torch.tensor(-d / 2))
    torch.testing.assert_close(out.metrics["positive_weight_max"],
                               torch.tensor(math.exp(0.5) / (math.exp(0.5) + math.exp(-0.5) + 1)))


def test_wd1_loss_is_zero_when_every_group_has_equal_rewards():
    logps = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    out = wd1_loss(logps, group_advantages(torch.full((6,), 0.7), 3), MASK, num_generations=3)
    assert out.loss == 0
