"""Replays a careless or hostile user: hostile answers for the scorers, diverging training, resuming a
finished run, folders shared by runs, eval settings that do not fit, YAML 1.1 numbers and every user error
at the command line. Each case failed before the fix (a hang, NaN weights saved with exit 0, a step past
max_steps, silently mixed runs, a traceback, a poisoned folder)."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from dlmtune.cli import app
from dlmtune.config import ConfigError
from dlmtune.errors import describe
from dlmtune.evaluate import aggregate, results_markdown
from dlmtune.guards import RunFolderError, output_dir_lock
from dlmtune.models.presets import build_preset_model
from dlmtune.nonfinite import NonFiniteError
from dlmtune.tasks.extract import all_boxed, last_boxed
from dlmtune.tasks.math500 import Math500Task
from dlmtune.tasks.verify_worker import GRACE_S, VerifyWorker
from dlmtune.train import load_config, run_training

TIMEOUT_S = 1.0
BOUND_S = TIMEOUT_S + GRACE_S + 1.0  # the stated limit, plus slack for a loaded machine
HOSTILE = [r"\boxed{9^{9^{9}}}", r"\boxed{100000!!}", r"\boxed{(x+1)^{1000}}", r"\boxed{\boxed{" * 2000 + "1"]


# --- scorers -------------------------------------------------------------------------------------------------
def test_boxed_scan_is_linear_on_nested_and_unclosed_boxes():
    """The old scan re-read the rest of the text for every unclosed \\boxed{ (minutes at this size)."""
    n = 20_000
    start = time.perf_counter()
    assert all_boxed(r"\boxed{" * n) == []
    assert last_boxed(r"\boxed{" * n + "7" + "}" * n) == r"\boxed{" * (n - 1) + "7" + "}" * (n - 1)
    assert all_boxed("{" * n + r"\boxed{1} \boxed 2") == ["1", "2"]
    assert time.perf_counter() - start < 5.0


@pytest.fixture(scope="module")
def math500():
    task = Math500Task(timeout_s=TIMEOUT_S)
    assert task.score(r"\boxed{\frac{2}{4}}", {"answer": "0.5"}).correct == 1.0  # starts the worker
    return task


@pytest.mark.parametrize("completion", HOSTILE, ids=["tower", "double-factorial", "power", "nested"])
def test_hostile_answers_return_in_time_and_score_zero(math500, completion):
    start = time.perf_counter()
    score = math500.score(completion, {"answer": "2"})
    assert time.perf_counter() - start < BOUND_S
    assert score.correct == 0.0 and score.total == 1.0


def test_hostile_answers_are_bounded_from_worker_threads(math500):
    """math-verify's own timeouts (signal.alarm) only work in the main thread."""
    def timed(completion):
        start = time.perf_counter()
        return math500.score(completion, {"answer": "2"}), time.perf_counter() - start

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(timed, HOSTILE[:2]))
    assert all(score.timed_out and score.correct == 0 for score, _ in results)
    assert max(seconds for _, seconds in results) < 2 * BOUND_S  # the two share one worker, one at a time
    assert math500.score(r"\boxed{1+1}", {"answer": "2"}).correct == 1.0


def test_a_stuck_worker_is_killed_and_replaced():
    """A computation the child's timer cannot interrupt (here: the child stopped) ends in a kill."""
    worker = VerifyWorker()
    assert worker.equivalent("2", "1+1", TIMEOUT_S) is True
    stuck = worker._process
    os.kill(stuck.pid, signal.SIGSTOP)
    start = time.perf_counter()
    assert worker.equivalent("2", "3", TIMEOUT_S) is None
    assert time.perf_counter() - start < BOUND_S
    assert stuck.poll() is not None, "the stuck child was killed"
    assert worker.equivalent("2", "4/2", TIMEOUT_S) is True
    worker.close()


def test_timed_out_items_are_counted_in_the_results(tmp_path):
    folder = tmp_path / "completions"
    folder.mkdir()
    records = [{"index": 0, "completion": "c", "extracted": "9^{9^{9}}", "correct": 0.0, "total": 1.0,
                "timed_out": True},
               {"index": 1, "completion": "c", "extracted": "2", "correct": 1.0, "total": 1.0, "timed_out": False}]
    (folder / "math500-seed42.rank0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    results = aggregate(tmp_path, {"math500": [{"answer": "1"}, {"answer": "2"}]}, [42])
    assert results["math500"]["timed_out"] == 1
    assert results["math500"]["per_seed"]["42"]["timed_out"] == 1
    assert "math500: 1 timed out" in results_markdown(results)


# --- training ------------------------------------------------------------------------------------------------
def micro(out: Path, **extra) -> list[tuple[str, object]]:
    values = {"output_dir": str(out), "model.name_or_path": "preset:micro", "data.source": "synthetic:countdown",
              "data.synthetic_size": 48, "data.max_length": 128, "max_steps": 4, "per_device_train_batch_size": 8,
              "learning_rate": 3e-3, "logging_steps": 1, "save_steps": 2, "report_to": "none", "use_cpu": True,
              "seed": 7, "disable_tqdm": True}
    return list({**values, **extra}.items())


def train(out: Path, **extra):
    return run_training(load_config(None, micro(out, **extra)))


def logged_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)]


def all_finite(path: Path) -> bool:
    return all(torch.isfinite(t).all() for t in load_file(str(path)).values())


DIVERGING = {"learning_rate": 1e6, "weight_decay": 0.1, "lr_scheduler_type": "constant", "max_steps": 6}


def test_a_diverging_run_stops_and_saves_nothing_non_finite(tmp_path):
    with pytest.raises(NonFiniteError, match=r"step \d+: .*Lower the learning rate"):
        train(tmp_path, **DIVERGING, save_steps=1)
    assert not (tmp_path / "model.safetensors").exists(), "no final model"
    checkpoints = sorted(tmp_path.glob("checkpoint-*"))
    assert all(all_finite(c / "model.safetensors") for c in checkpoints)
    assert (tmp_path / "dlmtune_train.yaml").exists(), "the config is written at the start"


def test_skip_mode_drops_non_finite_steps(tmp_path):
    summary = train(tmp_path, **DIVERGING, nonfinite="skip", save_strategy="no")
    assert summary["skipped_steps"], "this run diverges within 6 steps"
    assert all_finite(tmp_path / "model.safetensors")


@pytest.mark.parametrize(("tensors", "finite"), [
    ([torch.ones(3), torch.tensor([3e38, -3e38])], True),  # huge but finite: a 2-norm would overflow
    ([torch.ones(3), torch.zeros(0)], True),  # an empty shard
    ([torch.zeros(0)], True),
    ([torch.ones(2, dtype=torch.bfloat16), torch.tensor([1.0, float("nan")])], False),
    ([torch.ones(2, dtype=torch.bfloat16), torch.tensor([float("-inf")])], False),
])
def test_the_guards_finiteness_check(tensors, finite):
    from dlmtune.nonfinite import _all_finite

    assert _all_finite(tensors) is finite


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    train(out, lr_scheduler_type="constant")
    return out


def test_relaunching_a_finished_run_says_so_and_trains_nothing(finished_run):
    before = (finished_run / "model.safetensors").read_bytes()
    summary = train(finished_run, lr_scheduler_type="constant", resume_from_checkpoint=True)
    assert summary["already_finished"] and summary["global_step"] == 4
    assert max(logged_steps(finished_run)) == 4
    assert (finished_run / "model.safetensors").read_bytes() == before


def test_killed_during_the_final_save_finishes_from_the_last_checkpoint(tmp_path):
    train(tmp_path, lr_scheduler_type="constant")
    (tmp_path / "model.safetensors").unlink()  # as if killed after checkpoint-4, before the final save
    (tmp_path / "train_summary.json").unlink()
    summary = train(tmp_path, lr_scheduler_type="constant", resume_from_checkpoint=True)
    assert summary["global_step"] == 4 and max(logged_steps(tmp_path)) == 4
    final, checkpoint = load_file(str(tmp_path / "model.safetensors")), load_file(str(tmp_path / "checkpoint-4/model.safetensors"))
    assert all(torch.equal(final[k], checkpoint[k]) for k in checkpoint)


def test_resume_refuses_a_changed_config_naming_each_difference(finished_run):
    with pytest.raises(RunFolderError) as refused:
        train(finished_run, lr_scheduler_type="constant", resume_from_checkpoint=True, objective="weft",
              learning_rate=1e-2, seed=8, logging_steps=2)
    message = str(refused.value)
    for difference in ("objective.name: 'sft' -> 'weft'", "training.learning_rate: 0.003 -> 0.01", "training.seed"):
        assert difference in message
    assert "logging_steps" not in message, "logging does not change the result"


def test_a_new_run_into_an_old_runs_folder_is_refused_unless_overwritten(tmp_path):
    train(tmp_path, max_steps=2)
    with pytest.raises(RunFolderError, match="already holds a run"):
        train(tmp_path, max_steps=2)
    (tmp_path / "checkpoint-2").rename(tmp_path / "checkpoint-900")  # an old run's later checkpoint
    train(tmp_path, max_steps=2, overwrite_output_dir=True)
    assert not (tmp_path / "checkpoint-900").exists(), "a later resume cannot pick the old run's checkpoint"
    assert logged_steps(tmp_path) == [1, 2], "the old run's log is gone"


def test_a_folder_in_use_is_refused_and_a_dead_runs_lock_is_taken_over(tmp_path):
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with output_dir_lock(tmp_path):  # written by this process, then claimed for the sleeping one
            lock = json.loads((tmp_path / ".dlmtune.lock").read_text())
            (tmp_path / ".dlmtune.lock").write_text(json.dumps({**lock, "pid": alive.pid}))
            with pytest.raises(RunFolderError, match=f"process {alive.pid}"):
                train(tmp_path)
    finally:
        alive.kill()
        alive.wait()
    (tmp_path / ".dlmtune.lock").write_text(json.dumps({**lock, "pid": alive.pid}))  # now a dead process
    with output_dir_lock(tmp_path):
        assert json.loads((tmp_path / ".dlmtune.lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".dlmtune.lock").exists()


# --- config values -------------------------------------------------------------------------------------------
def test_yaml_12_numbers_in_files_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("output_dir: x\ndata: {source: 'synthetic:countdown'}\nlearning_rate: 2e-5\n"
                    "weight_decay: 1E-2\nsave_strategy: no\n")
    config = load_config(path, [("max_grad_norm", 1e6)])
    assert config.training["learning_rate"] == 2e-5 and config.training["weight_decay"] == 0.01
    assert config.training["save_strategy"] == "no"
    from dlmtune.config import parse_overrides
    assert parse_overrides(["--learning_rate", "1e6"]) == [("learning_rate", 1e6)]


@pytest.mark.parametrize(("text", "override", "expected"), [
    ("learning_rate: fast\n", [], r"run.yaml: learning_rate: expected a number, got 'fast'"),
    ("", [("max_steps", "ten")], "command line: --max_steps: expected an integer"),
    ("lora: {r: 1.5}\n", [], "run.yaml: lora: r: expected an integer"),
    ("", [("model.dtype", "float33")], "dtype: expected one of"),
])
def test_wrong_types_are_named_with_file_or_flag_and_key(tmp_path, text, override, expected):
    path = tmp_path / "run.yaml"
    path.write_text("output_dir: x\ndata: {source: 'synthetic:countdown'}\n" + text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path, override)


# --- the command line ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    path = root / "base.yaml"
    path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in micro(root / "unused") if "." not in k)
                    + "\nmodel: {name_or_path: 'preset:micro'}\n"
                    "data: {source: 'synthetic:countdown', synthetic_size: 48, max_length: 128}\n")
    return path


@pytest.mark.parametrize(("flags", "expected"), [
    (["--learning_rate", "fast"], "learning_rate: expected a number"),
    (["--learning_rate", "-1e-3"], "learning_rate must be a finite number >= 0"),
    (["--per_device_train_batch_size", "0"], "per_device_train_batch_size must be >= 1"),
    (["--lora.r", "0"], r"r \(the LoRA rank\) must be >= 1"),
    (["--model.dtype", "float33"], "dtype: expected one of"),
    (["--max_steps", "-5"], "max_steps must be a positive number"),
    (["--max_steps", "0"], "max_steps must be a positive number"),
    (["--resume_from_checkpoint", "true"], "no complete checkpoint"),
    (["--learning_rate", "1e6", "--weight_decay", "0.1", "--max_steps", "6"], r"step \d+: the .* not finite"),
])
def test_train_user_errors_are_one_message_and_exit_2(tmp_path, config_file, flags, expected):
    result = CliRunner().invoke(app, ["train", str(config_file), "--output_dir", str(tmp_path / "out"), *flags])
    assert result.exit_code == 2, result.output
    assert re.search(expected, result.output), result.output
    assert "Traceback" not in result.output


def test_non_utf8_data_is_a_message(tmp_path, config_file):
    data = tmp_path / "data.jsonl"
    data.write_bytes(b'{"prompt": "caf\xe9", "response": "x"}\n')
    result = CliRunner().invoke(app, ["train", str(config_file), "--output_dir", str(tmp_path / "out"),
                                      "--data.source", str(data)])
    assert result.exit_code == 2, result.output
    assert "utf-8" in result.output.lower()


def test_debug_shows_the_traceback(tmp_path, config_file):
    result = CliRunner().invoke(app, ["--debug", "train", str(config_file), "--output_dir", str(tmp_path), "--max_steps", "-5"])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)


def test_oom_disk_full_and_bugs_are_told_apart():
    assert "--batch-size" in describe(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert "disk is full" in describe(OSError(errno.ENOSPC, "No space left on device"))
    assert "disk is full" in describe(RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter "
                                                   "failed writing file data/0: file write failed"))
    assert describe(TypeError("a bug")) is None and describe(KeyError("x")) is None


@pytest.fixture(scope="module")
def eval_workspace(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("eval")
    build_preset_model("micro", tokenizer, seed=0).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    for name, answer in (("a", "2"), ("b", "3")):
        (root / f"{name}.jsonl").write_text(json.dumps({"problem": "Compute 1 + 1.", "answer": answer}) + "\n")
    return root


def run_eval(root: Path, out: Path, *flags: str):
    return CliRunner().invoke(app, ["eval", "--model", str(root / "model"), "--tasks", "math500", "--out", str(out),
                                    "--gen-length", "8", "--block-length", "8", "--steps", "4", *flags])


@pytest.mark.parametrize("flags", [["--batch-size", "-3"], ["--limit", "-5"], ["--limit", "0"], ["--seeds", "0"],
                                   ["--shots", "-1"], ["--threshold", "0"], ["--gen-length", "0"]])
def test_eval_numbers_are_range_checked(tmp_path, eval_workspace, flags):
    result = run_eval(eval_workspace, tmp_path / "out", "--data", f"math500={eval_workspace / 'a.jsonl'}", *flags)
    assert result.exit_code == 2
    assert flags[0].lstrip("-").replace("-", "_") in result.output.replace("-", "_")
    assert not (tmp_path / "out").exists()


def test_eval_settings_are_checked_before_anything_is_written(tmp_path, eval_workspace):
    data = ["--data", f"math500={eval_workspace / 'a.jsonl'}"]
    bad = CliRunner().invoke(app, ["eval", "--model", str(eval_workspace / "model"), "--tasks", "math500",
                                   "--out", str(tmp_path), "--gen-length", "50", "--block-length", "32", *data])
    assert bad.exit_code == 2 and "multiple of block_length" in bad.output
    assert not (tmp_path / "completions").exists()
    assert run_eval(eval_workspace, tmp_path, *data).exit_code == 0, "the folder is not poisoned"


def test_eval_resume_refuses_other_data(tmp_path, eval_workspace):
    assert run_eval(eval_workspace, tmp_path, "--data", f"math500={eval_workspace / 'a.jsonl'}").exit_code == 0
    other = run_eval(eval_workspace, tmp_path, "--data", f"math500={eval_workspace / 'b.jsonl'}")
    assert other.exit_code == 2 and "data.source" in other.output
    edited = tmp_path / "a.jsonl"
    edited.write_text((eval_workspace / "a.jsonl").read_text())
    assert run_eval(eval_workspace, tmp_path / "2", "--data", f"math500={edited}").exit_code == 0
    edited.write_text(json.dumps({"problem": "Compute 2 + 2.", "answer": "4"}) + "\n")
    changed = run_eval(eval_workspace, tmp_path / "2", "--data", f"math500={edited}")
    assert changed.exit_code == 2 and "data.sha256" in changed.output


def test_eval_missing_adapter_and_merge_into_a_full_folder_are_messages(tmp_path, eval_workspace):
    missing = run_eval(eval_workspace, tmp_path / "out", "--data", f"math500={eval_workspace / 'a.jsonl'}",
                       "--adapter", str(tmp_path / "no-adapter"))
    assert missing.exit_code == 2 and "Traceback" not in missing.output, missing.output
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    merged = CliRunner().invoke(app, ["merge", "--adapter", str(tmp_path / "no-adapter"), "--out", str(full)])
    assert merged.exit_code == 2 and "not empty" in merged.output


def test_an_unreachable_hub_id_is_a_message():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "dlmtune", "eval", "--model", "nobody/no-such-model",
                             "--tasks", "sudoku", "--limit", "1"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: cannot load 'nobody/no-such-model'" in result.stderr and "Traceback" not in result.stderr
