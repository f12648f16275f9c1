"""The report's statistics by hand, and its table against the run files it was built from."""

from __future__ import annotations

import json
import math

import pytest

from dlmtune.report import mean_interval, t_quantile_975, verdicts, write_report


def test_mean_interval_by_hand():
    # values 0.2, 0.4, 0.6: mean 0.4, sd 0.2, se 0.2 / sqrt(3); t_{0.975}(2) = 4.303
    stat = mean_interval([0.2, 0.4, 0.6])
    half = 4.303 * 0.2 / math.sqrt(3)
    assert stat["mean"] == pytest.approx(0.4)
    assert stat["low"] == pytest.approx(0.4 - half)
    assert stat["high"] == pytest.approx(0.4 + half)


def test_one_seed_has_no_interval():
    assert mean_interval([0.3]) == {"mean": 0.3, "low": None, "high": None, "n": 1}


def test_t_quantile_beyond_the_table_approaches_normal():
    assert t_quantile_975(30) == pytest.approx(2.042)
    assert t_quantile_975(31) == pytest.approx(2.040, abs=2e-3)
    assert t_quantile_975(10_000) == pytest.approx(1.960, abs=1e-3)


def _write_runs(folder, runs):
    (folder / "runs").mkdir(parents=True)
    for run in runs:
        (folder / "runs" / f"{run['name']}.json").write_text(json.dumps(run))


def test_report_table_comes_from_the_run_files(tmp_path):
    runs = [{"name": "base", "objective": "base", "seed": None, "accuracy": {"sudoku": 0.2}}]
    for seed, (sft, weft) in enumerate([(0.5, 0.6), (0.6, 0.7), (0.7, 0.8)]):
        curve = [[10, 2.0], [20, 1.5]]
        runs.append({"name": f"sft-seed{seed}", "objective": "sft", "seed": seed, "accuracy": {"sudoku": sft},
                     "train_seconds": 10.0, "loss_curve": curve})
        runs.append({"name": f"weft-seed{seed}", "objective": "weft", "seed": seed, "accuracy": {"sudoku": weft},
                     "train_seconds": 13.0, "loss_curve": curve})
    _write_runs(tmp_path, runs)
    report = write_report(tmp_path, ["sudoku"], {"sudoku": 0.25}, {"note": "test"})
    half = 4.303 * 0.1 / math.sqrt(3)
    assert f"| sft | 3 | 60.0 [{100 * (0.6 - half):.1f}, {100 * (0.6 + half):.1f}] | 10.0 |" in report["table"]
    assert "| base | - | 20.0 | - |" in report["table"]
    assert report["weft_over_sft_time"] == pytest.approx(1.3)
    assert report["time_over_sft"] == pytest.approx({"weft": 1.3})
    assert "relative to sft" not in (tmp_path / "report.md").read_text()  # one ratio: said once
    assert (tmp_path / "report.png").stat().st_size > 0
    assert report["table"] in (tmp_path / "report.md").read_text()


def test_verdict_says_when_intervals_overlap():
    summary = {
        "sft": {"accuracy": {"t": {"mean": 0.5, "low": 0.4, "high": 0.6}}},
        "weft": {"accuracy": {"t": {"mean": 0.55, "low": 0.45, "high": 0.65}}},
    }
    lines = verdicts(summary, {"t": 0.25}, ["t"])
    assert any("no clear difference" in line for line in lines)
    assert all("better" not in line for line in lines)
