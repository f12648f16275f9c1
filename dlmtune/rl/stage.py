"""The RL stage of the demo: continue a fine-tuned tiny run with diffu-GRPO on the embedded Sudoku task.

`run_rl_stage(model_dir, overrides, out_dir)` is what `dlmtune demo --rl` calls once per fine-tuned seed
(sft and weft alike), the analogue of the papers' cold start -> RL on Sudoku (WeFT arXiv 2509.20863
§4.3). Prompts are the demo's Sudoku train split (the fine-tuning config's `data.synthetic_seed`, so the test split stays held out),
asked as the bare question and answered in the demo's evaluation settings (64 tokens, block 32, one
step per two tokens), so the policy is trained on the prompt format and sampler it is evaluated with.
The sizes are chosen for the demo's time budget on two CPU cores (BENCHMARKS.md, "RL step").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlmtune.config import read_yaml
from dlmtune.data import DataConfig
from dlmtune.rl.config import load_rl_config
from dlmtune.rl.run import run_rl
from dlmtune.train import embedded_config

DEMO_RL: dict[str, Any] = {
    "data.task": "sudoku", "data.source": "generated", "data.size": 256,
    "data.system_prompt": "", "data.max_prompt_length": 64,
    "rl.algorithm": "diffu-grpo", "rl.num_generations": 6, "rl.num_iterations": 4,
    "rl.max_completion_length": 64, "rl.block_length": 32, "rl.diffusion_steps": 32,
    "rl.generation_batch_size": 12,
    "per_device_train_batch_size": 12, "gradient_accumulation_steps": 1, "max_steps": 16,
    "learning_rate": 2e-4, "warmup_steps": 0, "lr_scheduler_type": "constant",
    "logging_steps": 1, "save_strategy": "no", "use_cpu": True, "report_to": "none", "disable_tqdm": True,
}
QUICK_RL: dict[str, Any] = {"max_steps": 8}


def rl_stage_overrides(quick: bool = False) -> dict[str, Any]:
    """The demo's RL settings (dotted config keys -> values), the quick demo's when `quick`."""
    return {**DEMO_RL, "data.seed": demo_data_seed(), **(QUICK_RL if quick else {})}


def demo_data_seed() -> int:
    """The seed of the demo's generated splits: its fine-tuning config's `data.synthetic_seed`."""
    data = read_yaml(embedded_config("tiny")).get("data") or {}
    return int(data.get("synthetic_seed", DataConfig.synthetic_seed))


def run_rl_stage(model_dir: str | Path, config_overrides: dict[str, Any] | None, out_dir: str | Path,
                 quick: bool = False) -> dict[str, Any]:
    """RL on `model_dir` (a save_pretrained folder) into `out_dir`; returns {"reward_curve": the mean reward
    of the completions each step trained on, "output_dir": the trained model folder, "summary": timing}.
    Quiet: the steps' log records go to OUT_DIR/log.jsonl only.
    `config_overrides` (dotted keys, e.g. {"seed": 1}) go over the demo's settings."""
    overrides = {**rl_stage_overrides(quick), **(config_overrides or {}), "model": str(model_dir),
                 "output_dir": str(out_dir)}
    summary = run_rl(load_rl_config(None, list(overrides.items())), quiet=True)
    records = [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines()]
    curve = [record["reward"] for record in records if "reward" in record]
    return {"reward_curve": curve, "output_dir": str(out_dir), "summary": summary}
