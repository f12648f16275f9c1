"""Guards around a training run's output folder, so that no run silently mixes with another.

- A lock file (`.dlmtune.lock`, holding the process id and host) keeps a second run out of a folder
  while the first is writing; a lock left by a process that no longer exists (kill -9) is taken over.
- A new run into a folder that holds another run's files (checkpoints, log, summary, model) is
  refused unless `overwrite_output_dir` (which first removes the old checkpoints and log, so a later
  resume cannot pick them) or `resume_from_checkpoint` is set.
- The resolved config is written at the start (`dlmtune_train.yaml`); a resume compares it with the
  new one and refuses any difference that changes the result (objective and its settings, data,
  seed, learning rate, schedule, model, LoRA, ...) unless `allow_config_change`, naming each one.
- A resume whose run has already reached max_steps does not train (the Trainer would run one step
  more): a finished run says so, and a run killed while writing its final model finishes from the
  last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlmtune.config import ConfigError, flatten

LOCK_FILE = ".dlmtune.lock"
CONFIG_FILE = "dlmtune_train.yaml"
SUMMARY_FILE = "train_summary.json"
LOG_FILE = "log.jsonl"
STATE_FILE = "trainer_state.json"
MODEL_FILES = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json")

# Keys that change how a run is logged, saved or shown, never what it computes; any other difference
# (including keys this list does not know) counts as changing the result.
HARMLESS_KEYS = frozenset({
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "allow_config_change", "nonfinite",
    "logging_steps", "logging_strategy", "logging_first_step", "logging_dir", "logging_nan_inf_filter",
    "save_steps", "save_strategy", "save_total_limit", "save_only_model", "report_to", "run_name",
    "disable_tqdm", "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers",
    "dataloader_prefetch_factor", "use_cpu", "expected_world_size", "per_device_eval_batch_size",
    "eval_strategy", "eval_steps", "push_to_hub", "hub_model_id", "hub_strategy", "hub_token",
    "hub_private_repo",
})


class RunFolderError(ConfigError):
    """The output folder is in use, holds another run, or the resume does not match it."""


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def output_dir_lock(output_dir: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold OUTPUT_DIR/.dlmtune.lock for the duration (only where `enabled`, e.g. on the main process)."""
    if not enabled:
        yield
        return
    path = Path(output_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):  # a second try after removing a stale lock
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _read_lock(path)
            if holder.get("host") == mine["host"] and not _process_alive(int(holder.get("pid", -1))):
                path.unlink(missing_ok=True)  # its process is gone (killed): the lock is stale
                continue
            raise RunFolderError(
                f"{output_dir}: another run (process {holder.get('pid')} on {holder.get('host')}) is writing "
                f"to this folder. Wait for it, pick another output_dir, or, if no run is active, delete {path}."
            ) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(mine, handle)
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _read_lock(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # being written this instant, or torn: treated as held by an unknown process


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """checkpoint-N folders whose trainer_state.json (written last) exists, oldest first."""
    found = []
    for path in output_dir.glob("checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (path / STATE_FILE).exists():
            found.append((int(suffix), path))
    return [path for _, path in sorted(found)]


def run_files(output_dir: Path) -> list[str]:
    """What in `output_dir` belongs to an earlier run."""
    names = [p.name for p in sorted(output_dir.glob("checkpoint-*"))]
    names += [n for n in (SUMMARY_FILE, LOG_FILE, CONFIG_FILE, *MODEL_FILES) if (output_dir / n).exists()]
    return names


def config_differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """`key: old -> new` for every result-changing key whose resolved value differs (see HARMLESS_KEYS)."""
    flat_before, flat_now = flatten(before), flatten(now)
    changed = sorted(k for k in flat_before.keys() | flat_now.keys()
                     if k.split(".")[-1] not in HARMLESS_KEYS and flat_before.get(k) != flat_now.get(k))
    return [f"{k}: {flat_before.get(k)!r} -> {flat_now.get(k)!r}" for k in changed]




@dataclass
class RunPlan:
    """What `prepare_output_dir` decided: train from scratch or resume from `checkpoint`; or nothing to
    train (`finished`: the summary of a completed run; `finish_from`: save the final model from it)."""

    checkpoint: Path | None = None
    finished: dict[str, Any] | None = None
    finish_from: Path | None = None


def prepare_output_dir(output_dir: str | Path, resume: str | bool | None, overwrite: bool, max_steps: int,
                       resolved: Mapping[str, Any], load_resolved, allow_config_change: bool) -> RunPlan:
    """Check the folder against the request (module doc); `load_resolved(path)` gives the resolved
    config of a saved dlmtune_train.yaml. Called on the main process before any model loads."""
    out = Path(output_dir)
    if not resume:
        existing = run_files(out) if out.is_dir() else []
        if existing and not overwrite:
            raise RunFolderError(
                f"{out} already holds a run ({', '.join(existing[:4])}{', ...' if len(existing) > 4 else ''}). "
                "Continue it with --resume_from_checkpoint true, start over with --overwrite_output_dir true "
                "(its checkpoints and log are deleted), or pick another --output_dir.")
        for name in existing:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        return RunPlan()
    saved = out / CONFIG_FILE
    if saved.exists():
        differences = config_differences(load_resolved(saved), resolved)
        if differences and not allow_config_change:
            raise RunFolderError(
                f"{out}: the resumed run would differ from the one that made its checkpoints in "
                f"{'; '.join(differences)}. Resume with the same settings, or pass --allow_config_change true "
                "to continue with the new ones anyway.")
    checkpoint = _resume_checkpoint(out, resume)
    summary = out / SUMMARY_FILE
    if summary.exists():
        done = json.loads(summary.read_text())
        if done.get("global_step", 0) >= max_steps > 0:
            return RunPlan(finished=done)
    if checkpoint is not None and _checkpoint_step(checkpoint) >= max_steps > 0:
        return RunPlan(checkpoint=checkpoint, finish_from=checkpoint)
    return RunPlan(checkpoint=checkpoint)


def _resume_checkpoint(out: Path, resume: str | bool) -> Path | None:
    if resume is True or str(resume).lower() == "true":
        checkpoints = complete_checkpoints(out) if out.is_dir() else []
        if not checkpoints:
            if (out / SUMMARY_FILE).exists():
                return None  # finished without checkpoints (save_strategy: no)
            raise RunFolderError(f"resume_from_checkpoint: no complete checkpoint-* folder in {out}; "
                                 "start the run without --resume_from_checkpoint")
        return checkpoints[-1]
    path = Path(resume)
    if not (path / STATE_FILE).exists():
        raise RunFolderError(f"resume_from_checkpoint: {path} is not a complete checkpoint folder "
                             f"(no {STATE_FILE}); pass a checkpoint-N folder or true for the newest")
    return path


def _checkpoint_step(checkpoint: Path) -> int:
    return int(json.loads((checkpoint / STATE_FILE).read_text()).get("global_step", 0))
