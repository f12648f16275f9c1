"""Uncertainty over independent runs: mean, standard deviation and a Student-t interval (scipy.stats).

The papers report accuracy as the mean over independent training runs with its uncertainty: runs, not
evaluation seeds, are the unit (greedy decoding is deterministic). Two objectives trained with the same
seeds (same data order, same initial weights) are paired, and compared through their per-seed differences,
which cancel what the pair shares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scipy import stats


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """{"mean", "sd", "low", "high", "n"}: the sample mean, the sample standard deviation (n - 1) and the
    two-sided t-interval for the mean. With fewer than two values sd and the interval are None."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("mean_interval needs at least one value")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean = math.fsum(values) / n
    if n < 2:
        return {"mean": mean, "sd": None, "low": None, "high": None, "n": n}
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "sd": sd, "low": mean - half, "high": mean + half, "n": n}


def standard_error(values: Sequence[float]) -> float:
    """The standard error of the mean, sd / sqrt(n) (`scipy.stats.sem`); 0.0 for a single value, whose
    spread cannot be estimated."""
    if len(values) == 0:
        raise ValueError("standard_error needs at least one value")
    return float(stats.sem([float(v) for v in values])) if len(values) > 1 else 0.0


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """`mean_interval` of the per-pair differences a_i - b_i (a paired t-interval)."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    return mean_interval([x - y for x, y in zip(a, b, strict=True)], confidence)


def ratio_mean_se(numerators: Sequence[float], denominators: Sequence[float]) -> tuple[float, float]:
    """(sum x / sum w, its standard error) with items as the unit, by linearisation (the delta method):
    how much a ratio such as cell-level accuracy (x correct cells of w in each puzzle) would move with
    another sample of as many items. With every w = 1 it is the ordinary mean and sd / sqrt(n)."""
    x, w = [float(v) for v in numerators], [float(v) for v in denominators]
    if len(x) != len(w) or len(x) < 2:
        raise ValueError(f"ratio_mean_se needs two or more (numerator, denominator) pairs, got {len(x)} and {len(w)}")
    total = math.fsum(w)
    if total <= 0:
        raise ValueError("ratio_mean_se: the denominators must sum to a positive number")
    mean = math.fsum(x) / total
    spread = math.fsum((xi - mean * wi) ** 2 for xi, wi in zip(x, w, strict=True)) / (len(x) - 1)
    return mean, math.sqrt(spread * len(x)) / total
