"""Several training runs and generation lengths in one evaluation: runs are the unit of uncertainty.

The papers report the mean over independent training runs with its uncertainty (GIFT, WeFT arXiv
2509.20863 §4.1: three runs). Evaluation seeds are no substitute where decoding is deterministic: at
temperature 0 with low-confidence remasking every seed yields the same completions, so a spread over
seeds is 0 by construction; `check_seeds` refuses that. d1's tables (d1 arXiv 2504.12216) give one
column per generation length (128, 256, 512), which `--gen-lengths` produces in one command.

Layout with several runs or lengths: OUT/<run>/gen<L>/ holds each evaluation (evaluate.py's layout),
OUT/results.json and OUT/results.md the table: per task, scoring column and length, every run's
accuracy and their mean, standard deviation and 95% t-interval (dlmtune.stats.mean_interval).
"""

from __future__ import annotations

import glob
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dlmtune.io import write_json_atomic, write_text_atomic
from dlmtune.stats import mean_interval
from dlmtune.tasks.protocols.columns import COLUMNS


def check_seeds(seeds: int, temperature: float, remasking: str) -> None:
    """Refuse several evaluation seeds when decoding is deterministic (they would all agree)."""
    if seeds > 1 and temperature == 0 and remasking == "low_confidence":
        raise ValueError(
            f"{seeds} seeds at temperature 0 with low_confidence remasking give identical completions, so "
            "their spread is 0 by construction, not an uncertainty. Evaluate several training runs instead "
            "(--model A,B,C or a glob), or sample (--temperature > 0 or --remasking random).")


def expand_runs(spec: str) -> list[str]:
    """Comma-separated models (folders, Hub ids, presets), each glob expanded in sorted order; a glob that
    matches nothing is an error naming it."""
    runs: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if glob.has_magic(part):
            matches = sorted(glob.glob(part))
            if not matches:
                raise ValueError(f"no model folder matches {part!r}")
            runs += matches
        else:
            runs.append(part)
    if not runs:
        raise ValueError(f"no model given in {spec!r}")
    if len(set(runs)) != len(runs):
        raise ValueError(f"a model is listed twice in {spec!r}; each run counts once")
    return runs


def run_folder_name(run: str) -> str:
    """A folder name for a run: its path or id with anything but letters, digits, . _ - as "_"."""
    return re.sub(r"[^\w.\-]+", "_", run.strip("/")) or "run"


def run_accuracy(task_result: dict[str, Any], column: str) -> float:
    """One run's accuracy for a task under a scoring column (mean over its evaluation seeds)."""
    return task_result["columns"][column]


def summarize_runs(per_run: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """{task: {column: {gen_length: {"runs": {run: acc}, "mean", "sd", "low", "high", "n"}}}} from
    per_run[run][gen_length] = evaluate_model's results; runs without a value (NaN) are left out."""
    summary: dict[str, Any] = {}
    for run, by_length in per_run.items():
        for length, results in by_length.items():
            for task, task_result in results.items():
                for column in COLUMNS:
                    cell = summary.setdefault(task, {}).setdefault(column, {}).setdefault(length, {"runs": {}})
                    cell["runs"][run] = run_accuracy(task_result, column)
    for columns in summary.values():
        for lengths in columns.values():
            for cell in lengths.values():
                values = [v for v in cell["runs"].values() if not math.isnan(v)]
                cell.update(mean_interval(values) if values else {"mean": math.nan, "n": 0})
    return summary


def _cell(cell: dict[str, Any]) -> str:
    if cell.get("n", 0) == 0:
        return "-"
    text = f"{100 * cell['mean']:.1f}"
    if cell.get("sd") is not None:
        text += f" ± {100 * cell['sd']:.1f} [{100 * cell['low']:.1f}, {100 * cell['high']:.1f}]"
    return text


def runs_markdown(summary: dict[str, Any], runs: Sequence[str], lengths: Sequence[int | None]) -> str:
    """The table: a row per task and scoring column, a column per generation length; each cell the mean
    accuracy (%) over runs, then with 2+ runs their standard deviation and the 95% t-interval of the mean."""
    header = " | ".join(f"gen {length or 'default'}" for length in lengths)
    lines = ["# Evaluation over runs", "", f"Runs ({len(runs)}): " + ", ".join(f"`{r}`" for r in runs), "",
             "Cells: mean accuracy (%) over runs ± standard deviation [95% t-interval of the mean]. "
             "dlmtune = dlmtune's scoring, d1 = d1's published scoring, of the same completions.", "",
             f"| task | scoring | {header} |", "|---|---|" + "---|" * len(lengths)]
    for task, columns in summary.items():
        for column in COLUMNS:
            cells = " | ".join(_cell(columns.get(column, {}).get(length, {})) for length in lengths)
            lines.append(f"| {task} | {column} | {cells} |")
    return "\n".join(lines) + "\n"


def evaluate_runs(runs: Sequence[tuple[str, str | None]], lengths: Sequence[int | None],
                  load: Callable[[str, str | None], tuple[Any, Any, Any]], task_items: dict[str, list[dict]],
                  out: Path, generation: dict[str, Any], metadata: dict[str, Any], **evaluate_kwargs: Any,
                  ) -> dict[str, Any]:
    """Evaluate every (model, adapter) run at every generation length (None: each task's default) into
    OUT/<run>/gen<L>/, then write the table over runs (module doc); returns the summary."""
    from accelerate import PartialState

    from dlmtune.evaluate import evaluate_model

    per_run: dict[str, dict[Any, dict[str, Any]]] = {}
    for model_id, adapter in runs:
        label = adapter or model_id
        model, tokenizer, spec = load(model_id, adapter)
        per_run[label] = {}
        for length in lengths:
            per_run[label][length] = evaluate_model(
                model, tokenizer, spec, task_items, out_dir=out / run_folder_name(label) / f"gen{length or 'default'}",
                generation={**generation, "gen_length": length},
                metadata={**metadata, "model": model_id, "adapter": adapter}, **evaluate_kwargs)
        del model
    summary = summarize_runs(per_run)
    if PartialState().is_main_process:
        labels = [str(length or "default") for length in lengths]
        write_json_atomic(out / "results.json", {"metadata": metadata, "runs": list(per_run),
                                                 "gen_lengths": labels, "tasks": _keyed(summary)})
        write_text_atomic(out / "results.md", runs_markdown(summary, list(per_run), lengths))
    return summary


def _keyed(summary: dict[str, Any]) -> dict[str, Any]:
    """JSON keys for the lengths ("default" for None)."""
    return {task: {column: {str(length or "default"): cell for length, cell in lengths.items()}
                   for column, lengths in columns.items()} for task, columns in summary.items()}
