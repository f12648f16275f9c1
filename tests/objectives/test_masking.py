"""Noise levels and masks: `sample_t`, `uniform_mask_probs`, `importance_mask_probs`, `sample_mask`.

Statistical tests use fixed seeds (so they are deterministic) and tolerances of k standard errors, with the
standard error derived from the Bernoulli / uniform variance stated next to each test.
"""

from __future__ import annotations

import math

import pytest
import torch

from dlmtune.objectives import (
    beta_reference,
    importance_mask_probs,
    llada_mask_probs,
    sample_mask,
    sample_t,
    uniform_mask_probs,
)

EPS = 1e-3


def chi2_upper_quantile(dof: int, z: float = 3.719) -> float:
    """Upper quantile of chi-square(dof) by Wilson-Hilferty: chi2/dof is ~ normal after a cube root.
    z = 3.719 is the standard-normal upper 1e-4 point, so a correct sampler fails with probability ~1e-4
    (and with fixed seeds, never)."""
    a = 2.0 / (9.0 * dof)
    return dof * (1.0 - a + z * math.sqrt(a)) ** 3


def reference_importance_probs(t, beta, answer, eps=EPS):
    """The WeFT formula, independently in float64:
    p_i = (1 - eps) t_i + eps, t_i = 1 - (1 - t)^(beta_i / beta_ref), beta clamped at 0, beta_ref = mean of
    beta over the answer (ratio 1 when beta_ref = 0), p = 0 off the answer."""
    t64, beta64 = t.double(), beta.double().clamp_min(0.0)
    out = torch.zeros(beta.shape, dtype=torch.float64)
    for b in range(beta.shape[0]):
        idx = answer[b].nonzero().flatten().tolist()
        if not idx:
            continue
        ref = sum(beta64[b, i].item() for i in idx) / len(idx)
        for i in idx:
            ratio = beta64[b, i].item() / ref if ref > 0 else 1.0
            t_i = 1.0 - (1.0 - t64[b].item()) ** ratio
            out[b, i] = (1.0 - eps) * t_i + eps
    return out


def random_answer_mask(batch: int, length: int, generator) -> torch.Tensor:
    """Answer = a suffix after a random-length prompt (0..length), so some rows have no answer."""
    starts = torch.randint(0, length + 1, (batch,), generator=generator)
    starts[0], starts[-1] = 0, length  # one all-answer row, one row with no answer at all
    return torch.arange(length)[None, :] >= starts[:, None]


# --------------------------------------------------------------------------------------------- formula
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_importance_probs_match_formula(seed):
    g = torch.Generator().manual_seed(seed)
    batch, length = 8, 24
    answer = random_answer_mask(batch, length, g)
    beta = torch.rand(batch, length, generator=g) * 3.0
    beta[torch.rand(batch, length, generator=g) < 0.2] = 0.0  # some beta_i = 0
    beta[torch.rand(batch, length, generator=g) < 0.1] *= -1.0  # some negative (clamped to 0)
    beta[2] = 0.0  # a row with beta_ref = 0
    t = torch.rand(batch, generator=g)
    t[1], t[3] = 0.0, 1.0
    got = importance_mask_probs(t, beta, answer, EPS)
    expected = reference_importance_probs(t, beta, answer)
    assert got.dtype == torch.float32 and got.shape == (batch, length)
    # Tolerance: float32 rounding of p in [0, 1] is <= 6e-8 (plus the same for 1 - eps); the float32 ratio r
    # has relative error <= 1.2e-7, which moves (1-t)^r by r |ln(1-t)| (1-t)^r * 1.2e-7 = x e^-x * 1.2e-7
    # (x = r |ln(1-t)|) <= 1.2e-7 / e. Total < 2e-7; 5e-7 leaves margin, far below any formula error.
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=5e-7)
    assert torch.equal(got[~answer], torch.zeros_like(got[~answer]))  # exactly 0 off the answer
    # the tilt: within a row (0 < t < 1), a larger beta means a larger masking probability
    for b in range(batch):
        if 0 < t[b] < 1 and answer[b].sum() > 1 and beta[b].clamp_min(0)[answer[b]].sum() > 0:
            order = beta[b].clamp_min(0)[answer[b]].argsort()
            assert (got[b][answer[b]][order].diff() >= 0).all()


def test_importance_probs_hand_example():
    """beta = [1, 3] (mean 2): ratios 0.5 and 1.5; t = 0.75 so 1 - t = 1/4:
    t_0 = 1 - (1/4)^0.5 = 0.5,  t_1 = 1 - (1/4)^1.5 = 1 - 1/8 = 0.875;
    p = 0.999 t + 0.001 -> 0.5005, 0.875125; the prompt position 0 gets 0."""
    t = torch.tensor([0.75])
    beta = torch.tensor([[5.0, 1.0, 3.0]])
    answer = torch.tensor([[False, True, True]])
    got = importance_mask_probs(t, beta, answer, EPS)
    torch.testing.assert_close(got, torch.tensor([[0.0, 0.5005, 0.875125]]), rtol=0, atol=1e-7)


def test_beta_reference_and_uniform_probs_hand_values():
    beta = torch.tensor([[1.0, 2.0, 3.0, 4.0], [7.0, 7.0, 7.0, 7.0]])
    answer = torch.tensor([[False, True, True, False], [False, False, False, False]])
    # (2 + 3) / 2 = 2.5; a row without answer tokens gets 0 (not nan)
    assert torch.equal(beta_reference(beta, answer), torch.tensor([2.5, 0.0]))
    t = torch.tensor([0.5, 0.0])
    # 0.999 * 0.5 + 0.001 = 0.5005 on the answer, 0 elsewhere; t = 0 gives exactly eps
    expected = torch.tensor([[0.0, 0.5005, 0.5005, 0.0], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(uniform_mask_probs(t, answer, EPS), expected, rtol=0, atol=1e-7)
    assert llada_mask_probs(torch.tensor(0.0), EPS) == torch.tensor(EPS)
    assert llada_mask_probs(torch.tensor(1.0), 0.1) == 1.0


# ------------------------------------------------------------------------------ reduction to SFT
@pytest.mark.parametrize("constant", [1e-3, 0.1, 1.0 / 3.0, 0.7, 1.0, 2.5, 7.77, 1e-40])
@pytest.mark.parametrize("length", [1, 7, 13, 100, 1000])
def test_constant_beta_is_uniform_bit_for_bit(constant, length):
    """Any constant beta (also a subnormal float32, 1e-40) gives ratio exactly 1, hence exactly LLaDA's p.
    Lengths 7, 13, 100, 1000 are ones where a float32 mean of 0.1 or 0.7 is off by an ulp."""
    g = torch.Generator().manual_seed(length)
    batch = 16
    answer = random_answer_mask(batch, length, g)
    t = torch.rand(batch, generator=g)
    beta = torch.full((batch, length), constant)
    beta[~answer] = 123.0  # off-answer values must not matter
    got = importance_mask_probs(t, beta, answer, EPS)
    assert torch.equal(got, uniform_mask_probs(t, answer, EPS))


def test_per_row_constants_are_uniform_bit_for_bit():
    g = torch.Generator().manual_seed(5)
    answer = random_answer_mask(6, 37, g)
    t = torch.rand(6, generator=g)
    beta = torch.tensor([0.1, 0.2, 0.3, 1.7, 9.0, 0.0])[:, None].expand(6, 37)
    assert torch.equal(importance_mask_probs(t, beta, answer), uniform_mask_probs(t, answer))


# --------------------------------------------------------------------------------------- edge cases
def test_documented_edge_cases_exact():
    eps32 = torch.tensor(EPS, dtype=torch.float32)
    answer = torch.tensor([[False, True, True, True]] * 4)
    beta = torch.tensor([[9.0, 0.0, 1.0, 2.0]] * 4)  # beta_ref = 1
    t = torch.tensor([0.0, 0.3, 0.999, 1.0])
    p = importance_mask_probs(t, beta, answer, EPS)
    assert torch.isfinite(p).all()
    assert torch.equal(p[:, 1], eps32.expand(4))  # beta_i = 0 (beta_ref > 0): p = eps, even at t = 1
    assert torch.equal(p[0, 1:], eps32.expand(3))  # t = 0: p = eps everywhere on the answer
    assert torch.equal(p[3, 2:], torch.ones(2))  # t = 1 and beta_i > 0: p = 1 exactly
    assert torch.equal(p[:, 0], torch.zeros(4))  # the prompt: exactly 0
    assert ((p[1:3, 1:] >= EPS) & (p[1:3, 1:] <= 1.0)).all()


def test_zero_beta_ref_falls_back_to_uniform():
    answer = torch.tensor([[False, True, True, True], [True, True, False, False]])
    t = torch.tensor([0.4, 0.9])
    for beta in (torch.zeros(2, 4), torch.full((2, 4), -1.0), torch.tensor([[5.0, 0, 0, 0], [0, 0, 3, 3]])):
        got = importance_mask_probs(t, beta, answer, EPS)
        assert torch.equal(got, uniform_mask_probs(t, answer, EPS))


def test_negative_beta_is_clamped():
    g = torch.Generator().manual_seed(3)
    beta = torch.randn(4, 10, generator=g)
    answer = torch.ones(4, 10, dtype=torch.bool)
    t = torch.rand(4, generator=g)
    got = importance_mask_probs(t, beta, answer)
    assert torch.equal(got, importance_mask_probs(t, beta.clamp_min(0.0), answer))
    assert torch.equal(got[beta < 0], torch.full_like(got[beta < 0], EPS))  # clamped to 0 -> p = eps


def test_one_token_answer_and_no_answer():
    t = torch.tensor([0.37, 0.81])
    beta = torch.tensor([[4.0, 0.05, 3.0], [2.0, 0.0, 1.0]])
    one = torch.tensor([[False, True, False], [False, True, False]])  # second row: its only beta is 0
    assert torch.equal(importance_mask_probs(t, beta, one), uniform_mask_probs(t, one))
    none = torch.zeros(2, 3, dtype=torch.bool)
    got = importance_mask_probs(t, beta, none)
    assert torch.equal(got, torch.zeros(2, 3))
    assert not sample_mask(got, none, torch.Generator().manual_seed(0)).any()


def test_extreme_ratio_is_finite():
    """One token holds all the importance: its ratio is the answer length (1000), the rest 0."""
    beta = torch.zeros(2, 1000)
    beta[:, 500] = 1.0
    answer = torch.ones(2, 1000, dtype=torch.bool)
    p = importance_mask_probs(torch.tensor([1e-6, 0.5]), beta, answer)
    assert torch.isfinite(p).all()
    # 1 - (1 - 1e-6)^1000 = 9.995e-4 -> p = 0.999 * 9.995e-4 + 1e-3; 1 - 0.5^1000 = 1 -> p = 1
    torch.testing.assert_close(p[0, 500], torch.tensor(0.999 * (1 - (1 - 1e-6) ** 1000) + 1e-3))
    assert p[1, 500] == 1.0 and (p[:, :500] == torch.tensor(EPS)).all()


# --------------------------------------------------------------------------------------------- masks
def test_mask_frequencies_match_probabilities():
    """R draws of one row of probabilities. Per position the frequency f_i ~ N(p_i, p_i (1 - p_i) / R):
    z_i = (f_i - p_i) / SE_i must satisfy |z_i| < 4.5, and sum z_i^2 ~ chi2(k) stays under its 1e-4
    quantile. Pairs of positions must be independent: the joint frequency of (i, j) has SE
    sqrt(q (1 - q) / R), q = p_i p_j."""
    draws = 40_000
    p_row = torch.tensor([0.7, EPS, 0.05, 0.2, 0.5, 0.8, 0.95, 1.0, 0.0, 0.3, 0.6, 0.01])
    answer_row = torch.tensor([False] + [True] * 11)  # position 0 has p = 0.7 but is not an answer token
    p = p_row.expand(draws, -1)
    masked = sample_mask(p, answer_row.expand(draws, -1), torch.Generator().manual_seed(0))
    assert masked.dtype == torch.bool and masked.shape == (draws, 12)
    freq = masked.double().mean(0)
    assert freq[0] == 0 and freq[8] == 0 and freq[7] == 1  # off-answer, p = 0, p = 1: exact
    inner = [i for i in range(12) if answer_row[i] and 0 < p_row[i] < 1]
    pi = p_row[inner].double()
    z = (freq[inner] - pi) / (pi * (1 - pi) / draws).sqrt()
    assert z.abs().max() < 4.5, z
    assert (z**2).sum() < chi2_upper_quantile(len(inner))
    for i, j in [(4, 10), (3, 5), (4, 9)]:
        q = (p_row[i] * p_row[j]).double()
        joint = (masked[:, i] & masked[:, j]).double().mean()
        assert abs(joint - q) < 4.5 * math.sqrt(q * (1 - q) / draws), (i, j)


def test_sample_mask_is_reproducible_and_one_draw_per_position():
    p = torch.rand(4, 30, generator=torch.Generator().manual_seed(1))
    answer = torch.ones(4, 30, dtype=torch.bool)
    a = sample_mask(p, answer, torch.Generator().manual_seed(9))
    b = sample_mask(p, answer, torch.Generator().manual_seed(9))
    c = sample_mask(p, answer, torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the generator advances by exactly one uniform per position: the next draw matches torch.rand
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    sample_mask(p, answer, g1)
    torch.rand(4, 30, generator=g2)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


# ------------------------------------------------------------------------------------------ sample_t
def test_sample_t_uniform():
    """N draws of U(0, 1): mean SE = sqrt(1/12 / N); 10 equal bins, counts chi-square against N/10."""
    n = 20_000
    t = sample_t(n, torch.Generator().manual_seed(0))
    assert t.shape == (n,) and t.dtype == torch.float32
    assert (t >= 0).all() and (t < 1).all()
    assert abs(t.double().mean().item() - 0.5) < 4 * math.sqrt(1 / 12 / n)
    counts = torch.histc(t, bins=10, min=0.0, max=1.0).double()
    chi2 = ((counts - n / 10) ** 2 / (n / 10)).sum().item()
    assert chi2 < chi2_upper_quantile(9)
    assert torch.equal(t, sample_t(n, torch.Generator().manual_seed(0)))
    assert not torch.equal(t, sample_t(n, torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 16])
def test_sample_t_stratified_one_per_stratum(batch):
    firsts = []
    for seed in range(200):
        t = sample_t(batch, torch.Generator().manual_seed(seed), "stratified")
        assert t.shape == (batch,) and (t >= 0).all() and (t < 1).all()
        strata = torch.floor(t.double() * batch).long().sort().values
        assert torch.equal(strata, torch.arange(batch)), t  # exactly one t in each [k/B, (k+1)/B)
        assert torch.equal(t, sample_t(batch, torch.Generator().manual_seed(seed), "stratified"))
        firsts.append(t[0].item())
    # each t is still marginally U(0, 1): 200 seeds, mean within 4 SE = 4 sqrt(1/12/200) of 1/2
    assert abs(sum(firsts) / 200 - 0.5) < 4 * math.sqrt(1 / 12 / 200)


def test_sample_t_invalid_method():
    with pytest.raises(ValueError, match="t_sampling"):
        sample_t(3, torch.Generator().manual_seed(0), "sobol")
