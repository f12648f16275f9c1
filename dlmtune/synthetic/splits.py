"""Deterministic, disjoint train / val / test sets of generated items (SFT pairs: `dlmtune.tasks.generated`).

Each generator yields one stream of distinct items for a seed (Sudoku: distinct puzzle strings;
Countdown: distinct sorted numbers and target). Test takes the first items of the stream, val the
next, train the rest, so test and val stay the same when only the train size changes.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

from dlmtune.synthetic.countdown import generate_problems
from dlmtune.synthetic.sudoku import generate_puzzles

GENERATORS: dict[str, Callable[[int, int], list[dict]]] = {
    "sudoku": generate_puzzles,
    "countdown": generate_problems,
}
SPLITS = ("train", "val", "test")
DEFAULT_N_VAL = 64
DEFAULT_N_TEST = 256  # d1's Sudoku and Countdown test sets have 256 items


def make_splits(task: str, n_train: int, n_val: int, n_test: int, seed: int) -> dict[str, list[dict]]:
    """{"train", "val", "test"} item lists of the given sizes, pairwise disjoint."""
    if task not in GENERATORS:
        raise ValueError(f"no generator for task {task!r}; generated tasks: {', '.join(GENERATORS)}")
    items = copy.deepcopy(list(_generated(task, n_test + n_val + n_train, seed)))
    return {"test": items[:n_test], "val": items[n_test : n_test + n_val], "train": items[n_test + n_val :]}


@functools.lru_cache(maxsize=8)
def _generated(task: str, count: int, seed: int) -> tuple[dict, ...]:
    """The generators are deterministic and slow (Sudoku's checks every puzzle's solution is unique): a
    process training or evaluating several runs on the same data generates it once."""
    return tuple(GENERATORS[task](count, seed))
