"""Batch order under group_by_length: the pretraining recipe's loss over its first steps with dlmtune's
length-grouped batches in random order against transformers' LengthGroupedSampler (long-to-short sweeps
inside each megabatch of 50 batches).

    OMP_NUM_THREADS=1 python benchmarks/batch_order.py [STEPS]

Both runs are configs/pretrain-tiny.yaml as `dlmtune pretrain` runs it (the 4500-step schedule), stopped
after STEPS steps (default 300); printed: the mean logged loss of each 50-step window.
"""

from __future__ import annotations

import statistics
import sys
import tempfile

from transformers import TrainerCallback

from dlmtune.train import embedded_config, load_config, run_training


class StopAt(TrainerCallback):
    def __init__(self, steps: int):
        self.steps, self.losses = steps, []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(logs["loss"])

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= self.steps


def losses(shuffled: bool, steps: int) -> list[float]:
    with tempfile.TemporaryDirectory() as out:
        overrides = [("output_dir", out), ("shuffle_length_groups", shuffled), ("logging_steps", 1),
                     ("save_strategy", "no"), ("disable_tqdm", True)]
        stop = StopAt(steps)
        run_training(load_config(embedded_config("pretrain-tiny"), overrides), [stop], quiet=True)
        return stop.losses


def main(steps: int) -> None:
    curves = {"transformers' LengthGroupedSampler": losses(False, steps), "shuffled length groups": losses(True, steps)}
    windows = range(0, steps, 50)
    print("| steps | " + " | ".join(curves) + " |")
    print("| --- |" + " --- |" * len(curves))
    for start in windows:
        cells = [f"{statistics.fmean(c[start : start + 50]):.2f}" for c in curves.values()]
        print(f"| {start + 1}-{min(start + 50, steps)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
