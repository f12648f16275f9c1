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
