"""`run_rl_stage`, the demo's entry point, returns one reward per step and a folder eval reads."""

from __future__ import annotations

from dlmtune.models.loading import load_model
from dlmtune.rl.stage import rl_stage_overrides, run_rl_stage


def test_rl_stage_returns_the_reward_curve_and_an_eval_folder_and_prints_no_log_records(tmp_path, capsys):
    result = run_rl_stage("preset:micro", {"seed": 3, "rl.max_completion_length": 32, "rl.diffusion_steps": 16},
                          tmp_path / "rl", quick=True)
    assert "'reward'" not in capsys.readouterr().out  # the demo's own bar is the display; log.jsonl has them
    assert len(result["reward_curve"]) == rl_stage_overrides(quick=True)["max_steps"]
    assert all(0 <= r <= 1 for r in result["reward_curve"])
    model, _, _ = load_model(result["output_dir"])
    assert model.config.model_type == "llama"
