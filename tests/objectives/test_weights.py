"""Token importance (entropy / NLL beta), SW weights and Dream's CART weights."""

from __future__ import annotations

import pytest
import torch

from dlmtune.objectives import (
    ObjectiveConfig,
    cart_weights,
    entropy_beta,
    get_objective,
    nll_beta,
    sw_weights,
)


def test_entropy_and_nll_beta():
    h = torch.tensor([[4.0, 0.25, 0.0, -1e-7]])  # a tiny negative entropy from rounding is clamped, not nan
    assert torch.equal(entropy_beta(h), torch.tensor([[2.0, 0.5, 0.0, 0.0]]))  # sqrt (WeFT eq. 13)
    assert torch.equal(entropy_beta(h, power=1.0), torch.tensor([[4.0, 0.25, 0.0, 0.0]]))  # raw-entropy ablation
    assert torch.equal(nll_beta(h), torch.tensor([[4.0, 0.25, 0.0, 0.0]]))
    assert torch.equal(nll_beta(h, power=2.0), torch.tensor([[16.0, 0.0625, 0.0, 0.0]]))
    assert entropy_beta(h.double()).dtype == torch.float32


def test_sw_weights():
    beta = torch.tensor([[9.0, 1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0], [0.1] * 4, [1e-40] * 4])
    answer = torch.tensor([[False, True, True, True]] * 4)
    w = sw_weights(beta, answer)
    # row 0: beta_ref = (1 + 2 + 3) / 3 = 2 -> weights beta / 2 (mean 1 over the answer)
    torch.testing.assert_close(w[0], torch.tensor([4.5, 0.5, 1.0, 1.5]))
    assert torch.equal(w[1], torch.ones(4))  # beta_ref = 0 -> weight 1 (SFT)
    assert torch.equal(w[2], torch.ones(4))  # constant beta -> exactly 1
    assert torch.equal(w[3], torch.ones(4))  # also for a subnormal constant


def cart_reference(masked: torch.Tensor, context: torch.Tensor, p: float) -> torch.Tensor:
    """Dream's formula as a loop: w_n = sum over context j != n, j not masked, of 0.5 p (1 - p)^(|n-j| - 1)."""
    out = torch.zeros(masked.shape, dtype=torch.float64)
    batch, length = masked.shape
    for b in range(batch):
        for n in range(length):
            out[b, n] = sum(0.5 * p * (1 - p) ** (abs(n - j) - 1)
                            for j in range(length) if j != n and context[b, j] and not masked[b, j])
    return out


def test_cart_hand_computed():
    """L = 4, p = 0.5, so 0.5 p = 0.25 and (1 - p)^(d - 1) = 0.5^(d - 1).
    - masked {1}: context j = 0, 2, 3 at distances 1, 1, 2: w_1 = 0.25 (1 + 1 + 0.5) = 0.625.
    - masked {1, 2}: w_1 = 0.25 (1 [j=0] + 0.5 [j=3]) = 0.375, w_2 = 0.25 (0.5 + 1) = 0.375 (masked
      positions are not context).
    - masked {1, 2}, attention_mask[3] = 0: w_1 = 0.25 * 1 = 0.25, w_2 = 0.25 * 0.5 = 0.125.
    - masked {0}, p = 1: only the neighbour at distance 1 counts (0^0 = 1): w_0 = 0.5."""
    ones = torch.ones(1, 4, dtype=torch.bool)
    w = cart_weights(torch.tensor([[False, True, False, False]]), ones, p=0.5)
    assert w[0, 1] == 0.625
    w = cart_weights(torch.tensor([[False, True, True, False]]), ones, p=0.5)
    assert w[0, 1] == 0.375 and w[0, 2] == 0.375
    w = cart_weights(torch.tensor([[False, True, True, False]]), torch.tensor([[True, True, True, False]]), p=0.5)
    assert w[0, 1] == 0.25 and w[0, 2] == 0.125
    w = cart_weights(torch.tensor([[True, False, False, False]]), ones, p=1.0)
    assert w[0, 0] == 0.5


@pytest.mark.parametrize("p", [0.1, 0.3, 1.0])
def test_cart_matches_loop_reference(p):
    g = torch.Generator().manual_seed(0)
    masked = torch.rand(4, 19, generator=g) < 0.5
    context = torch.rand(4, 19, generator=g) < 0.8
    got = cart_weights(masked, context, p)
    assert got.shape == (4, 19)
    torch.testing.assert_close(got.double(), cart_reference(masked, context, p), rtol=1e-6, atol=1e-7)


def test_cart_objective_counts_prompt_as_context():
    """Through the `cart` objective: the prompt (never masked) is context, attention_mask 0 is not.
    Row: prompt at 0, 1; answer 2..4; position 4 is padding with attention_mask 0; masked = {2, 3}.
    p = 0.5: w_2 = 0.25 (1 [j=1] + 0.5 [j=0]) = 0.375; w_3 = 0.25 (0.5 + 0.25) = 0.1875."""
    objective = get_objective("cart", ObjectiveConfig(cart_p=0.5), mask_id=1)
    batch = {"input_ids": torch.zeros(1, 5, dtype=torch.long),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 0]]),
             "answer_mask": torch.tensor([[False, False, True, True, True]])}
    w = objective.loss_weights(None, torch.tensor([[False, False, True, True, False]]), batch)
    assert w[0, 2] == 0.375 and w[0, 3] == 0.1875
    del batch["attention_mask"]  # no attention mask: every position is context
    w = objective.loss_weights(None, torch.tensor([[False, False, True, True, False]]), batch)
    assert w[0, 3] == 0.1875 + 0.25  # + the now-visible position 4 at distance 1


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5, float("nan")])
def test_cart_invalid_p_raises(p):
    with pytest.raises(ValueError, match="CART"):
        cart_weights(torch.zeros(1, 3, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool), p)
