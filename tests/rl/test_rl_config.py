"""RL configs: the shipped ones load, defaults are d1's / wd1's, and bad input fails clearly before loading."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlmtune.cli import app
from dlmtune.config import ConfigError
from dlmtune.rl.config import RLDataConfig, load_rl_config
from dlmtune.rl.prompts import PromptSet
from dlmtune.rl.rewards import build_rewards
from dlmtune.tasks import get_task

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*-rl.yaml")))
def test_shipped_configs_load_and_open_with_their_command(name):
    path = CONFIGS / name
    assert "dlmtune rl configs/" + name in path.read_text().splitlines()[0]
    config = load_rl_config(path)
    assert config.rl.num_generations >= 2 and config.training["output_dir"]


def test_defaults_are_d1s_and_wd1s():
    d1 = load_rl_config(None, [("output_dir", "x")])
    assert (d1.rl.num_generations, d1.rl.p_mask_prompt, d1.rl.beta, d1.rl.epsilon, d1.rl.num_iterations) == (
        6, 0.15, 0.04, 0.5, 12)
    assert (d1.rl.block_length, d1.rl.max_completion_length, d1.rl.diffusion_steps, d1.rl.temperature) == (
        32, 256, 128, 0.9)
    assert d1.training["learning_rate"] == 3e-6 and d1.training["max_grad_norm"] == 0.2
    with_lora = load_rl_config(None, [("output_dir", "x"), ("lora", True)])
    assert (with_lora.lora.r, with_lora.lora.alpha) == (128, 64)
    wd1 = load_rl_config(None, [("output_dir", "x"), ("rl", "wd1")])
    assert (wd1.rl.num_iterations, wd1.rl.beta) == (8, 0.0)


@pytest.mark.parametrize(("overrides", "message"), [
    ([("rl.rewards", {"corectness": 1.0})], r"unknown reward function\(s\) \['corectness'\]; known: correctness, format"),
    ([("rl.num_generations", 1)], "num_generations must be >= 2"),
    ([("data.task", "chess")], "unknown task 'chess'"),
    ([("rl", "wd1"), ("rl.beta", 0.04)], "wd1's objective has no KL term"),
    ([("rl.algoritm", "wd1")], "unknown key 'algoritm' .*did you mean 'algorithm'"),
    ([("per_device_train_batch_size", 4)], "must be a multiple of rl.num_generations"),
])
def test_bad_config_fails_with_a_clear_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_rl_config(None, [("output_dir", "x"), *overrides])


def test_a_task_without_a_scorer_is_refused():
    class Unscored:
        name = "unscored"
        score = None

    with pytest.raises(ValueError, match="task 'unscored' has no scorer"):
        build_rewards(Unscored(), {"correctness": 1.0})


def test_a_prompt_longer_than_max_prompt_length_is_refused(tokenizer):
    with pytest.raises(ValueError, match=r"prompt 0 of 'generated' has \d+ tokens, more than max_prompt_length=20"):
        PromptSet.build(RLDataConfig(size=4, system_prompt="", max_prompt_length=20), tokenizer)


def test_rewards_read_the_task_score_and_the_format():
    rewards = build_rewards(get_task("sudoku"), {"correctness": 1.0, "format": 0.5})
    item = {"puzzle": "1234341221434321"[:14] + "00", "solution": "1234341221434321"}
    good = "<reasoning>\nfill\n</reasoning>\n<answer>\n1234341221434321\n</answer>"
    half = "<reasoning>\n</reasoning><answer>1234341221434312</answer>"
    assert rewards.score(good, item) == [1.0, 1.0]
    assert rewards.score(half, item) == [0.0, 1.0]  # both empty cells wrong
    assert rewards.score("<reasoning> no answer", item) == [0.0, 0.0]
    assert rewards.weights == (1.0, 0.5)


def test_cli_reports_config_errors_with_exit_code_2():
    result = CliRunner().invoke(app, ["rl", str(CONFIGS / "tiny-rl.yaml"), "--rl.num_generations", "1"])
    assert result.exit_code == 2
    assert "num_generations must be >= 2" in result.output
