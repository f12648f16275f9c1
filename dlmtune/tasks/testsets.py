"""The papers' test sets, loaded as published, items drawn the way the papers draw them.

d1 (arXiv 2504.12216, repository dllm-reasoning/d1) evaluates on: GSM8K test (all 1319, Hub
openai/gsm8k "main"), MATH-500 (all 500, Hub HuggingFaceH4/MATH-500), and two files of its own,
dataset/4x4_test_sudoku.csv (500 puzzles, columns Puzzle,Solution) and dataset/countdown_cd3_test.jsonl
(256 lines {"input": "a,b,c", "output": "t"}), of which it evaluates 256 items drawn with numpy's
global generator seeded 42 (`np.random.choice(n, 256, replace=False)`, in that order). wd1 (arXiv
2507.08838, repository xiaohangt/wd1) ships the same two files and the same draw, and GIFT (WeFT arXiv
2509.20863, App. C.2) follows wd1: all three name one test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlmtune.tasks import get_task

DATA_DIR = Path("data")
_D1_RAW = "https://raw.githubusercontent.com/dllm-reasoning/d1/main/dataset/"


@dataclass(frozen=True)
class PublishedSet:
    """Where one task's published test set lives: a repository file or a Hub dataset, and d1's draw."""

    file: str | None = None
    hub_id: str | None = None
    draw: int | None = None  # items drawn with seed 42 (d1); None = every item in file order
    seed: int = 42

    def where(self) -> str:
        return _D1_RAW + self.file if self.file else f"the Hub dataset {self.hub_id} (split test)"


_D1 = {
    "sudoku": PublishedSet(file="4x4_test_sudoku.csv", draw=256),
    "countdown": PublishedSet(file="countdown_cd3_test.jsonl", draw=256),
    "gsm8k": PublishedSet(hub_id="openai/gsm8k"),
    "math500": PublishedSet(hub_id="HuggingFaceH4/MATH-500"),
}
TESTSETS: dict[str, dict[str, PublishedSet]] = {"d1": _D1, "wd1": _D1}


def d1_draw(n: int, k: int, seed: int = 42) -> list[int]:
    """Indices d1 evaluates, in its order: k of range(n) without replacement from numpy's legacy
    generator seeded `seed` (nothing else draws from it before, in d1's eval.py)."""
    if k > n:
        raise ValueError(f"cannot draw {k} items from a test set of {n}")
    return np.random.RandomState(seed).choice(n, k, replace=False).tolist()


def load_testset(task_name: str, testset: str = "d1", source: str | Path | None = None,
                 data_dir: Path = DATA_DIR, limit: int | None = None) -> list[dict]:
    """The items of `task_name` in the published test set `testset`, drawn as the paper draws them.

    The file comes from `source` if given, else DATA_DIR/<its published name>; a Hub set from `source`
    (a local copy) or its Hub id. Offline without a copy, the error names the file to download."""
    if testset not in TESTSETS:
        raise ValueError(f"unknown test set {testset!r}; known: {', '.join(TESTSETS)}")
    published = TESTSETS[testset][task_name]
    task = get_task(task_name)
    if source is None and published.file:
        source = data_dir / published.file
        if not Path(source).is_file():
            raise FileNotFoundError(
                f"{task_name}: the {testset} test set is the file {published.file}, not found at {source}; "
                f"download {published.where()} into {data_dir}/ (or pass --data {task_name}=PATH)")
    try:
        items = task.load(source or published.hub_id)
    except Exception as error:  # datasets raises many types when the Hub is unreachable
        if source is not None:
            raise
        raise RuntimeError(
            f"{task_name}: the {testset} test set is {published.where()}, which could not be loaded "
            f"({type(error).__name__}: {error}). Offline, save its test split on a connected machine "
            f"(datasets.load_dataset({published.hub_id!r}, ...)['test'].to_json('{task_name}_test.jsonl')) "
            f"and pass --data {task_name}={task_name}_test.jsonl") from error
    if published.draw is not None:
        items = [items[i] for i in d1_draw(len(items), published.draw, published.seed)]
    return items[:limit] if limit is not None else items
