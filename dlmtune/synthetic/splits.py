"""Deterministic, disjoint train / val / test sets of generated items, and SFT pairs built from them.

Each generator yields one stream of distinct items for a seed (Sudoku: distinct puzzle strings;
Countdown: distinct sorted numbers and target). Test takes the first items of the stream, val the
next, train the rest, so test and val stay the same when only the train size changes.
"""

from __future__ import annotations

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
    items = GENERATORS[task](n_test + n_val + n_train, seed)
    return {"test": items[:n_test], "val": items[n_test : n_test + n_val], "train": items[n_test + n_val :]}


def sft_examples(
    task: str,
    n: int,
    seed: int,
    split: str = "train",
    *,
    n_val: int = DEFAULT_N_VAL,
    n_test: int = DEFAULT_N_TEST,
) -> list[dict[str, str]]:
    """`n` {"prompt", "response"} pairs from one split of `make_splits(task, ..., seed)`.

    The prompt is the task's bare question, i.e. the user turn evaluation builds with
    system_prompt=""; the response is the solver's trace in the scorers' format. Keep n_val and
    n_test equal to those of the evaluation split so the sets stay disjoint."""
    from dlmtune.tasks import get_task  # the task modules import this package's generators

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    sizes = {"train": 0, "val": n_val, "test": n_test} | {split: n}
    items = make_splits(task, sizes["train"], sizes["val"], sizes["test"], seed)[split]
    handler = get_task(task)
    return [
        {"prompt": handler.question(item), "response": handler.reference_response(item)} for item in items
    ]
