"""The demo's report, built only from the per-run result files, so every number in it can be audited.

Each run file (`runs/<name>.json`) holds one model's accuracy per task, and for fine-tuned models the
objective, training seed, loss curve and wall times. The report aggregates them per objective: mean
and 95% t-interval over training seeds, beside the base model and the chance level, with a verdict
stated from the measured numbers only.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dlmtune.io import write_json_atomic, write_text_atomic  # noqa: E402

# Two-sided 95% quantiles of Student's t, t_{0.975}(df), df = 1..30; beyond, a Cornish-Fisher expansion.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
Z_975 = 1.959964


def t_quantile_975(df: int) -> float:
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T_975):
        return T_975[df - 1]
    z = Z_975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean and 95% t-interval over seeds; with one value the interval is undefined (None)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def load_runs(folder: str | Path) -> list[dict[str, Any]]:
    """Every run file in `folder`, in name order."""
    return [json.loads(path.read_text()) for path in sorted(Path(folder).glob("*.json"))]


def summarize(runs: list[dict[str, Any]], tasks: Sequence[str]) -> dict[str, Any]:
    """Per model ("base" or an objective): accuracy interval per task and mean training seconds."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(run["objective"], []).append(run)
    summary: dict[str, Any] = {}
    for name, group in groups.items():
        row: dict[str, Any] = {"seeds": sorted(r["seed"] for r in group if r.get("seed") is not None)}
        row["accuracy"] = {task: mean_interval([r["accuracy"][task] for r in group]) for task in tasks}
        train_seconds = [r["train_seconds"] for r in group if r.get("train_seconds") is not None]
        row["train_seconds"] = sum(train_seconds) / len(train_seconds) if train_seconds else None
        summary[name] = row
    return summary


def _fmt(stat: dict[str, Any]) -> str:
    if stat["low"] is None:
        return f"{100 * stat['mean']:.1f}"
    return f"{100 * stat['mean']:.1f} [{100 * stat['low']:.1f}, {100 * stat['high']:.1f}]"


def accuracy_table(summary: dict[str, Any], chance: dict[str, float], tasks: Sequence[str]) -> str:
    """Markdown table: accuracy in % (mean [95% interval] over training seeds) per task and model."""
    lines = [
        "| model | seeds | " + " | ".join(tasks) + " | train s (mean) |",
        "|---|---|" + "---|" * len(tasks) + "---|",
        "| chance | - | " + " | ".join(f"{100 * chance[t]:.1f}" for t in tasks) + " | - |",
    ]
    for name, row in summary.items():
        cells = " | ".join(_fmt(row["accuracy"][t]) for t in tasks)
        seconds = f"{row['train_seconds']:.1f}" if row["train_seconds"] is not None else "-"
        lines.append(f"| {name} | {len(row['seeds']) or '-'} | {cells} | {seconds} |")
    return "\n".join(lines) + "\n"


def verdicts(summary: dict[str, Any], chance: dict[str, float], tasks: Sequence[str],
             baseline: str = "sft") -> list[str]:
    """Plain statements of what the numbers show: above base and chance, and each objective vs the baseline."""
    base = summary.get("base")
    lines = []
    for name, row in summary.items():
        if name == "base":
            continue
        for task in tasks:
            stat = row["accuracy"][task]
            floor = max(chance[task], base["accuracy"][task]["mean"] if base else 0.0)
            if stat["low"] is None:
                clear = "one seed, no interval"
            else:
                clear = "clearly above" if stat["low"] > floor else "NOT clearly above"
            lines.append(f"{name} on {task}: {_fmt(stat)} vs base/chance {100 * floor:.1f} ({clear}).")
    reference = summary.get(baseline)
    for name, row in summary.items():
        if name in ("base", baseline) or reference is None:
            continue
        for task in tasks:
            a, b = row["accuracy"][task], reference["accuracy"][task]
            diff = 100 * (a["mean"] - b["mean"])
            if a["low"] is None or b["low"] is None:
                judged = "one seed: no interval, no conclusion"
            elif a["low"] > b["high"]:
                judged = f"{name} is better here (intervals do not overlap)"
            elif b["low"] > a["high"]:
                judged = f"{name} is WORSE here (intervals do not overlap)"
            else:
                judged = f"the intervals overlap: this run shows no clear difference between {name} and {baseline}"
            lines.append(f"{name} - {baseline} on {task}: {diff:+.1f} points; {judged}.")
    return lines


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Render to memory, then write a temporary file and rename it over `path`."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(buffer.getvalue())
    os.replace(tmp, path)


def plot_report(runs: list[dict[str, Any]], summary: dict[str, Any], chance: dict[str, float],
                tasks: Sequence[str], path: str | Path) -> None:
    """Left: accuracy bars with 95% error bars, base and chance as lines. Right: training-loss curves."""
    objectives = [name for name in summary if name != "base"]
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(len(objectives), 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, name in enumerate(objectives):
        stats = [summary[name]["accuracy"][t] for t in tasks]
        xs = [i + (k - (len(objectives) - 1) / 2) * width for i in range(len(tasks))]
        heights = [100 * s["mean"] for s in stats]
        errors = [[100 * (s["mean"] - s["low"]) if s["low"] is not None else 0 for s in stats],
                  [100 * (s["high"] - s["mean"]) if s["high"] is not None else 0 for s in stats]]
        bars.bar(xs, heights, width, yerr=errors, capsize=4, label=name, color=colors[k % len(colors)])
    for i, task in enumerate(tasks):
        span = (i - 0.45, i + 0.45)
        if "base" in summary:
            base = 100 * summary["base"]["accuracy"][task]["mean"]
            bars.plot(span, (base, base), "k--", label="base" if i == 0 else None)
        bars.plot(span, (100 * chance[task],) * 2, "k:", label="chance" if i == 0 else None)
    bars.set_xticks(range(len(tasks)), tasks)
    bars.set_ylabel("accuracy (%)")
    bars.set_title("held-out accuracy (mean, 95% interval over seeds)")
    bars.legend(fontsize=8)
    for run in runs:
        if not run.get("loss_curve"):
            continue
        k = objectives.index(run["objective"])
        steps, losses = zip(*run["loss_curve"], strict=True)
        curves.plot(steps, losses, color=colors[k % len(colors)], alpha=0.7,
                    label=run["objective"] if run["seed"] == summary[run["objective"]]["seeds"][0] else None)
    curves.set_xlabel("optimizer step")
    curves.set_ylabel("training loss")
    curves.set_title("training loss (one line per seed)")
    curves.legend(fontsize=8)
    save_figure(fig, path)


def training_time_ratios(summary: dict[str, Any]) -> dict[str, float]:
    """Mean training seconds of each fine-tuned objective over sft's (same demo, same machine load)."""
    sft = summary.get("sft")
    if not sft or not sft.get("train_seconds"):
        return {}
    return {name: s["train_seconds"] / sft["train_seconds"] for name, s in summary.items()
            if name not in ("sft", "base") and s.get("train_seconds")}


def write_report(out_dir: str | Path, tasks: Sequence[str], chance: dict[str, float], settings: dict[str, Any],
                 extra_sections: Sequence[str] = ()) -> dict[str, Any]:
    """Build report.md, report.png and report.json in `out_dir` from the files in `out_dir/runs`."""
    out_dir = Path(out_dir)
    runs = load_runs(out_dir / "runs")
    summary = summarize(runs, tasks)
    plot_report(runs, summary, chance, tasks, out_dir / "report.png")
    time_over_sft = training_time_ratios(summary)
    ratio = time_over_sft.get("weft")
    table = accuracy_table(summary, chance, tasks)
    per_run = ["| run | " + " | ".join(tasks) + " | train s | eval s |", "|---|" + "---|" * (len(tasks) + 2)]
    for run in runs:
        seconds = [run.get("train_seconds"), run.get("eval_seconds")]
        per_run.append(f"| {run['name']} | " + " | ".join(f"{100 * run['accuracy'][t]:.1f}" for t in tasks)
                       + " | " + " | ".join(f"{s:.1f}" if s is not None else "-" for s in seconds) + " |")
    sections = [
        "# dlmtune demo: SFT vs WeFT on the embedded tiny dLLM", "",
        "Accuracy in % on held-out items: mean [95% t-interval] over training seeds. Sudoku is cell-level "
        "(correct empty cells / all empty cells); chance is described under Settings.", "",
        table,
        f"WeFT/SFT training time ratio: {ratio:.2f}" if ratio else "WeFT/SFT training time ratio: n/a", "",
        *(["Training time relative to sft: " + ", ".join(f"{name} {value:.2f}" for name, value in time_over_sft.items()),
           ""] if set(time_over_sft) - {"weft"} else []),
        "## What this run shows", "", *[f"- {line}" for line in verdicts(summary, chance, tasks)], "",
        "![accuracy and loss curves](report.png)", "",
        "## Runs", "", *per_run, "",
        *extra_sections,
        "## Settings", "", "```json", json.dumps(settings, indent=2), "```", "",
    ]
    write_text_atomic(out_dir / "report.md", "\n".join(sections))
    payload = {"tasks": list(tasks), "chance": chance, "summary": summary, "weft_over_sft_time": ratio,
               "time_over_sft": time_over_sft}
    write_json_atomic(out_dir / "report.json", payload)
    return payload | {"table": table}
