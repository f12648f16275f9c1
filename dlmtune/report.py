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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dlmtune.io import write_bytes_atomic, write_json_atomic, write_text_atomic  # noqa: E402
from dlmtune.stats import mean_interval, paired_difference, ratio_mean_se  # noqa: E402


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


def format_interval(stat: dict[str, Any], signed: bool = False) -> str:
    """A `dlmtune.stats.mean_interval` in percent: "mean [low, high]", or the mean alone without an interval;
    `signed` writes "+" on positive numbers (differences)."""
    spec = "+.1f" if signed else ".1f"
    if stat["low"] is None:
        return f"{100 * stat['mean']:{spec}}"
    return f"{100 * stat['mean']:{spec}} [{100 * stat['low']:{spec}}, {100 * stat['high']:{spec}}]"


def accuracy_table(summary: dict[str, Any], chance: dict[str, float], tasks: Sequence[str]) -> str:
    """Markdown table: accuracy in % (mean [95% interval] over training seeds) per task and model."""
    lines = [
        "| model | seeds | " + " | ".join(tasks) + " | train s (mean) |",
        "|---|---|" + "---|" * len(tasks) + "---|",
        "| chance | - | " + " | ".join(f"{100 * chance[t]:.1f}" for t in tasks) + " | - |",
    ]
    for name, row in summary.items():
        cells = " | ".join(format_interval(row["accuracy"][t]) for t in tasks)
        seconds = f"{row['train_seconds']:.1f}" if row["train_seconds"] is not None else "-"
        lines.append(f"| {name} | {len(row['seeds']) or '-'} | {cells} | {seconds} |")
    return "\n".join(lines) + "\n"


def verdicts(summary: dict[str, Any], chance: dict[str, float], tasks: Sequence[str]) -> list[str]:
    """Plain statements of what the numbers show: each fine-tuned model against the base and chance."""
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
            lines.append(f"{name} on {task}: {format_interval(stat)} vs base/chance {100 * floor:.1f} ({clear}).")
    return lines


def seeded_runs(runs: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """The fine-tuned runs (those with a training seed) by objective, then seed: the pairing of the paired
    statistics."""
    by_objective: dict[str, dict[int, dict[str, Any]]] = {}
    for run in runs:
        if run.get("seed") is not None:
            by_objective.setdefault(run["objective"], {})[run["seed"]] = run
    return by_objective


def paired_differences(runs: list[dict[str, Any]], tasks: Sequence[str], baseline: str = "sft") -> dict[str, Any]:
    """Per objective other than the baseline, per task: the paired difference objective - baseline over the
    seeds both ran (same seed = same data order and initial weights), as `dlmtune.stats.paired_difference`."""
    by_objective = seeded_runs(runs)
    reference = by_objective.get(baseline, {})
    result = {}
    for name, seeds in by_objective.items():
        common = sorted(set(seeds) & set(reference))
        if name == baseline or not common:
            continue
        result[name] = {task: paired_difference([seeds[s]["accuracy"][task] for s in common],
                                                [reference[s]["accuracy"][task] for s in common]) for task in tasks}
    return result


def difference_verdict(diff: dict[str, Any]) -> str:
    """What a paired 95% interval says about the difference."""
    if diff["low"] is None:
        return "one seed: no interval, no conclusion"
    if diff["low"] > 0:
        return "better: the 95% interval lies above 0"
    if diff["high"] < 0:
        return "WORSE: the 95% interval lies below 0"
    return "no clear difference: the 95% interval includes 0"


def difference_table(differences: dict[str, Any], tasks: Sequence[str], baseline: str = "sft") -> str:
    """Markdown table of the paired differences in points, with the verdict of each interval."""
    lines = ["| comparison | task | seeds | mean | 95% interval | half-width | verdict |", "|---|---|---|---|---|---|---|"]
    for name, per_task in differences.items():
        for task in tasks:
            d = per_task[task]
            interval = "-" if d["low"] is None else f"[{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
            half = "-" if d["low"] is None else f"{100 * (d['high'] - d['low']) / 2:.1f}"
            lines.append(f"| {name} - {baseline} | {task} | {d['n']} | {100 * d['mean']:+.1f} | {interval} | {half} | "
                         f"{difference_verdict(d)} |")
    return "\n".join(lines) + "\n"


def paired_noise(runs: list[dict[str, Any]], tasks: Sequence[str], differences: dict[str, Any],
                 baseline: str = "sft") -> dict[str, Any]:
    """Per compared objective and task, the two noises of its mean paired difference: item noise, the
    standard error over test items of the per-item difference averaged over the paired seeds (cell-weighted
    for Sudoku: `dlmtune.stats.ratio_mean_se`), i.e. how far another test set of the same size would move it;
    and seed noise, sd over seeds / sqrt(seeds), how far other training seeds would move it. Needs the run
    files' `item_scores`; a comparison with a run lacking them is left out."""
    by_objective = seeded_runs(runs)
    reference = by_objective.get(baseline, {})
    result: dict[str, Any] = {}
    for name, per_task in differences.items():
        common = sorted(set(by_objective[name]) & set(reference))  # the seeds of the difference
        if not all(run.get("item_scores") for s in common for run in (by_objective[name][s], reference[s])):
            continue
        result[name] = {}
        for task in tasks:
            pairs = [(by_objective[name][s]["item_scores"][task], reference[s]["item_scores"][task]) for s in common]
            gains = [sum(ours[i][0] - theirs[i][0] for ours, theirs in pairs) / len(pairs)
                     for i in range(len(pairs[0][1]))]
            _, item_se = ratio_mean_se(gains, [total for _, total in pairs[0][1]])
            sd = per_task[task]["sd"]
            result[name][task] = {"items": len(gains), "seeds": len(common), "item_se": item_se,
                                  "seed_se": None if sd is None else sd / math.sqrt(per_task[task]["n"])}
    return result


def noise_lines(noise: dict[str, Any], baseline: str = "sft") -> list[str]:
    lines = ["| comparison | task | test items | seeds | item noise (s.e.) | seed noise (s.e.) |",
             "|---|---|---|---|---|---|"]
    for name, per_task in noise.items():
        for task, n in per_task.items():
            seed_se = "-" if n["seed_se"] is None else f"{100 * n['seed_se']:.1f}"
            lines.append(f"| {name} - {baseline} | {task} | {n['items']} | {n['seeds']} | {100 * n['item_se']:.1f} | "
                         f"{seed_se} |")
    return lines


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Render to memory, then write it atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


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
    if curves.get_legend_handles_labels()[0]:  # no labelled line when no run logged a loss (very short runs)
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
    differences = paired_differences(runs, tasks)
    noise = paired_noise(runs, tasks, differences)
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
        "## WeFT vs SFT: paired differences", "",
        "Accuracy difference in points, objective - sft, per training seed (the two runs of a seed share the "
        "data order and initial weights), then the mean and 95% t-interval over seeds; the verdict is the "
        "interval's.", "",
        difference_table(differences, tasks) if differences else "No objective shares a seed with sft.\n",
        "Two noises of each mean difference, in points: item noise is how far another test set of the same "
        "size would move it (standard error over the test items of their difference averaged over the seeds; "
        "Sudoku's weighted by empty cells), seed noise how far other training seeds would move it (sd over seeds "
        "/ sqrt(seeds); the t-interval above is built from it, on this test set).", "",
        *noise_lines(noise), "",
        "## What this run shows", "", *[f"- {line}" for line in verdicts(summary, chance, tasks)],
        *[f"- {name} - sft on {task}: {100 * d['mean']:+.1f} points, {difference_verdict(d)}."
          for name, per_task in differences.items() for task, d in per_task.items()], "",
        "![accuracy and loss curves](report.png)", "",
        "## Runs", "", *per_run, "",
        *extra_sections,
        "## Settings", "", "```json", json.dumps(settings, indent=2), "```", "",
    ]
    write_text_atomic(out_dir / "report.md", "\n".join(sections))
    payload = {"tasks": list(tasks), "chance": chance, "summary": summary, "weft_over_sft_time": ratio,
               "time_over_sft": time_over_sft, "paired_difference": differences.get("weft", {}),
               "paired_differences_vs_sft": differences, "noise": noise}
    write_json_atomic(out_dir / "report.json", payload)
    return payload | {"table": table}
