"""A demo needs a pretrained base: a few steps of `configs/pretrain-tiny.yaml` on the micro preset stand in
for the shipped one, so the demo tests run in seconds."""

from __future__ import annotations

from pathlib import Path

from dlmtune.train import embedded_config, load_config, run_training


def pretrain_micro_base(folder: Path, documents: int, steps: int) -> Path:
    """`dlmtune pretrain`'s recipe on the micro preset, `documents` per task, `steps` steps, into `folder`."""
    overrides = {"output_dir": str(folder), "model": "preset:micro", "data.synthetic_size": documents,
                 "max_steps": steps, "per_device_train_batch_size": 8, "save_strategy": "no", "disable_tqdm": True}
    run_training(load_config(embedded_config("pretrain-tiny"), list(overrides.items())))
    return folder
