"""Solved examples for k-shot prompts, from a file, a Hub dataset, or the task's training split.

GIFT (WeFT arXiv 2509.20863, App. G) reports 5-shot GSM8K and MATH500. d1 (arXiv 2504.12216,
eval/math500.py) draws its k examples with Python's `random` seeded 42, `sample(range(n), k)`, from the
Hub dataset EleutherAI/hendrycks_math ("algebra", train); GSM8K's training split is openai/gsm8k
("main", train). The same draw is used here for every source, over the candidates that are not
evaluated items (for a training split: all of them, so d1's picks are reproduced).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from dlmtune.tasks import get_task
from dlmtune.tasks.base import FieldError
from dlmtune.tasks.extract import last_boxed
from dlmtune.tasks.loading import read_records

TRAIN_SPLITS: dict[str, tuple[str, str]] = {
    "gsm8k": ("openai/gsm8k", "main"),
    "math500": ("EleutherAI/hendrycks_math", "algebra"),
}


def _with_answer(task_name: str, record: dict) -> dict:
    """MATH training records carry only the worked solution: their answer is its last \\boxed{}."""
    if task_name == "math500" and not record.get("answer") and record.get("solution"):
        return {**record, "answer": last_boxed(record["solution"])}
    return record


def _pool(task_name: str, source: str | Path) -> list[dict]:
    task = get_task(task_name)
    if source == "train":
        if hasattr(task, "generate"):
            return task.generate(1000, seed=1234)
        if task_name not in TRAIN_SPLITS:
            raise ValueError(f"{task_name}: no training split known; pass --shots-from FILE")
        source, config = TRAIN_SPLITS[task_name]
    else:
        config = task.hub_config
    items = []
    for location, record in read_records(source, "train", config):
        try:
            items.append(task.normalize(_with_answer(task_name, record)))
        except FieldError as error:
            raise ValueError(f"{source}: {location}: {error}") from None
    return items


def load_shots(task_name: str, k: int, source: str | Path, exclude: Sequence[dict] = (),
               seed: int = 42) -> list[dict]:
    """k solved items from `source` ("train", a local file, or a Hub id; split "train"), drawn as d1
    draws them, none equal to an evaluated item."""
    if k <= 0:
        return []
    excluded = {json.dumps(item, sort_keys=True) for item in exclude}
    candidates = [item for item in _pool(task_name, source) if json.dumps(item, sort_keys=True) not in excluded]
    if len(candidates) < k:
        raise ValueError(f"{task_name}: {source} has {len(candidates)} usable examples, fewer than --shots {k}")
    return [candidates[i] for i in random.Random(seed).sample(range(len(candidates)), k)]
