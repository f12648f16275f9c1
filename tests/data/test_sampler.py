"""Length-grouped batches in random order (dlmtune.data.sampler), against transformers' own sampler."""

from __future__ import annotations

import random

import torch
from scipy.stats import spearmanr
from transformers.trainer_pt_utils import LengthGroupedSampler

from dlmtune.data.sampler import ShuffledLengthGroupedSampler


def batches(indices, size):
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def two_kinds(n=960, seed=0):
    """Lengths of a mix of two kinds, like Sudoku (long) and Countdown (short) traces."""
    rng = random.Random(seed)
    return [rng.randint(100, 120) if i % 2 else rng.randint(40, 60) for i in range(n)]


def test_every_index_once_in_groups_of_contiguous_lengths():
    lengths = two_kinds(1000)
    order = list(ShuffledLengthGroupedSampler(lengths, 16, seed=3, jitter=0.0))
    assert sorted(order) == list(range(1000))
    groups = batches(sorted(lengths), 16)[:-1]
    found = [sorted(lengths[i] for i in batch) for batch in batches(order, 16)[:-1]]
    assert sorted(found) == groups, "the full batches are the consecutive runs of the length order"
    assert found != groups, "in shuffled order"
    assert len(batches(order, 16)[-1]) == 1000 % 16, "the short remainder comes last"


def test_same_seed_and_epoch_same_order_and_a_new_epoch_reshuffles():
    lengths = two_kinds()
    sampler = ShuffledLengthGroupedSampler(lengths, 16, seed=5)
    first = list(sampler)
    assert list(ShuffledLengthGroupedSampler(lengths, 16, seed=5)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_batch_lengths_do_not_sweep_but_transformers_megabatches_do():
    """The step-to-step order of batch lengths: no trend inside windows of 50 steps here (mean rank
    correlation with the step over 20 seeds near 0), while transformers' sampler runs each megabatch of up
    to 50 batches longest first (correlation near -1), which trains the long kind, then the short, in turn."""
    lengths = two_kinds()

    def mean_window_correlation(order):
        means = [sum(lengths[i] for i in b) / len(b) for b in batches(order, 16)]
        windows = [means[i : i + 15] for i in range(0, len(means) - 14, 15)]
        return sum(spearmanr(range(len(w)), w).statistic for w in windows) / len(windows)

    ours = [mean_window_correlation(list(ShuffledLengthGroupedSampler(lengths, 16, seed=s))) for s in range(20)]
    theirs = [mean_window_correlation(list(LengthGroupedSampler(16, lengths=lengths,
                                                               generator=torch.Generator().manual_seed(s))))
              for s in range(20)]
    assert abs(sum(ours) / 20) < 0.1
    assert sum(theirs) / 20 < -0.9
