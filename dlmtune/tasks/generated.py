"""SFT pairs of the generated tasks (Sudoku, Countdown): a split's items, asked as the task asks them and
answered with the solver's trace in the scorer's format."""

from __future__ import annotations

from dlmtune.synthetic.splits import DEFAULT_N_TEST, DEFAULT_N_VAL, SPLITS, make_splits
from dlmtune.tasks.countdown import CountdownTask
from dlmtune.tasks.sudoku import SudokuTask

GENERATED_TASKS = {task.name: task for task in (SudokuTask(), CountdownTask())}


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
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if task not in GENERATED_TASKS:
        raise ValueError(f"no generator for task {task!r}; generated tasks: {', '.join(GENERATED_TASKS)}")
    sizes = {"train": 0, "val": n_val, "test": n_test} | {split: n}
    items = make_splits(task, sizes["train"], sizes["val"], sizes["test"], seed)[split]
    handler = GENERATED_TASKS[task]
    return [{"prompt": handler.question(item), "response": handler.reference_response(item)} for item in items]


def interleaved_examples(tasks: list[str], n: int, seed: int, split: str = "train") -> list[dict[str, str]]:
    """`n` pairs of each task in turn (task 1's first, task 2's first, ..., task 1's second, ...): every
    stretch of the data mixes the tasks, so a run's first steps already see all of them."""
    per_task = [sft_examples(task, n, seed, split) for task in tasks]
    return [example for group in zip(*per_task, strict=True) for example in group]
