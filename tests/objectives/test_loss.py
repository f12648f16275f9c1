"""The masked-diffusion loss: normalisations by hand, edge cases, and Monte-Carlo unbiasedness."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlmtune.objectives import (
    NORMALIZATIONS,
    importance_mask_probs,
    masked_diffusion_loss,
    reduce_masked_loss,
    sample_mask,
    sample_t,
    uniform_mask_probs,
)

# ---------------------------------------------------------------------------- hand-computed reductions
# ce       = [[1, 2, 3, 4], [5, 6, 7, 8]]
# answer   = [[0, 1, 1, 1], [0, 0, 1, 1]]        -> 3 + 2 = 5 answer tokens
# masked   = [[1, 1, 0, 1], [1, 0, 1, 0]]        -> selected (masked & answer) = (0,1), (0,3), (1,2)
# p        = [[.5, .5, .25, .25], [1, 1, .5, .5]]
# terms CE/p: (0,1) 2/.5 = 4, (0,3) 4/.25 = 16, (1,2) 7/.5 = 14 -> row sums 20 and 14, total 34
#   token:    34 / 5                   = 6.8
#   sequence: (20 / 3 + 14 / 2) / 2    = 41 / 6
#   masked:   34 / 3
# weights w = 2 at (0,1), 0.5 at (0,3), 3 at (1,2): terms 8, 8, 42 -> token 58 / 5 = 11.6
# no 1/p (CART): terms 2, 4, 7 -> masked 13 / 3
CE = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
ANSWER = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]], dtype=torch.bool)
MASKED = torch.tensor([[1, 1, 0, 1], [1, 0, 1, 0]], dtype=torch.bool)
P = torch.tensor([[0.5, 0.5, 0.25, 0.25], [1.0, 1.0, 0.5, 0.5]])


@pytest.mark.parametrize(("normalize", "expected"), [("token", 6.8), ("sequence", 41 / 6), ("masked", 34 / 3)])
def test_normalisations_hand_computed(normalize, expected):
    got = reduce_masked_loss(CE, MASKED, P, ANSWER, normalize=normalize)
    torch.testing.assert_close(got, torch.tensor(expected))


def test_weights_and_no_inverse_p_hand_computed():
    w = torch.zeros(2, 4)
    w[0, 1], w[0, 3], w[1, 2] = 2.0, 0.5, 3.0
    torch.testing.assert_close(reduce_masked_loss(CE, MASKED, P, ANSWER, weight=w), torch.tensor(11.6))
    torch.testing.assert_close(reduce_masked_loss(CE, MASKED, None, ANSWER, normalize="masked"), torch.tensor(13 / 3))


def test_unselected_values_are_ignored():
    """CE (nan) and p (0) at positions that are not masked answer tokens must not leak into the loss."""
    ce = torch.where(MASKED & ANSWER, CE, float("nan"))
    p = torch.where(ANSWER, P, 0.0)
    for normalize, expected in [("token", 6.8), ("sequence", 41 / 6), ("masked", 34 / 3)]:
        torch.testing.assert_close(reduce_masked_loss(ce, MASKED, p, ANSWER, normalize=normalize), torch.tensor(expected))


def test_masked_diffusion_loss_hand_computed():
    """V = 2, logits [0, log 3] -> probabilities (1/4, 3/4): CE = log 4 for target 0, log(4/3) for target 1.
    Selected: (0, 1) target 0, p = 0.5; (0, 2) target 1, p = 0.25; (1, 1) target 1, p = 1; position (1, 0)
    is masked but not an answer token; (0, 0) is answer but not masked.
    token loss = (2 log 4 + 4 log(4/3) + log(4/3)) / 5 (answer tokens: 3 + 2)."""
    logits = torch.tensor([0.0, math.log(3.0)]).expand(2, 3, 2).clone().requires_grad_(True)
    targets = torch.tensor([[1, 0, 1], [0, 1, 0]])
    answer = torch.tensor([[1, 1, 1], [0, 1, 1]], dtype=torch.bool)
    masked = torch.tensor([[0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    p = torch.tensor([[0.5, 0.5, 0.25], [1.0, 1.0, 1.0]])
    loss = masked_diffusion_loss(logits, targets, masked, p, answer)
    expected = (2 * math.log(4) + 5 * math.log(4 / 3)) / 5
    torch.testing.assert_close(loss, torch.tensor(expected))
    loss.backward()
    # d CE / d logits = softmax - onehot, scaled by 1/(p * 5); nothing at unselected positions
    torch.testing.assert_close(logits.grad[0, 1], torch.tensor([0.25 - 1, 0.75]) / (0.5 * 5))
    assert torch.equal(logits.grad[0, 0], torch.zeros(2)) and torch.equal(logits.grad[1, 0], torch.zeros(2))


def test_invalid_normalisation_raises():
    with pytest.raises(ValueError, match="normalize"):
        reduce_masked_loss(CE, MASKED, P, ANSWER, normalize="batch")
    with pytest.raises(ValueError, match="normalize"):
        masked_diffusion_loss(torch.zeros(2, 4, 3), torch.zeros(2, 4, dtype=torch.long), MASKED, P, ANSWER, normalize="mean")
    assert NORMALIZATIONS == ("token", "sequence", "masked")


@pytest.mark.parametrize("normalize", NORMALIZATIONS)
def test_no_answer_gives_zero_loss_and_finite_grad(normalize):
    logits = torch.randn(2, 5, 7, requires_grad=True)
    targets = torch.zeros(2, 5, dtype=torch.long)
    none = torch.zeros(2, 5, dtype=torch.bool)
    p = importance_mask_probs(torch.tensor([0.5, 1.0]), torch.rand(2, 5), none)
    masked = sample_mask(p, none, torch.Generator().manual_seed(0))
    loss = masked_diffusion_loss(logits, targets, masked, p, none, normalize=normalize)
    assert loss.item() == 0.0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad == 0).all()


# ---------------------------------------------------------------------------- Monte-Carlo unbiasedness
# A "model" whose logits do not depend on the input: fixed random logits [B, L, V]. Then
# E_t E_mask [sum_i 1[masked_i] CE_i / p_i] = sum_i CE_i, because E[1[masked_i]] = p_i for every t, so the
# "token" loss estimates the mean CE over all answer tokens of the batch and the "sequence" loss the mean
# over sequences of each sequence's mean CE. Draws are made in groups of R replicated batches (one call to
# masked_diffusion_loss each: with equal answer lengths per replicate, the loss of the replicated batch is
# the mean of R independent draws); the G group values are i.i.d., so the MC standard error is
# SE = std(groups) / sqrt(G). We require |estimate - target| < 4 SE, and check that plausible bugs land
# more than 10 SE away (the test has teeth).
B, L, V = 3, 10, 7
# 400k draws (< 1 s per estimate); 1600 groups make the SE itself precise (relative error ~ 1/sqrt(2 G)).
GROUPS, REPLICATES = 1600, 250


def _setup():
    g = torch.Generator().manual_seed(123)
    logits = torch.randn(B, L, V, generator=g) * 2.0
    targets = torch.randint(0, V, (B, L), generator=g)
    answer = torch.zeros(B, L, dtype=torch.bool)
    answer[0, 2:], answer[1, 7:], answer[2, 1:] = True, True, True  # lengths 8, 3, 9
    logits[1] -= 5.0 * F.one_hot(targets[1], V)  # the short answer is hard: the token mean (weights 1/20 per
    # token) and the sequence mean (1/9 per token of row 1) then differ by ~0.9, about 30 SE
    beta = torch.rand(B, L, generator=g) * 2.0
    beta[0, 3], beta[1, 7], beta[2, 5], beta[2, 8] = 0.0, 0.0, 0.0, -0.5  # beta = 0 tokens (p = eps)
    beta[1, 8] = 4.0  # one dominant token (ratio ~ 3)
    ce = F.cross_entropy(logits.double().reshape(-1, V), targets.reshape(-1), reduction="none").reshape(B, L)
    token_target = ce[answer].mean().item()
    sequence_target = torch.stack([ce[b][answer[b]].mean() for b in range(B)]).mean().item()
    return logits, targets, answer, beta, token_target, sequence_target


def _mc(probs: str, normalize: str, t_method: str = "uniform", divide: str = "p", seed: int = 0):
    """Mean and SE of the loss over GROUPS x REPLICATES draws of (t, mask). `divide`: "p" (correct),
    "none" (forgets 1/p), "uniform" (masks drawn with `probs` but divided by SFT's p)."""
    logits, targets, answer, beta, _, _ = _setup()
    g = torch.Generator().manual_seed(seed)
    rep_logits, rep_targets = logits.repeat(REPLICATES, 1, 1), targets.repeat(REPLICATES, 1)
    rep_answer, rep_beta = answer.repeat(REPLICATES, 1), beta.repeat(REPLICATES, 1)
    values = []
    for _ in range(GROUPS):
        t = sample_t(B * REPLICATES, g, t_method)
        if probs == "sft":
            p = uniform_mask_probs(t, rep_answer)
        else:
            p = importance_mask_probs(t, rep_beta, rep_answer)
        masked = sample_mask(p, rep_answer, g)
        p_div = {"p": p, "none": None, "uniform": uniform_mask_probs(t, rep_answer)}[divide]
        values.append(masked_diffusion_loss(rep_logits, rep_targets, masked, p_div, rep_answer, normalize=normalize))
    values = torch.stack(values).double()
    return values.mean().item(), (values.std() / math.sqrt(GROUPS)).item()


@pytest.mark.parametrize(("probs", "t_method"), [("sft", "uniform"), ("sft", "stratified"), ("weft", "uniform")])
@pytest.mark.parametrize("normalize", ["token", "sequence"])
def test_loss_is_unbiased(probs, t_method, normalize):
    *_, token_target, sequence_target = _setup()
    target = token_target if normalize == "token" else sequence_target
    other = sequence_target if normalize == "token" else token_target
    mean, se = _mc(probs, normalize, t_method)
    assert 0 < se < 0.02 * target  # enough draws that 4 SE is a tight bound
    assert abs(mean - target) < 4 * se, (mean, target, se)
    assert abs(other - target) > 10 * se  # the two normalisations really estimate different quantities


def test_biased_variants_are_detected():
    """Estimators with a plausible bug are far outside the 4-SE band:
    - forgetting 1/p estimates E[p_i] CE_i, about half the target;
    - weft masks divided by SFT's p: a beta = 0 token is kept with p = eps but weighted 1/((1-eps) t + eps),
      so its contribution shrinks by ~eps log(1/eps); dominant tokens are over-weighted;
    - "masked" normalisation is a ratio estimator, not the mean CE."""
    *_, token_target, _ = _setup()
    for probs, divide, normalize in [("sft", "none", "token"), ("weft", "none", "token"),
                                     ("weft", "uniform", "token"), ("weft", "p", "masked")]:
        mean, se = _mc(probs, normalize, divide=divide, seed=1)
        assert abs(mean - token_target) > 10 * se, (probs, divide, normalize, mean, token_target, se)
