"""Every completion scored under both protocols, so a results table shows how much of a difference between
two numbers is the scorer: "dlmtune" on the clean decode, "d1" on the raw one (special tokens kept)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from dlmtune.tasks import get_task

COLUMNS: tuple[str, ...] = ("dlmtune", "d1")


def score_columns(task_name: str, completion: str, raw_completion: str, item: dict) -> dict[str, dict]:
    """{protocol: {"correct", "total", "extracted", "timed_out"}} for each column, each on the decode it reads."""
    scores = {}
    for protocol in COLUMNS:
        task = get_task(task_name, protocol)
        score = task.score(raw_completion if task.raw_decode else completion, item)
        scores[protocol] = {"correct": score.correct, "total": score.total, "extracted": score.extracted,
                            "timed_out": score.timed_out}
    return scores


def column_accuracies(records: Iterable[dict]) -> dict[str, float]:
    """Accuracy (sum correct / sum total) per column over completion records that carry "scores";
    NaN for a column no record has (completions written before the columns existed)."""
    sums = {column: [0.0, 0.0] for column in COLUMNS}
    for record in records:
        for column, score in record.get("scores", {}).items():
            if column in sums:
                sums[column][0] += score["correct"]
                sums[column][1] += score["total"]
    return {column: correct / total if total else math.nan for column, (correct, total) in sums.items()}


def disagreements(task_name: str, seed: int, records: Iterable[dict]) -> list[dict[str, Any]]:
    """The items whose verdicts differ between the columns, with both verdicts and what each extracted."""
    found = []
    for record in records:
        scores = record.get("scores", {})
        verdicts = {c: (scores[c]["correct"], scores[c]["total"]) for c in COLUMNS if c in scores}
        if len(set(verdicts.values())) > 1:
            found.append({"task": task_name, "seed": seed, "index": record["index"], "scores": scores,
                          "completion": record["completion"], "raw_completion": record.get("raw_completion")})
    return found
