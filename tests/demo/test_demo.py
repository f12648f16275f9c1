"""`run_demo` end to end in miniature (a micro base pretrained here, a few steps, a few items), the report's
numbers recomputed by hand from the run files it was built from, and a demo run = `dlmtune train configs/tiny.yaml`."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from dlmtune.cli import app
from dlmtune.demo import DemoConfig, chance_levels, countdown_chance, finetune, resolve_config, run_demo
from dlmtune.train import embedded_config

from .bases import pretrain_micro_base

T_975_DF1 = 12.706  # Student's t, two-sided 95%, one degree of freedom (two seeds)


def _cell(values: list[float]) -> str:
    mean = statistics.mean(values)
    half = T_975_DF1 * statistics.stdev(values) / math.sqrt(len(values))
    return f"{100 * mean:.1f} [{100 * (mean - half):.1f}, {100 * (mean + half):.1f}]"


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    base = pretrain_micro_base(folder / "base", documents=32, steps=4)
    training = (("max_steps", 3), ("per_device_train_batch_size", 4), ("data.synthetic_size", 8), ("logging_steps", 1))
    config = DemoConfig(seeds=2, test_per_task=3, gen_length={"sudoku": 32, "countdown": 32}, eval_batch_size=8,
                        entropy_examples=4, workers=2, base=str(base), train_overrides=training)
    report = run_demo(config, folder / "out", progress=False)
    return folder / "out", config, report


def test_report_table_is_recomputed_from_the_run_files(demo_out):
    out, config, report = demo_out
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    assert sorted(r["name"] for r in runs) == ["base", "sft-seed0", "sft-seed1", "weft-seed0", "weft-seed1"]
    table = report["table"]
    for objective in config.objectives:
        group = [r for r in runs if r["objective"] == objective]
        cells = " | ".join(_cell([r["accuracy"][t] for r in group]) for t in ("sudoku", "countdown"))
        seconds = statistics.mean(r["train_seconds"] for r in group)
        assert f"| {objective} | 2 | {cells} | {seconds:.1f} |" in table
    base = next(r for r in runs if r["name"] == "base")
    assert f"| base | - | {100 * base['accuracy']['sudoku']:.1f} | {100 * base['accuracy']['countdown']:.1f} | - |" in table
    ratio = statistics.mean(r["train_seconds"] for r in runs if r["objective"] == "weft") / statistics.mean(
        r["train_seconds"] for r in runs if r["objective"] == "sft")
    assert report["weft_over_sft_time"] == pytest.approx(ratio)
    markdown = (out / "report.md").read_text()
    assert table in markdown and f"{ratio:.2f}" in markdown
    for name in ("report.png", "entropy.png", "report.json"):
        assert (out / name).stat().st_size > 0


def test_run_files_hold_the_accuracy_of_their_completions(demo_out):
    """Each run's accuracy is sum(correct) / sum(total) over its scored completions, which its item_scores
    list in test order (the report's item noise)."""
    out, _, _ = demo_out
    for run_file in (out / "runs").glob("*.json"):
        run = json.loads(run_file.read_text())
        for task, accuracy in run["accuracy"].items():
            records = [json.loads(line) for path in (out / "work" / run["name"] / "eval").glob(
                f"{task}-part*/completions/{task}-seed*.jsonl") for line in path.read_text().splitlines()]
            assert len(records) == 3
            assert accuracy == pytest.approx(sum(r["correct"] for r in records) / sum(r["total"] for r in records))
            scores = run["item_scores"][task]
            assert sorted(map(tuple, scores)) == sorted((r["correct"], r["total"]) for r in records)
        if run["seed"] is not None:
            assert run["train_config"]["max_steps"] == 3 and run["loss_curve"][-1][0] == 3
            assert run["train_config"]["seed"] == run["seed"] and run["train_config"]["objective"]["name"] == run["objective"]
            assert (out / "work" / run["name"] / "train" / "model.safetensors").exists()


def test_a_rerun_resumes_from_the_run_files(demo_out):
    out, config, report = demo_out
    before = {p.name: p.read_text() for p in (out / "runs").glob("*.json")}
    again = run_demo(config, out, progress=False)
    assert again["table"] == report["table"]
    assert {p.name: p.read_text() for p in (out / "runs").glob("*.json")} == before


def test_countdown_chance_by_hand():
    # 1, 1, 1 -> 1: (1a1)b1 hits for (a, b) in (+,-) (-,+) (*,*) (*,/) (/,*) (/,/): 6 of 16.
    item = {"numbers": [1, 1, 1], "target": 1}
    assert countdown_chance(item) == 0.375
    # 2, 3, 4 -> 14 only as 2+3*4, which is not (2a3)b4; (2+3)*4 = 20 is.
    assert countdown_chance({"numbers": [2, 3, 4], "target": 14}) == 0.0
    assert countdown_chance({"numbers": [2, 3, 4], "target": 20}) == 1 / 16
    assert chance_levels({"sudoku": [], "countdown": [item]}) == {"sudoku": 0.25, "countdown": countdown_chance(item)}


def test_quick_overrides_and_explicit_values_win():
    quick = resolve_config("sft,weft", None, True)
    assert quick.seeds == 1 and dict(quick.train_overrides)["max_steps"] < 300
    assert dict(resolve_config("weft", 2, True, train_overrides=(("max_steps", 7),)).train_overrides)["max_steps"] == 7
    assert resolve_config("weft", 2, False).objectives == ("weft",)


def test_a_demo_run_is_dlmtune_train_on_the_tiny_config(tmp_path):
    """`dlmtune train configs/tiny.yaml --seed S --max_steps 2` and the demo's run for seed S (same 2 steps)
    end with the same parameters: one config, one code path."""
    seed = 3
    repository_config = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    result = CliRunner().invoke(app, ["train", str(repository_config), "--seed", str(seed), "--max_steps", "2",
                                      "--output_dir", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    config = DemoConfig(train_overrides=(("max_steps", 2),))
    record = finetune(config, "weft", seed, tmp_path / "demo", on_step=lambda: None)
    assert record["train_config"]["max_steps"] == 2
    cli, demo = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("cli", "demo"))
    assert cli.keys() == demo.keys() and all(torch.equal(cli[k], demo[k]) for k in cli)
    base = load_file(str(embedded_config("tiny").parents[1] / "base-tiny" / "model.safetensors"))
    assert any(not torch.equal(base[k], demo[k]) for k in demo), "two steps changed the weights"
