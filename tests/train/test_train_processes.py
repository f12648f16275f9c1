"""Runs as users launch them: SIGKILL then resume and two-rank DDP on CPU (gloo) in real processes; the
command line's refusals in-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from dlmtune.cli import app

CONFIG = """
output_dir: {out}
model: {{name_or_path: "preset:micro"}}
data: {{source: "synthetic:countdown", synthetic_size: 48, max_length: 128}}
objective: {{name: weft, beta_refresh_every: 2}}
max_steps: {steps}
per_device_train_batch_size: 8
train_sampling_strategy: group_by_length
learning_rate: 3.0e-3
logging_steps: 1
save_steps: 4
report_to: none
use_cpu: true
seed: 3
disable_tqdm: true
"""


def write_config(folder: Path, out: Path, steps: int) -> Path:
    path = folder / f"{out.name}.yaml"
    path.write_text(CONFIG.format(out=out, steps=steps))
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dlmtune", "train", *args]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def test_sigkill_then_resume_ends_with_the_parameters_of_an_uninterrupted_run(tmp_path):
    steps = 24
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(cli(str(write_config(tmp_path, straight, steps))), check=True, env=env(), capture_output=True)

    config = write_config(tmp_path, killed, steps)
    process = subprocess.Popen(cli(str(config)), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint-8" / "trainer_state.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the run should still be going"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "train_summary.json").exists(), "killed before the end"

    subprocess.run(cli(str(config), "--resume_from_checkpoint", "true"), check=True, env=env(), capture_output=True)
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert all(torch.equal(a[name], b[name]) for name in a)
    logged = [json.loads(line)["step"] for line in (killed / "log.jsonl").read_text().splitlines()]
    train_steps = [s for s in logged if s <= steps][:-1]  # the final record is the run summary
    assert train_steps == sorted(set(train_steps)), "no step logged twice after the resume"
    summary = json.loads((killed / "train_summary.json").read_text())
    assert summary["grad_norm"]["steps"] == steps


def test_two_rank_ddp_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    config = write_config(tmp_path, out, 4)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                "-m", "dlmtune", "train", str(config), "--expected_world_size", "2"]
    result = subprocess.run(torchrun, env=env(ACCELERATE_USE_CPU="1"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["parameters_in_sync"] is True
    assert summary["global_step"] == 4
    checkpoint = out / "checkpoint-4"
    assert (checkpoint / "rng_state_0.pth").exists() and (checkpoint / "rng_state_1.pth").exists(), "both ranks stepped"


def test_fewer_processes_than_expected_stops_with_a_message(tmp_path):
    config = write_config(tmp_path, tmp_path / "one", 2)
    result = CliRunner().invoke(app, ["train", str(config), "--expected_world_size", "2"])
    assert result.exit_code == 2
    assert "expected_world_size is 2 but this run has 1" in result.output


def test_cli_reports_config_errors_without_a_traceback(tmp_path):
    config = write_config(tmp_path, tmp_path / "typo", 2)
    result = CliRunner().invoke(app, ["train", str(config), "--learnin_rate", "1e-4"])
    assert result.exit_code == 2
    assert "unknown key 'learnin_rate' (did you mean 'learning_rate'?)" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
