"""The demo's worker processes: single-threaded, and started before the main process's heavy imports.

The demo's runs (fine-tuning, evaluation, RL) are independent, so they go to processes: at the tiny model's
width every op is small, and two single-threaded processes gain more than two OpenMP threads in one. A
spawned worker is a fresh interpreter that must import torch and transformers, as long a start as the
main process's own, so `dlmtune demo` calls `start_workers` first and the starts overlap; this module
imports nothing heavy for that reason. One pool serves the fine-tuning runs and the RL runs after them.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

_PROGRESS: Any = None  # in a worker: the queue its runs report progress to


@dataclass
class Workers:
    """A started pool and the queue on which its runs report (run name, work units done)."""

    pool: ProcessPoolExecutor
    progress: Any
    size: int

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


def default_workers() -> int:
    """One worker per CPU core, at most two (the demo's runs gain little beyond that on a laptop)."""
    return min(2, os.cpu_count() or 1)


def start_workers(size: int, preload: tuple[str, ...] = ("dlmtune.demo",)) -> Workers | None:
    """`size` spawned processes that import the modules `preload` now; None when `size` <= 1 (the runs
    then stay in the calling process)."""
    if size <= 1:
        return None
    context = multiprocessing.get_context("spawn")  # no fork of a process that may already run torch threads
    progress = context.Manager().Queue()
    pool = ProcessPoolExecutor(size, mp_context=context, initializer=_initialize, initargs=(progress, preload))
    for _ in range(size):  # a pool spawns its processes as tasks arrive: one no-op each starts them all now
        pool.submit(_ready)
    return Workers(pool, progress, size)


def report_progress(name: str, units: float) -> None:
    """In a worker: tell the main process that run `name` did `units` of work (no-op elsewhere)."""
    if _PROGRESS is not None:
        _PROGRESS.put((name, units))


def _initialize(progress: Any, preload: tuple[str, ...]) -> None:
    global _PROGRESS
    _PROGRESS = progress
    for name in preload:
        importlib.import_module(name)
    import torch

    torch.set_num_threads(1)


def _ready() -> None:
    return None
