"""Sudoku scoring: cell-level counts over empty cells, and d1's extraction order."""

from __future__ import annotations

import pytest

from dlmtune.tasks import get_task
from dlmtune.tasks.base import Score

TASK = get_task("sudoku")
ITEM = {"puzzle": "1030002100000012", "solution": "1234342121434312"}  # 10 empty cells


def score(text: str) -> Score:
    return TASK.score(text, ITEM)


def test_full_answer_scores_every_empty_cell():
    assert score("<answer>\n1234342121434312\n</answer>") == Score(10.0, 10.0, "1234342121434312")


def test_answer_as_rows_with_noise_keeps_only_digits():
    # the "4" of "row4" is a digit too and shifts the last row by one cell
    assert score("<answer>\n12 34\n3421|\n2143\nrow4: 4312\n</answer>").correct == 9


def test_givens_are_not_counted_even_if_wrong():
    assert score("<answer>4234342121434312</answer>").correct == 10


def test_short_answer_is_padded_and_long_is_truncated():
    assert score("<answer>1234</answer>") == Score(2.0, 10.0, "1234000000000000")
    assert score("<answer>12343421214343129999</answer>").correct == 10


def test_code_block_then_sixteen_digit_run():
    assert score("```\n1234\n3421\n2143\n4312\n```").correct == 10
    assert score("so the grid is 1234342121434312.").correct == 10


def test_answer_tag_wins_over_code_block():
    assert score("```\n1234342121434312\n```\n<answer>1111111111111111</answer>").correct == 1


def test_no_answer_scores_zero():
    assert score("I could not solve r1c2.") == Score(0.0, 10.0, None)
    assert score("") == Score(0.0, 10.0, None)


def test_summary_reports_cells_and_solved_puzzles():
    summary = TASK.summarize([Score(9, 9), Score(3, 6), Score(0, 5)])
    assert summary["accuracy"] == pytest.approx(12 / 20)
    assert summary["solved_fraction"] == pytest.approx(1 / 3)
    assert summary["n"] == 3
