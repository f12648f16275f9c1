"""Countdown checker (d1): numbers used exactly once, allowed characters only, value equals target."""

from __future__ import annotations

import pytest

from dlmtune.tasks import get_task
from dlmtune.tasks.countdown import evaluate_expression

TASK = get_task("countdown")
ITEM = {"numbers": [3, 5, 7], "target": 36}


def correct(text: str, item: dict = ITEM) -> float:
    return TASK.score(text, item).correct


@pytest.mark.parametrize(
    "text",
    [
        r"<answer>\boxed{(7+5)*3}</answer>",
        r"<answer>\boxed{3 \times (5 + 7)}</answer>",
        r"<answer>\boxed{(7 + 5) \cdot 3 = 36}</answer>",
        r"\boxed{wrong} then \boxed{3*(7+5)}",
        "<answer>(5+7)*3</answer>",
        r"<answer>\boxed{(7+5)*3=36.0}</answer>",
        r"\boxed{(7+5)*3 = 35}",  # d1 drops a trailing "= number" without checking it
    ],
)
def test_accepted(text):
    assert correct(text) == 1.0


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (r"\boxed{(7+5)*3*1}", "foreign number"),
        (r"\boxed{(7+7)*3}", "number used twice, one missing"),
        (r"\boxed{7*5}", "number missing"),
        (r"\boxed{(7+5)*3} and then \boxed{7+5+3}", "last box is the answer"),
        (r"\boxed{(7+5)x3}", "illegal character"),
        (r"\boxed{(7+5)**3}", "power is not allowed"),
        (r"\boxed{7+5*3}", "wrong value"),
        (r"\boxed{36 = (7+5)*3}", "leading result leaves an '='"),
        (r"\boxed{(7+5)(3)}", "implicit multiplication is a call, not arithmetic"),
        ("The answer is (7+5)*3", "no box and no answer tag"),
    ],
)
def test_rejected(text, why):
    assert correct(text) == 0.0, why


def test_division_is_exact_within_tolerance():
    item = {"numbers": [1, 3, 9], "target": 3}
    assert correct(r"\boxed{9/3*1}", item) == 1.0
    assert correct(r"\boxed{1/3*9}", item) == 1.0  # 0.333.. * 9 is 3 up to rounding
    assert correct(r"\boxed{9/(3-3)}", {"numbers": [3, 3, 9], "target": 3}) == 0.0


def test_duplicate_given_numbers_need_both():
    item = {"numbers": [6, 6, 3], "target": 33}
    assert correct(r"\boxed{6*6-3}", item) == 1.0
    assert correct(r"\boxed{6*6-3-6+6}", item) == 0.0


def test_extracted_and_totals():
    score = TASK.score(r"<answer>\boxed{3 \div 3}</answer>", ITEM)
    assert (score.correct, score.total, score.extracted) == (0.0, 1.0, "3 / 3")


@pytest.mark.parametrize("text", ["", "(", "1+", "()" * 3, "(" * 500 + "1" + ")" * 500, "9" * 5000, "1/0"])
def test_evaluator_returns_none_on_nonsense(text):
    assert evaluate_expression(text) is None


def test_evaluator_arithmetic():
    assert evaluate_expression("(7 + 5) * 3 - 8 / 4") == 34.0
    assert evaluate_expression("-3 + 4") == 1.0
