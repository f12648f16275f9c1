"""`configs/tiny-rl.yaml` (the embedded model, 8 Sudoku prompts with 1-2 empty cells) raises the training reward.

The comparison is paired: the same run at learning rate 0 rolls out the same prompts with the same
sampler seeds, so the prompt batches' difficulty (the main source of spread in the logged reward)
cancels. The first rollout is identical in both and is left out; the mean reward of the other five
rollouts of the 24 steps (seed 42, the config's) must beat the frozen run's by MARGIN. Measured gain and
the commands: BENCHMARKS.md, "RL step". Slow: two RL runs, a few CPU minutes each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlmtune.rl.config import load_rl_config
from dlmtune.rl.run import run_rl

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-rl.yaml"
MARGIN = 0.05  # mean cell accuracy of the completions trained on, absolute (5 points)


def rollout_rewards(out: Path, learning_rate: float) -> list[float]:
    run_rl(load_rl_config(CONFIG, [("output_dir", str(out)), ("learning_rate", learning_rate), ("seed", 42),
                                   ("save_steps", 1000), ("disable_tqdm", True)]))
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r["reward"] for r in records if r.get("rollout_seconds", 0) > 0]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="on the rebuilt base the gain is +4.6 points (seed 42; +2.9 at seed 1), "
                   "below MARGIN; configs/tiny-rl.yaml was tuned on the former base (BENCHMARKS.md, 'RL step')")
def test_tiny_rl_raises_the_reward_over_a_frozen_run(tmp_path):
    trained = rollout_rewards(tmp_path / "trained", load_rl_config(CONFIG, [("output_dir", "x")]).training["learning_rate"])
    frozen = rollout_rewards(tmp_path / "frozen", 0.0)
    assert len(trained) == len(frozen) == 6
    assert trained[0] == frozen[0]  # same prompts, same seeds, same weights at the first rollout
    gain = sum(trained[1:]) / len(trained[1:]) - sum(frozen[1:]) / len(frozen[1:])
    assert gain >= MARGIN, f"rewards {trained} vs frozen {frozen}"
