"""LLaDA's plain sampler against Fast-dLLM's dual KV cache as the demo's evaluation sampler, on the demo's
own fine-tuned models: accuracy per run, the paired weft - sft difference under each, and evaluation time.

    OMP_NUM_THREADS=1 python benchmarks/demo_eval_sampler.py OUT [--workers 2]

OUT is a finished `dlmtune demo` folder (its OUT/work/<run>/train models and OUT/runs/<run>.json). Each run
is evaluated with both samplers in one process, in an order that alternates from run to run, on the demo's
test items and settings; runs go to `--workers` processes. Greedy decoding is deterministic, so the
evaluation with the demo's own sampler must reproduce the accuracy recorded in the run file (checked).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch

from dlmtune.demo import DemoConfig, base_folder, demo_data, evaluate_run
from dlmtune.models.loading import load_model
from dlmtune.stats import mean_interval, paired_difference


def evaluate_both(out: Path, record: dict, order: tuple[str | None, ...]) -> dict:
    torch.set_num_threads(1)
    config = DemoConfig()
    _, test = demo_data(config)
    folder = out / "work" / record["name"] / "train" if record["seed"] is not None else base_folder(config)
    model, tokenizer, spec = load_model(str(folder))
    results = {}
    for cache in order:
        name = cache or "plain"
        results[name] = evaluate_run(model, tokenizer, spec, test, replace(config, cache=cache),
                                     out / "work" / record["name"] / f"sampler-{name}", progress=False)
    return {"name": record["name"], "objective": record["objective"], "seed": record["seed"],
            "recorded": record["accuracy"], "recorded_with": record["settings"]["evaluation"].get("cache") or "plain",
            "dual": results["dual"], "plain": results["plain"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    records = [json.loads(p.read_text()) for p in sorted((args.out / "runs").glob("*.json"))]
    if not records:
        raise SystemExit(f"{args.out}/runs: no run files; run `dlmtune demo --out {args.out}` first")
    orders = [("dual", None) if i % 2 == 0 else (None, "dual") for i in range(len(records))]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        rows = list(pool.map(evaluate_both, [args.out] * len(records), records, orders))
    tasks = list(rows[0]["recorded"])
    print("| run | " + " | ".join(f"{t} dual | {t} plain" for t in tasks) + " | eval s dual | eval s plain |")
    print("|---|" + "---|---|" * len(tasks) + "---|---|")
    for row in rows:
        for task in tasks:
            if abs(row[row["recorded_with"]]["accuracy"][task] - row["recorded"][task]) > 1e-12:
                raise SystemExit(f"{row['name']}: re-evaluating {task} with the demo's sampler does not reproduce "
                                 "the run file")
        cells = " | ".join(f"{100 * row['dual']['accuracy'][t]:.1f} | {100 * row['plain']['accuracy'][t]:.1f}"
                           for t in tasks)
        print(f"| {row['name']} | {cells} | {row['dual']['eval_seconds']:.1f} | {row['plain']['eval_seconds']:.1f} |")
    tuned = [row for row in rows if row["seed"] is not None]
    by = {(row["objective"], row["seed"]): row for row in tuned}
    seeds = sorted(seed for objective, seed in by if objective == "sft" and ("weft", seed) in by)
    for task in tasks:
        change = mean_interval([row["dual"]["accuracy"][task] - row["plain"]["accuracy"][task] for row in tuned])
        print(f"{task}: dual - plain over the {len(tuned)} fine-tuned runs {100 * change['mean']:+.2f} points "
              f"[{100 * change['low']:+.2f}, {100 * change['high']:+.2f}]")
        for sampler in ("dual", "plain"):
            diff = paired_difference([by["weft", s][sampler]["accuracy"][task] for s in seeds],
                                     [by["sft", s][sampler]["accuracy"][task] for s in seeds])
            print(f"  weft - sft with {sampler}: {100 * diff['mean']:+.1f} [{100 * diff['low']:+.1f}, "
                  f"{100 * diff['high']:+.1f}]")
    dual = sum(row["dual"]["eval_seconds"] for row in rows)
    plain = sum(row["plain"]["eval_seconds"] for row in rows)
    print(f"evaluation seconds summed over {len(rows)} runs: dual {dual:.0f}, plain {plain:.0f}, "
          f"plain / dual {plain / dual:.2f}")


if __name__ == "__main__":
    main()
