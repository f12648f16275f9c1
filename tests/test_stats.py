"""Intervals checked against values worked out by hand (t quantiles from a printed table)."""

import math
import random

import pytest

from dlmtune.stats import mean_interval, paired_difference, ratio_mean_se


def test_mean_interval_by_hand():
    # values 1, 2, 3, 4: mean 2.5, sd sqrt(5/3) = 1.2910, t_{0.975}(3) = 3.1824, half = 3.1824 * 1.2910 / 2
    result = mean_interval([1, 2, 3, 4])
    half = 3.182446 * math.sqrt(5 / 3) / 2
    assert result["mean"] == pytest.approx(2.5)
    assert result["sd"] == pytest.approx(math.sqrt(5 / 3))
    assert result["low"] == pytest.approx(2.5 - half, abs=1e-5)
    assert result["high"] == pytest.approx(2.5 + half, abs=1e-5)
    assert result["n"] == 4


def test_one_value_has_no_interval():
    assert mean_interval([0.7]) == {"mean": 0.7, "sd": None, "low": None, "high": None, "n": 1}


def test_paired_difference_cancels_the_shared_part():
    # Each seed moves both objectives alike: unpaired intervals overlap, the paired one excludes 0.
    sft = [0.60, 0.70, 0.80, 0.65, 0.75]
    weft = [s + d for s, d in zip(sft, [0.03, 0.04, 0.05, 0.04, 0.04], strict=True)]
    unpaired_a, unpaired_b = mean_interval(weft), mean_interval(sft)
    assert unpaired_a["low"] < unpaired_b["high"]
    paired = paired_difference(weft, sft)
    assert paired["mean"] == pytest.approx(0.04)
    assert paired["low"] > 0  # t_{0.975}(4) = 2.7764, sd sqrt(0.0002 / 4): half 2.7764 sd / sqrt(5) = 0.0088
    assert paired["high"] - paired["mean"] == pytest.approx(2.776445 * math.sqrt(0.0002 / 4 / 5), abs=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="at least one"):
        mean_interval([])
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1, 2], [1])


def test_ratio_mean_se_is_the_plain_mean_and_se_with_unit_weights():
    values = [0.0, 1.0, 1.0, 0.0, 1.0]
    mean, se = ratio_mean_se(values, [1] * 5)
    assert mean == pytest.approx(0.6) and se == pytest.approx(mean_interval(values)["sd"] / math.sqrt(5))


def test_ratio_mean_se_covers_the_true_ratio_at_its_nominal_rate():
    """Puzzles of 2..12 cells, each cell right with probability 0.7: the interval mean +- 1.96 se over 60
    puzzles holds 0.7 in about 95% of 2000 seeded draws (binomial sd of the rate: 0.5 points)."""
    rng = random.Random(0)
    hits = 0
    for _ in range(2000):
        cells = [rng.randint(2, 12) for _ in range(60)]
        right = [sum(rng.random() < 0.7 for _ in range(n)) for n in cells]
        mean, se = ratio_mean_se(right, cells)
        hits += abs(mean - 0.7) <= 1.96 * se
    assert 0.93 <= hits / 2000 <= 0.97


def test_ratio_mean_se_refuses_too_few_items():
    with pytest.raises(ValueError, match="two or more"):
        ratio_mean_se([1.0], [2.0])
