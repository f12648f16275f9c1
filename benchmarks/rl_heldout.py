"""Held-out Sudoku reward of models before and after `dlmtune rl configs/tiny-rl.yaml`.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rl_heldout.py embedded:base-tiny /tmp/rl-bench

Scores each model on 64 generated puzzles with 1-2 empty cells (seed 999; none of them among
tiny-rl.yaml's training prompts, checked) with the RL run's sampler settings (64 tokens, block 32,
32 steps) at temperature 0.9 with sampler seeds 42 and 43, and greedily; prints cell accuracy.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from dlmtune.evaluate import evaluate_model
from dlmtune.models.loading import load_model
from dlmtune.rl.config import load_rl_config
from dlmtune.rl.prompts import load_items
from dlmtune.synthetic.splits import GENERATORS

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny-rl.yaml"


def held_out_items(n: int = 64) -> list[dict]:
    seen = {item["puzzle"] for item in load_items(load_rl_config(CONFIG).data)}
    return [i for i in GENERATORS["sudoku"](2 * n, 999, min_empty=1, max_empty=2) if i["puzzle"] not in seen][:n]


def main(models: list[str]) -> None:
    items = held_out_items()
    for name in models:
        model, tokenizer, spec = load_model(name)
        for temperature, seeds in ((0.9, [42, 43]), (0.0, [42])):
            results = evaluate_model(model, tokenizer, spec, {"sudoku": items}, out_dir=Path(tempfile.mkdtemp()),
                                     seeds=seeds, system_prompt="", progress=False,
                                     generation={"gen_length": 64, "block_length": 32, "steps": 32,
                                                 "batch_size": 64, "temperature": temperature})
            per_seed = {seed: round(s["accuracy"], 4) for seed, s in results["sudoku"]["per_seed"].items()}
            print(f"{name}  temperature {temperature}: {results['sudoku']['mean']:.4f} {per_seed}")


if __name__ == "__main__":
    main(sys.argv[1:])
