"""Runs as the unit of uncertainty: deterministic seeds refused, several runs and generation lengths in one
command (`dlmtune eval --model A,B --gen-lengths ...`), mean / sd / t-interval over runs, both scoring
columns and the file of disagreements."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlmtune.cli import app
from dlmtune.eval_runs import check_seeds, expand_runs, run_folder_name, summarize_runs
from dlmtune.models.presets import build_preset_model

T_975_DF2 = 4.302652729911275  # Student t quantile, 0.975, 2 degrees of freedom (tables)


def test_deterministic_seeds_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="identical completions.*training runs"):
        check_seeds(3, temperature=0.0, remasking="low_confidence")
    check_seeds(1, temperature=0.0, remasking="low_confidence")
    check_seeds(3, temperature=0.7, remasking="low_confidence")
    check_seeds(3, temperature=0.0, remasking="random")


def test_runs_expand_commas_and_globs_in_sorted_order(tmp_path):
    for name in ("sft-seed2", "sft-seed1", "weft-seed1"):
        (tmp_path / name).mkdir()
    assert expand_runs(f"{tmp_path}/sft-seed*,preset:micro") == [
        str(tmp_path / "sft-seed1"), str(tmp_path / "sft-seed2"), "preset:micro"]
    with pytest.raises(ValueError, match="no model folder matches"):
        expand_runs(f"{tmp_path}/gift-*")
    with pytest.raises(ValueError, match="listed twice"):
        expand_runs("a,a")


def _results(accuracy: float, d1: float) -> dict:
    return {"gsm8k": {"columns": {"dlmtune": accuracy, "d1": d1}}}


def test_summary_over_three_runs_is_mean_sd_and_t_interval():
    """Accuracies 0.5, 0.6, 0.7: mean 0.6; sd sqrt((0.01 + 0 + 0.01) / 2) = 0.1; the 95% half-width is
    t(0.975, 2) * 0.1 / sqrt(3) = 4.3027 * 0.057735 = 0.248414."""
    per_run = {f"run{i}": {256: _results(a, a - 0.1)} for i, a in enumerate((0.5, 0.6, 0.7))}
    cell = summarize_runs(per_run)["gsm8k"]["dlmtune"][256]
    half = T_975_DF2 * 0.1 / math.sqrt(3)
    assert cell["runs"] == {"run0": 0.5, "run1": 0.6, "run2": 0.7}
    assert cell["mean"] == pytest.approx(0.6) and cell["sd"] == pytest.approx(0.1)
    assert (cell["low"], cell["high"]) == (pytest.approx(0.6 - half), pytest.approx(0.6 + half))
    assert half == pytest.approx(0.248414, abs=1e-6)
    assert summarize_runs(per_run)["gsm8k"]["d1"][256]["mean"] == pytest.approx(0.5)


def test_one_run_has_a_mean_and_no_interval():
    cell = summarize_runs({"only": {128: _results(0.25, 0.25)}})["gsm8k"]["d1"][128]
    assert cell["mean"] == 0.25 and cell["sd"] is None and cell["n"] == 1


FLAGS = ["--tasks", "sudoku,countdown", "--limit", "2", "--block-length", "8", "--batch-size", "2"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        build_preset_model("micro", tokenizer, seed=seed).save_pretrained(root / f"run-seed{seed}")
        tokenizer.save_pretrained(root / f"run-seed{seed}")
    return root


def test_cli_refuses_deterministic_seeds(two_runs, tmp_path):
    result = CliRunner().invoke(app, ["eval", "--model", str(two_runs / "run-seed0"), "--seeds", "3",
                                      "--out", str(tmp_path / "out"), *FLAGS])
    assert result.exit_code == 2
    assert "identical completions" in result.output
    assert not (tmp_path / "out").exists()


def test_cli_several_runs_and_lengths_make_one_table(two_runs, tmp_path):
    out = tmp_path / "grid"
    result = CliRunner().invoke(app, ["eval", "--model", f"{two_runs}/run-seed*", "--gen-lengths", "8,16",
                                      "--protocol", "d1", "--out", str(out), *FLAGS])
    assert result.exit_code == 0, result.output + repr(result.exception)
    payload = json.loads((out / "results.json").read_text())
    assert payload["runs"] == [str(two_runs / "run-seed0"), str(two_runs / "run-seed1")]
    assert payload["gen_lengths"] == ["8", "16"]
    for task in ("sudoku", "countdown"):
        for column in ("dlmtune", "d1"):
            for length in ("8", "16"):
                cell = payload["tasks"][task][column][length]
                per_run = [json.loads((out / run_folder_name(r) / f"gen{length}" / "results.json").read_text())
                           ["tasks"][task]["columns"][column] for r in payload["runs"]]
                assert list(cell["runs"].values()) == per_run
                assert cell["mean"] == pytest.approx(sum(per_run) / 2)
    markdown = (out / "results.md").read_text()
    assert "| task | scoring | gen 8 | gen 16 |" in markdown and "| sudoku | d1 |" in markdown
    assert markdown.strip() in result.output


def test_cli_disagreements_file_lists_exactly_the_split_verdicts(two_runs, tmp_path):
    out = tmp_path / "one"
    result = CliRunner().invoke(app, ["eval", "--model", str(two_runs / "run-seed1"), "--gen-length", "8",
                                      "--out", str(out), *FLAGS])
    assert result.exit_code == 0, result.output + repr(result.exception)
    split = set()
    for path in (out / "completions").glob("*.rank0.jsonl"):
        task = path.name.split("-seed")[0]
        for line in path.read_text().splitlines():
            record = json.loads(line)
            scores = record["scores"]
            if (scores["dlmtune"]["correct"], scores["dlmtune"]["total"]) != (scores["d1"]["correct"],
                                                                              scores["d1"]["total"]):
                split.add((task, record["index"]))
    listed = {(r["task"], r["index"]) for r in map(json.loads, (out / "disagreements.jsonl").read_text().splitlines())}
    assert listed == split
    assert "| dlmtune | d1 |" in (out / "results.md").read_text()


def test_disagreements_and_column_accuracies_from_records():
    """Item 0: both right; item 1: dlmtune right, d1 wrong (a "43,500" box); sudoku-like totals add up."""
    from dlmtune.tasks.protocols.columns import column_accuracies, disagreements, score_columns

    item = {"question": "q", "answer": "#### 43500"}
    records = [{"index": i, "completion": text, "raw_completion": text + "<|eot_id|>",
                "scores": score_columns("gsm8k", text, text + "<|eot_id|>", item)}
               for i, text in enumerate(["\\boxed{43500}", "\\boxed{43,500}"])]
    assert [r["index"] for r in disagreements("gsm8k", 42, records)] == [1]
    assert column_accuracies(records) == {"dlmtune": 1.0, "d1": 0.5}
    assert math.isnan(column_accuracies([{"index": 0}])["d1"])  # records from before the columns existed


def test_cli_testset_file_missing_names_the_download(two_runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["eval", "--model", str(two_runs / "run-seed0"), "--testset", "d1",
                                      "--out", str(tmp_path / "out"), *FLAGS])
    assert result.exit_code == 2
    assert "4x4_test_sudoku.csv" in result.output and "dllm-reasoning/d1" in result.output
    assert not (tmp_path / "out").exists()


def test_cli_k_shot_examples_come_from_the_file(two_runs, tmp_path):
    """--shots 1 --shots-from FILE in d1's protocol: the example drawn from the file (never an evaluated
    item) is what the completions were made with."""
    fixtures = Path(__file__).parent / "tasks" / "fixtures"
    out = tmp_path / "shots"
    result = CliRunner().invoke(app, [
        "eval", "--model", str(two_runs / "run-seed0"), "--tasks", "gsm8k", "--limit", "1", "--gen-length", "8",
        "--block-length", "8", "--protocol", "d1", "--data", f"gsm8k={fixtures / 'gsm8k_test.jsonl'}",
        "--shots", "1", "--shots-from", str(fixtures / "gsm8k_test.jsonl"), "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    config = json.loads((out / "completions" / "gsm8k-seed42.config.json").read_text())
    evaluated = json.loads((out / "completions" / "gsm8k-seed42.rank0.jsonl").read_text().splitlines()[0])
    assert len(config["shots"]) == 1 and config["identity"]["protocol"] == "d1"
    assert config["shots"][0]["question"] != "A shelf holds 4 rows of 6 jars. How many jars are on the shelf?"
    assert evaluated["index"] == 0 and set(evaluated["scores"]) == {"dlmtune", "d1"}
