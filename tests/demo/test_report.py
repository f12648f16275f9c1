"""The report's statistics by hand (paired differences, item and seed noise), and its tables against the run
files it was built from."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from dlmtune.report import difference_verdict, verdicts, write_report


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
    report = write_report(tmp_path, ["sudoku"], {"sudoku": 0.25}, {"note": "test"}, {"sudoku": 100})
    half = 4.303 * 0.1 / math.sqrt(3)
    assert f"| sft | 3 | 60.0 [{100 * (0.6 - half):.1f}, {100 * (0.6 + half):.1f}] | 10.0 |" in report["table"]
    assert "| base | - | 20.0 | - |" in report["table"]
    assert report["weft_over_sft_time"] == pytest.approx(1.3)
    assert report["time_over_sft"] == pytest.approx({"weft": 1.3})
    assert "relative to sft" not in (tmp_path / "report.md").read_text()  # one ratio: said once
    assert (tmp_path / "report.png").stat().st_size > 0
    assert report["table"] in (tmp_path / "report.md").read_text()


def test_paired_difference_and_noise_by_hand(tmp_path):
    """weft - sft per seed: +0.10, +0.12, +0.11 -> mean 0.11, sd 0.01, half-width t_{0.975}(2) * 0.01 / sqrt(3)."""
    runs = [{"name": "base", "objective": "base", "seed": None, "accuracy": {"t": 0.2}}]
    for seed, (sft, weft) in enumerate([(0.5, 0.6), (0.4, 0.52), (0.6, 0.71)]):
        for objective, accuracy in (("sft", sft), ("weft", weft)):
            runs.append({"name": f"{objective}-seed{seed}", "objective": objective, "seed": seed,
                         "accuracy": {"t": accuracy}, "train_seconds": 1.0, "loss_curve": [[1, 1.0]]})
    _write_runs(tmp_path, runs)
    report = write_report(tmp_path, ["t"], {"t": 0.25}, {}, {"t": 64})
    half = 4.302653 * 0.01 / math.sqrt(3)
    diff = json.loads((tmp_path / "report.json").read_text())["paired_difference"]["t"]
    assert diff["mean"] == pytest.approx(0.11) and diff["n"] == 3
    assert diff["low"] == pytest.approx(0.11 - half) and diff["high"] == pytest.approx(0.11 + half)
    markdown = (tmp_path / "report.md").read_text()
    assert f"| weft - sft | t | 3 | +11.0 | [{100 * (0.11 - half):+.1f}, {100 * (0.11 + half):+.1f}] | {100 * half:.1f} | better" in markdown
    p = (0.5 + 0.4 + 0.6 + 0.6 + 0.52 + 0.71) / 6  # the fine-tuned runs' mean accuracy
    noise = report["noise"]["t"]
    assert noise["item_se"] == pytest.approx(math.sqrt(p * (1 - p) / 64))
    weft_sd = statistics.stdev([0.6, 0.52, 0.71])
    assert noise["seed_sd"]["sft"] == pytest.approx(0.1) and noise["seed_sd"]["weft"] == pytest.approx(weft_sd)
    assert f"| t | 64 | {100 * noise['item_se']:.1f} | sft 10.0, weft {100 * weft_sd:.1f} |" in markdown


def test_verdicts_from_the_paired_interval():
    assert difference_verdict({"mean": 0.05, "low": -0.01, "high": 0.11}).startswith("no clear difference")
    assert difference_verdict({"mean": 0.05, "low": 0.01, "high": 0.09}).startswith("better")
    assert difference_verdict({"mean": -0.05, "low": -0.09, "high": -0.01}).startswith("WORSE")
    assert difference_verdict({"mean": 0.05, "low": None, "high": None}).startswith("one seed")
    summary = {"base": {"accuracy": {"t": {"mean": 0.3}}},
               "weft": {"accuracy": {"t": {"mean": 0.55, "low": 0.45, "high": 0.65}}}}
    assert verdicts(summary, {"t": 0.25}, ["t"]) == ["weft on t: 55.0 [45.0, 65.0] vs base/chance 30.0 (clearly above)."]
