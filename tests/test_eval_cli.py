"""`dlmtune eval` end to end through the CLI: a saved model folder (and base + LoRA adapter), all four tasks
(generated Sudoku / Countdown, fixture files for GSM8K / MATH500), several seeds, the files it leaves
behind, resuming, and bad input. tests/test_evaluate.py covers the runner's internals (scores match the
completions, an interrupted run resumes mid-task); this file checks what a user of the command sees."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dlmtune.cli import app
from dlmtune.evaluate import aggregate
from dlmtune.models.lora import apply_lora
from dlmtune.models.presets import build_preset_model
from dlmtune.tasks import TASKS
from dlmtune.tokenizer import EOS_TOKEN, EOT_TOKEN, SPECIAL_TOKENS

SEEDS = ("42", "43")
LIMIT = 2
# gen 8 in one block of 8 with 4 steps: a handful of micro-model forwards per batch; random remasking so
# that two seeds are allowed (deterministic decoding refuses them: test_eval_runs.py).
FAST_FLAGS = ["--limit", str(LIMIT), "--seeds", "2", "--gen-length", "8", "--block-length", "8", "--steps", "4",
              "--batch-size", "2", "--remasking", "random"]

GSM8K_ROWS = [
    {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
     "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "A box holds 6 eggs. How many eggs are in 2 boxes?", "answer": "6 * 2 = <<6*2=12>>12\n#### 12"},
    {"question": "What is 10 - 1?", "answer": "#### 9"},
]
MATH500_ROWS = [
    {"problem": "Compute $1 + 1$.", "answer": "2"},
    {"problem": "Simplify $\\frac{2}{4}$.", "answer": "\\frac{1}{2}"},
    {"problem": "What is $3^2$?", "answer": "9"},
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tokenizer):
    """A saved micro model, a LoRA adapter for it with non-zero weights, and GSM8K / MATH500 fixture files."""
    root = tmp_path_factory.mktemp("eval_cli")
    model = build_preset_model("micro", tokenizer, seed=0)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    peft_model = apply_lora(build_preset_model("micro", tokenizer, seed=0), r=4, alpha=8)
    with torch.no_grad():  # LoRA's B starts at zero (a no-op adapter); make it change the outputs
        generator = torch.Generator().manual_seed(1)
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator))
    peft_model.save_pretrained(root / "adapter")
    return {
        "root": root,
        "model": root / "model",
        "adapter": root / "adapter",
        "gsm8k": _write_jsonl(root / "gsm8k.jsonl", GSM8K_ROWS),
        "math500": _write_jsonl(root / "math500.jsonl", MATH500_ROWS),
    }


def _eval(workspace, out: Path, *extra: str, tasks: str = ",".join(TASKS), data: tuple[str, ...] = ("gsm8k", "math500")):
    args = ["eval", "--model", str(workspace["model"]), "--tasks", tasks, "--out", str(out), *FAST_FLAGS, *extra]
    for task in data:
        args += ["--data", f"{task}={workspace[task]}"]
    return CliRunner().invoke(app, args)


def _completions(out: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted((out / "completions").glob("*.jsonl"))}


@pytest.fixture(scope="module")
def full_run(workspace):
    out = workspace["root"] / "eval-full"
    result = _eval(workspace, out)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result


def test_results_json_has_every_task_and_seed_with_mean_and_stderr(full_run):
    out, _ = full_run
    payload = json.loads((out / "results.json").read_text())
    assert payload["metadata"]["adapter"] is None
    tasks = payload["tasks"]
    assert list(tasks) == list(TASKS)
    for r in tasks.values():
        assert r["n_items"] == LIMIT
        assert list(r["per_seed"]) == list(SEEDS)
        accuracies = [r["per_seed"][seed]["accuracy"] for seed in SEEDS]
        for seed in SEEDS:
            assert r["per_seed"][seed]["n"] == LIMIT and r["per_seed"][seed]["complete"]
            assert 0.0 <= r["per_seed"][seed]["accuracy"] <= 1.0
        assert r["mean"] == pytest.approx(sum(accuracies) / len(accuracies))
        assert r["stderr"] >= 0.0
        assert set(r["columns"]) == {"dlmtune", "d1"}
        assert (r["generation"]["gen_length"], r["generation"]["block_length"], r["generation"]["steps"]) == (8, 8, 4)


def test_markdown_on_disk_is_the_table_printed_on_screen(full_run):
    out, result = full_run
    markdown = (out / "results.md").read_text()
    assert markdown.strip() in result.output
    for name in TASKS:
        assert re.search(rf"^\| {name} \| {LIMIT} \| 2 \| \d\.\d{{4}} ± \d\.\d{{4}} \| 42: .*, 43: .* \|$",
                         markdown, re.MULTILINE), markdown
    assert str(out / "results.json") in result.output


def clean_cut(raw: str) -> str:
    """The raw decode cut before its first stop token (EOS or end of turn), special tokens dropped: what
    the clean completion must be (dlmtune.sampling.decode_completions)."""
    stops = [raw.index(t) for t in (EOS_TOKEN, EOT_TOKEN) if t in raw]
    text = raw[: min(stops)] if stops else raw
    for token in SPECIAL_TOKENS:
        text = text.replace(token, "")
    return text


def test_one_completion_line_per_item_and_seed(full_run):
    out, _ = full_run
    files = _completions(out)
    assert sorted(files) == sorted(f"{task}-seed{seed}.rank0.jsonl" for task in TASKS for seed in SEEDS)
    for text in files.values():
        records = [json.loads(line) for line in text.splitlines()]
        assert sorted(r["index"] for r in records) == list(range(LIMIT))
        for r in records:
            assert set(r) == {"index", "completion", "raw_completion", "extracted", "correct", "total", "timed_out",
                              "scores"}
            assert isinstance(r["completion"], str)
            assert r["completion"] == clean_cut(r["raw_completion"])
            assert (r["correct"], r["total"]) == (r["scores"]["dlmtune"]["correct"], r["scores"]["dlmtune"]["total"])


def test_fixture_files_are_the_items_evaluated(full_run):
    """--data TASK=FILE is used (GSM8K / MATH500 have no offline default), and --limit takes its first rows."""
    out, _ = full_run
    for task in ("gsm8k", "math500"):
        records = [json.loads(line) for line in (out / "completions" / f"{task}-seed42.rank0.jsonl").open()]
        assert len(records) == LIMIT


def test_rerun_resumes_without_generating(full_run, workspace):
    out, _ = full_run
    before = _completions(out)
    results_before = json.loads((out / "results.json").read_text())["tasks"]
    result = _eval(workspace, out)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert _completions(out) == before
    tasks = json.loads((out / "results.json").read_text())["tasks"]
    for name, r in tasks.items():
        assert r["generation_seconds_rank0"] == 0.0  # no batch was generated
        assert r["per_seed"] == results_before[name]["per_seed"]


def test_rerun_with_more_items_generates_only_the_new_ones(workspace, tmp_path):
    out = tmp_path / "grow"
    assert _eval(workspace, out, tasks="countdown", data=()).exit_code == 0
    first = _completions(out)
    args = ["eval", "--model", str(workspace["model"]), "--tasks", "countdown", "--out", str(out), *FAST_FLAGS]
    args[args.index("--limit") + 1] = "3"
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    for name, text in _completions(out).items():
        assert text.startswith(first[name])  # old lines kept as they were, new ones appended
        assert [json.loads(line)["index"] for line in text.splitlines()][LIMIT:] == [2]


def test_rerun_with_other_settings_or_model_is_refused(full_run, workspace, tmp_path):
    """The same --out with another sampler setting or another model must not reuse the old completions."""
    out = tmp_path / "copy"
    shutil.copytree(full_run[0], out)
    before = _completions(out)
    other_length = _eval(workspace, out, "--gen-length", "16", "--steps", "8", tasks="countdown", data=())
    assert other_length.exit_code == 2  # a message, not a traceback
    message = other_length.output
    assert "generation.gen_length: 8 then, 16 now" in message and "countdown-seed42" in message
    other_model = _eval(workspace, out, "--adapter", str(workspace["adapter"]), tasks="sudoku", data=())
    assert other_model.exit_code == 2
    assert "identity.adapter: None then" in other_model.output
    assert _completions(out) == before
    assert _eval(workspace, out, "--batch-size", "1", tasks="sudoku", data=()).exit_code == 0  # grouping only


def test_a_seed_with_an_item_missing_is_not_complete(tmp_path):
    """Completions of items 0 and 2 (e.g. one rank of two, interrupted) do not make 3 items complete."""
    folder = tmp_path / "completions"
    folder.mkdir()
    rows = [{"index": i, "completion": "", "extracted": None, "correct": 0.0, "total": 1.0} for i in (0, 2, 3)]
    _write_jsonl(folder / "gsm8k-seed42.rank0.jsonl", rows)
    summary = aggregate(tmp_path, {"gsm8k": GSM8K_ROWS}, [42])["gsm8k"]["per_seed"]["42"]
    assert summary["n"] == 2 and not summary["complete"]


def test_base_plus_adapter(workspace, tmp_path, full_run):
    """--model BASE --adapter ADAPTER evaluates the adapted model (not the bare base) and records both."""
    out = tmp_path / "adapter"
    result = _eval(workspace, out, "--adapter", str(workspace["adapter"]), tasks="sudoku,countdown", data=())
    assert result.exit_code == 0, result.output + repr(result.exception)
    payload = json.loads((out / "results.json").read_text())
    assert payload["metadata"]["adapter"] == str(workspace["adapter"])
    assert payload["metadata"]["model"] == str(workspace["model"])
    assert list(payload["tasks"]) == ["sudoku", "countdown"]
    adapted = _completions(out)
    base = _completions(full_run[0])
    assert set(adapted) <= set(base)
    assert any(adapted[name] != base[name] for name in adapted)  # the adapter changed the generations


def test_unknown_task_is_a_clear_error(workspace, tmp_path):
    result = _eval(workspace, tmp_path / "bad", tasks="sudoku,nope", data=())
    assert result.exit_code != 0
    message = result.output + str(result.exception or "")
    assert "unknown task 'nope'" in message and "countdown" in message  # names the bad one and the known ones
    assert not (tmp_path / "bad" / "results.json").exists()


def test_data_for_a_task_not_evaluated_is_an_error(workspace, tmp_path):
    result = _eval(workspace, tmp_path / "bad", tasks="sudoku", data=("gsm8k",))
    assert result.exit_code == 2  # a usage error, before any model is loaded
    assert "--data" in result.output and "gsm8k" in result.output
    assert not (tmp_path / "bad").exists()


def test_malformed_data_pair_is_an_error(workspace, tmp_path):
    args = ["eval", "--model", str(workspace["model"]), "--tasks", "gsm8k", "--data", "gsm8k",
            "--out", str(tmp_path / "bad"), *FAST_FLAGS]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "TASK=PATH" in result.output
