"""Length-grouped batches in random order.

transformers' `LengthGroupedSampler` sorts each megabatch (up to 50 batches) longest first, so within every
megabatch the batch length sweeps from long to short. On data whose kinds differ in length (Sudoku traces
are longer than Countdown's; the pretraining corpus has six document kinds of different lengths) the model
is then trained on one kind for a run of steps, then on the next, in turn, and the loss climbs at every
sweep's start. This sampler sorts the whole epoch by length (with a little noise, so examples of equal
length meet different neighbours each epoch), cuts it into batches and shuffles the batches: as little
padding, and every step a random draw of the kinds' lengths.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

LENGTH_JITTER = 8.0  # tokens of uniform noise on each length before sorting: a few tokens of padding at most


class ShuffledLengthGroupedSampler(Sampler[int]):
    """Indices whose consecutive runs of `batch_size` are batches of similar length, the batches in random
    order; a short remainder batch comes last, so every full run stays one length group. The order is
    fixed by (seed, epoch): the Trainer calls `set_epoch` at each epoch, so a resumed run sees the same."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, jitter: float = LENGTH_JITTER):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.float64)
        self.batch_size, self.seed, self.jitter, self.epoch = batch_size, seed, jitter, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        noisy = self.lengths + self.jitter * torch.rand(len(self.lengths), generator=generator, dtype=torch.float64)
        order = torch.argsort(noisy, stable=True)
        full = len(order) // self.batch_size * self.batch_size
        batches = order[:full].view(-1, self.batch_size)
        shuffled = batches[torch.randperm(len(batches), generator=generator)]
        yield from torch.cat([shuffled.flatten(), order[full:]]).tolist()
