"""The report's statistics by hand (paired differences, item and seed noise), and its tables against the run
files it was built from."""

from __future__ import annotations

import json
import math

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
    report = write_report(tmp_path, ["sudoku"], {"sudoku": 0.25}, {"note": "test"})
    half = 4.303 * 0.1 / math.sqrt(3)
    assert f"| sft | 3 | 60.0 [{100 * (0.6 - half):.1f}, {100 * (0.6 + half):.1f}] | 10.0 |" in report["table"]
    assert "| base | - | 20.0 | - |" in report["table"]
    assert report["weft_over_sft_time"] == pytest.approx(1.3)
    assert report["time_over_sft"] == pytest.approx({"weft": 1.3})
    assert "relative to sft" not in (tmp_path / "report.md").read_text()  # one ratio: said once
    assert (tmp_path / "report.png").stat().st_size > 0
    assert report["table"] in (tmp_path / "report.md").read_text()


def test_paired_difference_and_noise_by_hand(tmp_path):
    """weft - sft per seed: +0.10, +0.12, +0.11 -> mean 0.11, sd 0.01, half-width t_{0.975}(2) * 0.01 / sqrt(3).
    Item noise from three items of 2 + 2 + 4 cells, scored identically in every seed: weft gains 1, 0 and 2
    cells -> mean 3/8; residuals 1 - 2 * 3/8, 0 - 2 * 3/8, 2 - 4 * 3/8 -> s.e. sqrt(sum r^2 / 2 * 3) / 8."""
    runs = [{"name": "base", "objective": "base", "seed": None, "accuracy": {"t": 0.2}}]
    items = {"sft": [[0, 2], [1, 2], [1, 4]], "weft": [[1, 2], [1, 2], [3, 4]]}
    for seed, (sft, weft) in enumerate([(0.5, 0.6), (0.4, 0.52), (0.6, 0.71)]):
        for objective, accuracy in (("sft", sft), ("weft", weft)):
            runs.append({"name": f"{objective}-seed{seed}", "objective": objective, "seed": seed,
                         "accuracy": {"t": accuracy}, "train_seconds": 1.0, "loss_curve": [[1, 1.0]],
                         "item_scores": {"t": items[objective]}})
    _write_runs(tmp_path, runs)
    report = write_report(tmp_path, ["t"], {"t": 0.25}, {})
    half = 4.302653 * 0.01 / math.sqrt(3)
    diff = json.loads((tmp_path / "report.json").read_text())["paired_difference"]["t"]
    assert diff["mean"] == pytest.approx(0.11) and diff["n"] == 3
    assert diff["low"] == pytest.approx(0.11 - half) and diff["high"] == pytest.approx(0.11 + half)
    markdown = (tmp_path / "report.md").read_text()
    assert f"| weft - sft | t | 3 | +11.0 | [{100 * (0.11 - half):+.1f}, {100 * (0.11 + half):+.1f}] | {100 * half:.1f} | better" in markdown
    residuals = [1 - 2 * 3 / 8, 0 - 2 * 3 / 8, 2 - 4 * 3 / 8]
    noise = report["noise"]["weft"]["t"]
    assert noise["item_se"] == pytest.approx(math.sqrt(sum(r * r for r in residuals) / 2 * 3) / 8)
    assert noise["seed_se"] == pytest.approx(0.01 / math.sqrt(3)) and noise["items"] == 3 and noise["seeds"] == 3
    assert f"| weft - sft | t | 3 | 3 | {100 * noise['item_se']:.1f} | {100 * noise['seed_se']:.1f} |" in markdown


def test_verdicts_from_the_paired_interval():
    assert difference_verdict({"mean": 0.05, "low": -0.01, "high": 0.11}).startswith("no clear difference")
    assert difference_verdict({"mean": 0.05, "low": 0.01, "high": 0.09}).startswith("better")
    assert difference_verdict({"mean": -0.05, "low": -0.09, "high": -0.01}).startswith("WORSE")
    assert difference_verdict({"mean": 0.05, "low": None, "high": None}).startswith("one seed")
    summary = {"base": {"accuracy": {"t": {"mean": 0.3}}},
               "weft": {"accuracy": {"t": {"mean": 0.55, "low": 0.45, "high": 0.65}}}}
    assert verdicts(summary, {"t": 0.25}, ["t"]) == ["weft on t: 55.0 [45.0, 65.0] vs base/chance 30.0 (clearly above)."]
