"""Short RL runs on the micro preset: what is logged and saved, LoRA and full, and resume = uninterrupted.

A random micro model never writes a Sudoku answer, so these runs score completions by their share of
digit characters (registered for the test only): rewards then differ within a group and every update
has a gradient. The Sudoku reward itself is exercised on the embedded model in `test_rl_learns.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from dlmtune.models.loading import load_model
from dlmtune.rl import rewards as rewards_module
from dlmtune.rl.config import load_rl_config
from dlmtune.rl.run import run_rl


def digit_share(task):
    def reward(response: str, item: dict) -> float:
        body = response.removeprefix("<reasoning>")
        return sum(c.isdigit() for c in body) / max(len(body), 1)

    return reward


@pytest.fixture(autouse=True)
def _digit_reward(monkeypatch):
    monkeypatch.setitem(rewards_module.REWARD_FUNCTIONS, "digits", digit_share)


def micro_config(out, **extra):
    overrides = {
        "model": "preset:micro", "output_dir": str(out),
        "data.size": 16, "data.generator": {"min_empty": 1, "max_empty": 2}, "data.system_prompt": "",
        "data.max_prompt_length": 128,
        "rl.num_generations": 2, "rl.num_iterations": 2, "rl.max_completion_length": 8, "rl.block_length": 8,
        "rl.diffusion_steps": 4, "rl.generation_batch_size": 8, "rl.temperature": 1.0,
        "rl.rewards": {"digits": 1.0},
        "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "max_steps": 4,
        "learning_rate": 1e-2, "warmup_steps": 0, "logging_steps": 1, "save_steps": 2, "use_cpu": True,
        "disable_tqdm": True, "report_to": "none", **extra,
    }
    return load_rl_config(None, list(overrides.items()))


def trainable_start(config):
    model, _, _ = load_model(config.model.name_or_path)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_full_run_logs_every_step_changes_every_parameter_and_saves_an_eval_folder(tmp_path):
    config = micro_config(tmp_path / "run")
    before = trainable_start(config)
    summary = run_rl(config)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for key in ("reward", "reward_std", "rewards/digits", "kl", "clip_fraction", "completion_length",
                "rollout_seconds", "update_seconds", "step_seconds"):
        assert all(key in r for r in steps), key
    assert steps[0]["rollout_seconds"] > 0 and steps[1]["rollout_seconds"] == 0  # rollouts at steps 0, 2
    assert steps[0]["reward"] == steps[1]["reward"]  # inner updates train on the same completions
    assert summary["global_step"] == 4 and 0 < summary["rollout_share"] < 1
    trained, _, _ = load_model(str(tmp_path / "run"))  # what `dlmtune eval --model OUT` loads
    unchanged = [n for n, p in trained.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged


def test_lora_run_uses_the_base_as_reference_and_saves_an_adapter(tmp_path):
    config = micro_config(tmp_path / "lora", lora={"r": 4, "alpha": 8, "dropout": 0.0}, max_steps=2)
    run_rl(config)
    assert (tmp_path / "lora" / "adapter_config.json").exists()
    records = [json.loads(line) for line in (tmp_path / "lora" / "log.jsonl").read_text().splitlines()]
    kl = [r["kl"] for r in records if "kl" in r]
    assert kl[0] == 0 and kl[-1] > 0  # adapters start at zero (policy = base), then move away
    model, _, _ = load_model(str(tmp_path / "lora"))
    assert hasattr(model, "peft_config")


def test_wd1_run_has_no_reference_and_trains(tmp_path):
    config = micro_config(tmp_path / "wd1", rl="wd1", max_steps=2)
    before = trainable_start(config)
    run_rl(config)
    records = [json.loads(line) for line in (tmp_path / "wd1" / "log.jsonl").read_text().splitlines()]
    assert all("kl" not in r for r in records) and any("positive_weight_max" in r for r in records)
    trained, _, _ = load_model(str(tmp_path / "wd1"))
    assert any(not torch.equal(p, before[n]) for n, p in trained.named_parameters())


class StopAt(TrainerCallback):
    """Ends training after `step`, as a kill right after that step's checkpoint would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_resume_mid_rollout_gives_the_uninterrupted_parameters(tmp_path):
    extra = {"rl.num_iterations": 3, "max_steps": 5, "save_steps": 2}  # step 2 trains on step 0's rollout
    run_rl(micro_config(tmp_path / "straight", **extra))
    run_rl(micro_config(tmp_path / "killed", **extra), callbacks=[StopAt(2)])
    assert (tmp_path / "killed" / "checkpoint-2" / "rollouts-rank0.safetensors").exists()
    assert not (tmp_path / "killed" / "checkpoint-4").exists()  # it did stop at step 2
    run_rl(micro_config(tmp_path / "killed", resume_from_checkpoint=True, **extra))
    straight = load_file(str(tmp_path / "straight" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "killed" / "model.safetensors"))
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    logged = [json.loads(line)["step"] for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert logged == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_two_rank_ddp_on_cpu_splits_rollouts_and_keeps_parameters_in_sync(tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541",
               str(Path(__file__).with_name("ddp_run.py")), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "rl_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["parameters_in_sync"] is True
    ranks = [load_file(str(out / "checkpoint-4" / f"rollouts-rank{r}.safetensors")) for r in (0, 1)]
    assert not torch.equal(ranks[0]["0.prompt_ids"], ranks[1]["0.prompt_ids"])  # each rank its own prompts
