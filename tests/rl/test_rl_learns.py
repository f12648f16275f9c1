"""`configs/tiny-rl.yaml` (the embedded model, 8 Sudoku prompts with 1-2 empty cells) raises the training reward.

Each comparison is paired: the same run at learning rate 0 rolls out the same prompts with the same
sampler seeds, so the prompt batches' difficulty (the main source of spread in the logged reward)
cancels. The first rollout is identical in both and is left out; the gain of a seed is the mean reward
of the other rollouts minus the frozen run's. How much a run learns varies from seed to seed, so the
test averages the gain over SEEDS and requires MARGIN. Measured gains and the commands: BENCHMARKS.md,
"Does RL raise the reward?". Slow: six RL runs, one to two CPU minutes each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlmtune.rl.config import load_rl_config
from dlmtune.rl.run import run_rl

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-rl.yaml"
SEEDS = (42, 1, 7)
MARGIN = 0.03  # mean over SEEDS of the per-seed gain in cell accuracy, absolute (3 points)


def rollout_rewards(out: Path, learning_rate: float, seed: int) -> list[float]:
    run_rl(load_rl_config(CONFIG, [("output_dir", str(out)), ("learning_rate", learning_rate), ("seed", seed),
                                   ("save_steps", 1000), ("disable_tqdm", True)]))
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r["reward"] for r in records if r.get("rollout_seconds", 0) > 0]


@pytest.mark.slow
def test_tiny_rl_raises_the_reward_over_a_frozen_run(tmp_path):
    learning_rate = load_rl_config(CONFIG, [("output_dir", "x")]).training["learning_rate"]
    gains = {}
    for seed in SEEDS:
        trained = rollout_rewards(tmp_path / f"trained-{seed}", learning_rate, seed)
        frozen = rollout_rewards(tmp_path / f"frozen-{seed}", 0.0, seed)
        assert len(trained) == len(frozen) > 2
        assert trained[0] == frozen[0]  # same prompts, same seeds, same weights at the first rollout
        gains[seed] = sum(trained[1:]) / len(trained[1:]) - sum(frozen[1:]) / len(frozen[1:])
    mean_gain = sum(gains.values()) / len(gains)
    assert mean_gain >= MARGIN, f"gain per seed {gains}, mean {mean_gain:.3f} < {MARGIN}"
