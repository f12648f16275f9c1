"""What a smaller demo would report, read off a finished one: the paired weft - sft difference and its two
noises with only the first N seeds and the first K test items of each task.

    python benchmarks/demo_design.py OUT [--seeds 3 4 5] [--items sudoku=64,countdown=256 sudoku=64,countdown=128]

OUT is a finished `dlmtune demo` folder. A demo with fewer seeds trains exactly the first seeds of a larger
one (a seed fixes its data order and masks), and its test items are the first items of the same test split,
evaluated one sampler batch at a time; so when K is a multiple of the evaluation batch (64), the numbers
printed are the ones that smaller demo would report, with no training or evaluation. Used to choose the
demo's seeds and test sizes against its time budget (BENCHMARKS.md, "The demo's design").
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from dlmtune.demo import pooled_accuracy
from dlmtune.report import paired_differences, paired_noise

TASKS = ("sudoku", "countdown")


def smaller_demo(runs: list[dict], seeds: int, items: dict[str, int]) -> list[dict]:
    """The run records of the first `seeds` seeds, each scored on the first `items[task]` test items."""
    kept = []
    for run in runs:
        if run["seed"] is not None and run["seed"] >= seeds:
            continue
        run = copy.deepcopy(run)
        for task, count in items.items():
            run["item_scores"][task] = run["item_scores"][task][:count]
            run["accuracy"][task] = pooled_accuracy(run["item_scores"][task])
        kept.append(run)
    return kept


def parse_items(text: str) -> dict[str, int]:
    return {task: int(count) for task, count in (part.split("=") for part in text.split(","))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--items", type=parse_items, nargs="+",
                        default=[parse_items("sudoku=64,countdown=256"), parse_items("sudoku=64,countdown=128")])
    args = parser.parse_args()
    runs = [json.loads(path.read_text()) for path in sorted((args.out / "runs").glob("*.json"))]
    print("| seeds | test items | task | weft - sft | 95% interval | item noise | seed noise |")
    print("|---|---|---|---|---|---|---|")
    printed = set()  # a task's row depends only on its own item count: print each once
    for seeds in args.seeds:
        for items in args.items:
            subset = smaller_demo(runs, seeds, items)
            differences = paired_differences(subset, TASKS)
            noise = paired_noise(subset, TASKS, differences)
            for task in TASKS:
                if (seeds, task, items[task]) in printed:
                    continue
                printed.add((seeds, task, items[task]))
                d, n = differences["weft"][task], noise["weft"][task]
                print(f"| {seeds} | {items[task]} | {task} | {100 * d['mean']:+.1f} | "
                      f"[{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] | {100 * n['item_se']:.1f} | "
                      f"{100 * n['seed_se']:.1f} |")


if __name__ == "__main__":
    main()
