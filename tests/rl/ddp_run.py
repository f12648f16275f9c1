"""One RL run on the micro preset with the digit-share reward, for `test_two_rank_ddp_on_cpu` to torchrun."""

import sys

from dlmtune.rl import rewards
from tests.rl.test_rl_trainer import digit_share, micro_config

rewards.REWARD_FUNCTIONS["digits"] = digit_share

if __name__ == "__main__":
    from dlmtune.rl.run import run_rl

    run_rl(micro_config(sys.argv[1], expected_world_size=2, gradient_accumulation_steps=1))
