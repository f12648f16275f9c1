"""Sampler benchmark: plain LLaDA sampling vs prefix / dual KV cache, threshold decoding, and both, same items.

    .venv/bin/dlmtune train configs/tiny.yaml --objective sft --output_dir runs/tiny-sft
    .venv/bin/python benchmarks/bench_sampler.py --model runs/tiny-sft --items 128 --out runs/bench-sampler

Every variant decodes the same held-out items (the first N of the generated Sudoku and Countdown test
sets: `load_task_items(task, None, N)`, i.e. the test split that configs/tiny.yaml's synthetic training
data is disjoint from) with the same model, prompts (d1 format, bare question: `system_prompt=""`, as the
SFT data and `dlmtune demo` use), left-padded batches and scorers as `dlmtune eval`, at temperature 0
with low-confidence remasking. Generation settings are the evaluation protocol's (block 32, steps =
gen_length / 2; `--steps-ratio 1` for Fast-dLLM's one token per step) with the demo's lengths
(`DemoConfig.gen_length`, or `--gen-length`); all variants get the same steps budget, so "dual cache +
threshold" is what `dlmtune eval --fast` does on top of the plain protocol.

Timing is interleaved in one process: items are cut into batches, and every batch is decoded by every
variant (and every torch thread count given with --threads) in an order rotated from batch to batch, so
machine load drifts hit all variants alike. Reported per variant: tokens/s = generated tokens
(gen_length x items) / generation seconds, the speed-up over plain (ratio of summed seconds, plus the
median and range of the per-batch ratios), model forwards per batch, accuracy per task (Sudoku: correct
empty cells / empty cells; Countdown: expressions hitting the target) with its paired difference from
plain in percentage points (+- a paired standard error), and the share of items whose completion is
identical to plain's. One untimed warm-up batch per variant comes first.

Writes OUT/bench_sampler.json, OUT/bench_sampler.md (the printed table) and every completion as
OUT/completions/<variant>/<task>.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from dlmtune.bench_sampling import ForwardCounter
from dlmtune.demo import DemoConfig
from dlmtune.evaluate import GenerationSettings, load_task_items
from dlmtune.io import write_json_atomic, write_text_atomic
from dlmtune.models.loading import load_model
from dlmtune.sampling import DLMForward, decode_completions, generate
from dlmtune.stats import mean_interval, standard_error
from dlmtune.tasks import get_task

GEN_LENGTH = DemoConfig().gen_length


def variants(threshold: float) -> dict[str, dict[str, Any]]:
    return {
        "plain": {},
        "prefix cache": {"cache": "prefix"},
        "dual cache": {"cache": "dual"},
        f"threshold {threshold:g}": {"threshold": threshold},
        f"prefix cache + threshold {threshold:g}": {"cache": "prefix", "threshold": threshold},
        f"dual cache + threshold {threshold:g}": {"cache": "dual", "threshold": threshold},
    }


def decode_batch(model, tokenizer, spec, prompts: list[str], settings: GenerationSettings) -> list[str]:
    """What `dlmtune eval` does for one batch (dlmtune.evaluate): left-padded prompts, generate, cut at EOS."""
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    output = generate(
        model, encoded["input_ids"], attention_mask=encoded["attention_mask"], mask_id=spec.mask_token_id,
        gen_length=settings.gen_length, block_length=settings.block_length, steps=settings.steps,
        temperature=settings.temperature, remasking=settings.remasking, threshold=settings.threshold,
        cache=settings.cache, shift_logits=spec.shift_logits,
    )
    return decode_completions(tokenizer, output, encoded["input_ids"].shape[1], spec.stop_token_ids)


def paired_difference(records: list[dict], reference: list[dict]) -> tuple[float, float]:
    """Accuracy difference (points) from `reference` on the same items, and its paired standard error:
    the per-item differences in correct cells, scaled from their mean to points of all cells."""
    total = sum(r["total"] for r in reference)
    diffs = [r["correct"] - p["correct"] for r, p in zip(records, reference, strict=True)]
    scale = 100 * len(diffs) / total
    return scale * mean_interval(diffs)["mean"], scale * standard_error(diffs)


def run(args: argparse.Namespace) -> dict[str, Any]:
    model, tokenizer, spec = load_model(args.model)
    model.eval()
    forward = DLMForward.of(model)
    if not forward.supports_cache:
        print(f"warning: {args.model} cannot use a KV cache (no position ids / cache argument): "
              "the cache variants will decode without it")
    tasks = [t for t in args.tasks.split(",") if t]
    threads = [int(t) for t in str(args.threads).split(",")]
    modes = variants(args.threshold)
    runs = [(mode, n) for mode in modes for n in threads]  # every (variant, threads) pair, timed alike
    label = {run: run[0] if len(threads) == 1 else f"{run[0]} ({run[1]} thr)" for run in runs}

    work = []  # (task, item indices, prompts, settings per mode) per batch
    items: dict[str, list[dict]] = {}
    task_settings: dict[str, dict[str, GenerationSettings]] = {}
    for task_name in tasks:
        task = get_task(task_name)
        items[task_name] = load_task_items(task_name, None, args.items)
        gen_length = args.gen_length or GEN_LENGTH.get(task_name, task.default_gen_length)
        steps = args.steps or max(gen_length // args.steps_ratio, 1)
        base = GenerationSettings.for_task(task, gen_length=gen_length, block_length=args.block_length,
                                           steps=steps, batch_size=args.batch_size)
        task_settings[task_name] = {mode: replace(base, **options) for mode, options in modes.items()}
        prompts = [task.prompt(tokenizer, item, system_prompt=args.system_prompt) for item in items[task_name]]
        for start in range(0, len(prompts), args.batch_size):
            batch = list(range(start, min(start + args.batch_size, len(prompts))))
            work.append((task_name, batch, [prompts[i] for i in batch], task_settings[task_name]))

    counter = ForwardCounter(model)
    for (mode, n) in runs:  # warm-up: one untimed small batch per run (first allocations, thread pools)
        torch.set_num_threads(n)
        task_name, batch, prompts, settings = work[0]
        decode_batch(model, tokenizer, spec, prompts[:2], settings[mode])

    seconds = {run: {t: 0.0 for t in tasks} for run in runs}
    forwards = {run: {t: 0 for t in tasks} for run in runs}
    batch_seconds: dict[tuple, list[float]] = {run: [] for run in runs}
    completions: dict[tuple, dict[str, dict[int, str]]] = {run: {t: {} for t in tasks} for run in runs}
    wall = time.perf_counter()
    for k, (task_name, batch, prompts, settings) in enumerate(work):
        shift = k % len(runs)
        for run_key in runs[shift:] + runs[:shift]:
            mode, n = run_key
            torch.set_num_threads(n)
            calls = counter.calls
            start = time.perf_counter()
            texts = decode_batch(model, tokenizer, spec, prompts, settings[mode])
            elapsed = time.perf_counter() - start
            seconds[run_key][task_name] += elapsed
            batch_seconds[run_key].append(elapsed)
            forwards[run_key][task_name] += counter.calls - calls
            completions[run_key][task_name].update(zip(batch, texts, strict=True))
        if args.progress:
            print(f"batch {k + 1}/{len(work)} ({task_name}) done, {time.perf_counter() - wall:.0f} s", flush=True)
    counter.handle.remove()

    reference = runs[0]  # plain at the first thread count
    results: dict[str, Any] = {}
    records: dict[tuple, dict[str, list[dict]]] = {}
    for run_key in runs:
        mode, n = run_key
        per_task = {}
        records[run_key] = {}
        for task_name in tasks:
            task = get_task(task_name)
            recs = []
            for i, item in enumerate(items[task_name]):
                text = completions[run_key][task_name][i]
                score = task.score(text, item)
                recs.append({"index": i, "completion": text, "extracted": score.extracted,
                             "correct": score.correct, "total": score.total})
            records[run_key][task_name] = recs
            settings = task_settings[task_name][mode]
            tokens = settings.gen_length * len(recs)
            n_batches = sum(1 for w in work if w[0] == task_name)
            per_task[task_name] = {
                "items": len(recs), "tokens": tokens, "seconds": seconds[run_key][task_name],
                "tokens_per_s": tokens / seconds[run_key][task_name],
                "forwards_per_batch": forwards[run_key][task_name] / n_batches,
                "accuracy": sum(r["correct"] for r in recs) / sum(r["total"] for r in recs),
                "settings": asdict(settings),
            }
        total_tokens = sum(p["tokens"] for p in per_task.values())
        total_seconds = sum(p["seconds"] for p in per_task.values())
        results[label[run_key]] = {"variant": mode, "threads": n, "tasks": per_task,
                                   "tokens_per_s": total_tokens / total_seconds, "seconds": total_seconds}
    plain = results[label[reference]]
    for run_key in runs:
        r = results[label[run_key]]
        r["speedup"] = plain["seconds"] / r["seconds"]
        ratios = [p / v for p, v in zip(batch_seconds[reference], batch_seconds[run_key], strict=True)]
        r["speedup_per_batch"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
        for task_name in tasks:
            ours, theirs = records[run_key][task_name], records[reference][task_name]
            diff, stderr = paired_difference(ours, theirs)
            t = r["tasks"][task_name]
            t["accuracy_diff_points"], t["accuracy_diff_stderr_points"] = diff, stderr
            t["identical_to_plain"] = sum(a["completion"] == b["completion"] for a, b in zip(ours, theirs, strict=True)) / len(ours)
            t["speedup"] = plain["tasks"][task_name]["seconds"] / t["seconds"]
    for run_key in runs:
        for task_name in tasks:
            folder = args.out / "completions" / label[run_key].replace(" ", "_").replace("(", "").replace(")", "")
            folder.mkdir(parents=True, exist_ok=True)
            text = "".join(json.dumps(r) + "\n" for r in records[run_key][task_name])
            write_text_atomic(folder / f"{task_name}.jsonl", text)
    return {
        "command": args.command_line,
        "model": str(args.model),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "cuda": torch.cuda.is_available()},
        "args": {k: str(v) for k, v in vars(args).items() if k != "command_line"},
        "batches": len(work),
        "wall_seconds": time.perf_counter() - wall,
        "variants": results,
    }


def markdown(payload: dict[str, Any]) -> str:
    first = next(iter(payload["variants"].values()))
    tasks = list(first["tasks"])
    header = (["variant", "tok/s"] + [f"{t} tok/s" for t in tasks] + ["speed-up (per-batch median, range)"]
              + [f"forwards/batch {t}" for t in tasks]
              + [f"{t} acc (Δ pts ± s.e.)" for t in tasks] + ["same output as plain"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in payload["variants"].items():
        spb = r["speedup_per_batch"]
        acc = []
        for t in tasks:
            x = r["tasks"][t]
            delta = ("" if name == next(iter(payload["variants"]))
                     else f" ({x['accuracy_diff_points']:+.1f} ± {x['accuracy_diff_stderr_points']:.1f})")
            acc.append(f"{100 * x['accuracy']:.1f}%{delta}")
        same = sum(r["tasks"][t]["identical_to_plain"] * r["tasks"][t]["items"] for t in tasks) / sum(
            r["tasks"][t]["items"] for t in tasks)
        cells = ([name, f"{r['tokens_per_s']:.0f}"] + [f"{r['tasks'][t]['tokens_per_s']:.0f}" for t in tasks]
                 + [f"{r['speedup']:.2f}x ({spb['median']:.2f}, {spb['min']:.2f}–{spb['max']:.2f})"]
                 + [f"{r['tasks'][t]['forwards_per_batch']:.1f}" for t in tasks] + acc + [f"{100 * same:.0f}%"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    import shlex
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/tiny-sft", help="model folder (default: runs/tiny-sft)")
    parser.add_argument("--tasks", default="sudoku,countdown")
    parser.add_argument("--items", type=int, default=128, help="held-out items per task")
    parser.add_argument("--gen-length", type=int, default=None, help="default: the demo's (sudoku 64, countdown 32)")
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps, every task (default: see next)")
    parser.add_argument("--steps-ratio", type=int, default=2,
                        help="steps = gen_length / ratio; 2 is the eval protocol, 1 Fast-dLLM's one token per step")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", default="1", help="torch threads; a list (1,2) times each alike")
    parser.add_argument("--system-prompt", default="", help="'' = the bare question, as in training")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-sampler"))
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    args.command_line = " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv])

    payload = run(args)
    table = markdown(payload)
    write_json_atomic(args.out / "bench_sampler.json", payload)
    write_text_atomic(args.out / "bench_sampler.md", table)
    print(table)
    print(f"wrote {args.out / 'bench_sampler.json'} and {args.out / 'bench_sampler.md'}")


if __name__ == "__main__":
    main()
