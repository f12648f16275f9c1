"""Eager against `--torch_compile true` (regional, dynamic shapes) on the demo's own fine-tuning runs:
seconds per step and the compile time a run pays, one process, the runs back to back.

    python benchmarks/compile_cost.py [STEPS]      # default 60 steps per run; single-threaded torch

Each objective (sft, weft) is trained eagerly, then compiled, then compiled again: the second compiled
run finds inductor's on-disk cache warm (as every run after a process's first does). Compile time is the
run's train_runtime minus steps x its median step, so it also holds the recompiles for new lengths. The
cache starts empty, as on a fresh machine.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from dlmtune.train import embedded_config, load_config, run_training


def run(objective: str, steps: int, compiled: bool, folder: Path) -> dict[str, float]:
    shutil.rmtree(folder, ignore_errors=True)
    overrides = [("objective", objective), ("max_steps", steps), ("output_dir", str(folder)), ("save_strategy", "no"),
                 ("disable_tqdm", True), ("torch_compile", compiled)]
    summary = run_training(load_config(embedded_config("tiny"), overrides), quiet=True)
    per_step = summary["seconds_per_step"]
    return {"per_step": per_step, "overhead": summary["train_runtime_s"] - steps * per_step}


def main(steps: int) -> None:
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(scratch) / "inductor")  # cold: a fresh machine's cache
        for objective in ("sft", "weft"):
            eager = run(objective, steps, False, Path(scratch) / "eager")
            cold = run(objective, steps, True, Path(scratch) / "cold")
            warm = run(objective, steps, True, Path(scratch) / "warm")
            rows.append((objective, eager, cold, warm))
    print(f"{steps} steps per run, torch {torch.__version__}, 1 thread")
    print("| objective | eager s/step | compiled s/step | eager / compiled | compile s (first run) | compile s (next run) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for objective, eager, cold, warm in rows:
        print(f"| {objective} | {eager['per_step']:.3f} | {warm['per_step']:.3f} | "
              f"{eager['per_step'] / warm['per_step']:.2f} | {cold['overhead']:.0f} | {warm['overhead']:.0f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
