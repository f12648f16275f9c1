"""The RL stage after SFT / WeFT: diffu-GRPO (d1, arXiv 2504.12216) and wd1 (arXiv 2507.08838).

`dlmtune rl CONFIG.yaml` trains with `RLTrainer`, a `transformers.Trainer` subclass beside
`DiffusionTrainer` rather than a TRL `GRPOTrainer` subclass; `dlmtune.rl.trainer` says why. The math is
in pure tensor functions (`losses`, `logprobs`), the rest one concept per module: `config` (the `rl` and
`data` sections), `prompts` (items and their schedule), `rewards` (from the task scorers), `rollouts`
(sampling and scoring), `trainer`, `run` (the command) and `stage` (RL on a fine-tuned tiny run, for the demo).
"""

from __future__ import annotations

from dlmtune.rl.config import ALGORITHMS, RLConfig, RLDataConfig, load_rl_config
from dlmtune.rl.losses import diffu_grpo_loss, group_advantages, wd1_loss
from dlmtune.rl.stage import run_rl_stage

__all__ = ["ALGORITHMS", "RLConfig", "RLDataConfig", "diffu_grpo_loss", "group_advantages", "load_rl_config",
           "run_rl_stage", "wd1_loss"]
