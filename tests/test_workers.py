"""The demo's worker pool (`dlmtune.workers`): started at once, single-threaded, reporting progress."""

from __future__ import annotations

import multiprocessing
import os

import torch

from dlmtune.workers import report_progress, start_workers


def test_one_worker_means_no_pool():
    assert start_workers(1) is None


def test_workers_start_before_any_run_is_submitted_and_report_progress():
    before = {p.pid for p in multiprocessing.active_children()}
    pool = start_workers(2, preload=("json",))
    try:
        started = {p.pid for p in multiprocessing.active_children()} - before
        assert len(started) >= 3  # the two workers and the progress queue's manager, before any run
        pids = {pool.pool.submit(os.getpid).result(timeout=120) for _ in range(8)}
        assert pids <= started and os.getpid() not in pids
        assert pool.pool.submit(torch.get_num_threads).result(timeout=120) == 1
        pool.pool.submit(report_progress, "run-a", 2.5).result(timeout=120)
        assert pool.progress.get(timeout=30) == ("run-a", 2.5)
    finally:
        pool.close()
    report_progress("in the main process", 1.0)  # outside a worker: nothing to report to, and no error
