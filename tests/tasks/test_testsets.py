"""The papers' test sets load as published (fixtures in each published format, our own rows), drawn as d1
draws them, and a missing file or an unreachable Hub says what to download; k-shot examples from a file."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dlmtune.tasks import get_task
from dlmtune.tasks import loading as loading_module
from dlmtune.tasks.shots import load_shots
from dlmtune.tasks.testsets import TESTSETS, d1_draw, load_testset

FIXTURES = Path(__file__).parent / "fixtures"
D1_DIR = FIXTURES / "d1"


def test_d1_draw_is_numpy_seed_42_choice_in_its_order():
    """The first indices of d1's 256 of 500 Sudoku puzzles; checked in d1's published completions, whose
    first item (rank 0) is the puzzle on CSV row 361."""
    assert d1_draw(500, 256)[:4] == [361, 73, 374, 155]
    assert sorted(d1_draw(256, 256)) == list(range(256))  # Countdown: all 256, in drawn order
    with pytest.raises(ValueError, match="cannot draw 256 items from a test set of 6"):
        d1_draw(6, 256)


def test_sudoku_csv_keeps_leading_zeros_and_is_drawn(monkeypatch):
    monkeypatch.setitem(TESTSETS["d1"], "sudoku", replace(TESTSETS["d1"]["sudoku"], draw=3))
    items = load_testset("sudoku", "d1", data_dir=D1_DIR)
    rows = get_task("sudoku").load(D1_DIR / "4x4_test_sudoku.csv")
    assert rows[0] == {"puzzle": "0010103200033000", "solution": "2314143241233241"}
    order = np.random.RandomState(42).choice(6, 3, replace=False).tolist()
    assert items == [rows[i] for i in order]


def test_countdown_jsonl_input_output_fields():
    items = get_task("countdown").load(D1_DIR / "countdown_cd3_test.jsonl")
    assert items[0] == {"numbers": [3, 5, 7], "target": 22}
    assert items[2] == {"numbers": [100, 2, 8], "target": 42}
    assert len(items) == 4


def test_wd1_names_the_same_sets():
    assert TESTSETS["wd1"] is TESTSETS["d1"]


def test_missing_file_names_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_testset("countdown", "d1", data_dir=tmp_path)
    message = str(error.value)
    assert "countdown_cd3_test.jsonl" in message and "raw.githubusercontent.com/dllm-reasoning/d1" in message
    assert "--data countdown=PATH" in message


def test_unreachable_hub_names_the_dataset_and_the_way_out(monkeypatch):
    def offline(*_args):
        raise ConnectionError("no network")

    monkeypatch.setattr(loading_module, "_hub", offline)
    with pytest.raises(RuntimeError, match=r"openai/gsm8k.*ConnectionError.*--data gsm8k=gsm8k_test.jsonl"):
        load_testset("gsm8k", "d1")


def test_hub_sets_from_a_local_copy_keep_every_item():
    gsm8k = load_testset("gsm8k", "d1", source=FIXTURES / "gsm8k_test.jsonl")
    assert [item["answer"].split("####")[1].strip() for item in gsm8k] == ["24", "-3", "1,300"]
    math500 = load_testset("math500", "d1", source=FIXTURES / "math500_test.jsonl", limit=1)
    assert math500 == [{"problem": "What is $\\frac{6}{8}$ in lowest terms?", "answer": "\\frac34",
                        "solution": "Divide by 2: $\\boxed{\\frac34}$."}]


def test_shots_from_a_file_draw_as_d1_and_take_the_answer_from_the_solution():
    shots = load_shots("math500", 2, FIXTURES / "math_train.jsonl")
    picks = random.Random(42).sample(range(4), 2)
    problems = ["Compute $3 + 4$.", "Compute $2 \\cdot 5$.", "Compute $9 - 1$.",
                "Compute $\\frac{1}{2} + \\frac{1}{2}$."]
    assert [s["problem"] for s in shots] == [problems[i] for i in picks]
    answers = {"Compute $3 + 4$.": "7", "Compute $2 \\cdot 5$.": "10", "Compute $9 - 1$.": "8",
               "Compute $\\frac{1}{2} + \\frac{1}{2}$.": "1"}
    assert [s["answer"] for s in shots] == [answers[s["problem"]] for s in shots]


def test_shots_never_repeat_an_evaluated_item_and_too_few_is_an_error():
    evaluated = load_testset("gsm8k", "d1", source=FIXTURES / "gsm8k_test.jsonl")
    shots = load_shots("gsm8k", 2, FIXTURES / "gsm8k_test.jsonl", exclude=evaluated[:1])
    assert evaluated[0] not in shots and len(shots) == 2
    with pytest.raises(ValueError, match="fewer than --shots 3"):
        load_shots("gsm8k", 3, FIXTURES / "gsm8k_test.jsonl", exclude=evaluated[:1])


def test_train_shots_of_generated_tasks_come_from_the_generator():
    shots = load_shots("sudoku", 2, "train")
    assert len(shots) == 2 and all(len(s["puzzle"]) == 16 for s in shots)
