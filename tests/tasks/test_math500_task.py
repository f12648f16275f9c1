"""MATH-500: last balanced \\boxed{} against the gold, via math-verify or normalised strings."""

from __future__ import annotations

import threading

import pytest

from dlmtune.tasks import get_task
from dlmtune.tasks.math500 import equivalent, normalize_answer

TASK = get_task("math500")


def correct(completion: str, gold: str) -> float:
    return TASK.score(completion, {"problem": "p", "answer": gold}).correct


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        (r"\frac12", "0.5"),
        (r"\frac12", r"\frac{1}{2}"),
        ("0.5", r"\frac{1}{2}"),
        (r"\dfrac{1}{2}", "1/2"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
        (r"3\sqrt2", r"\sqrt{18}"),
        ("x = 3", "3"),
        (r"90^\circ", "90"),
        (r"\text{(C)}", r"\text{(C)}"),
        ("Devon and Sam", r"\text{Devon and Sam}"),  # only the normalised strings match
        ("June 20", r"\text{June 20}"),
    ],
)
def test_equivalent_answers(prediction, gold):
    assert correct(f"so <answer>\\boxed{{{prediction}}}</answer>", gold) == 1.0


@pytest.mark.parametrize(
    ("prediction", "gold"), [("2", "3"), (r"\frac{1}{3}", "0.5"), ("x+1", "x-1"), ("", "1")]
)
def test_different_answers(prediction, gold):
    assert correct(f"\\boxed{{{prediction}}}", gold) == 0.0


def test_last_box_with_nested_braces_is_used():
    completion = r"first \boxed{7} then \boxed{\frac{\sqrt{3}}{2}}"
    score = TASK.score(completion, {"problem": "p", "answer": r"\frac{\sqrt3}{2}"})
    assert (score.correct, score.extracted) == (1.0, r"\frac{\sqrt{3}}{2}")
    assert correct(r"\boxed{\frac{\sqrt{3}}{2}} then \boxed{7}", r"\frac{\sqrt{3}}{2}") == 0.0


def test_no_box_scores_zero():
    assert TASK.score("the answer is 5", {"problem": "p", "answer": "5"}).extracted is None
    assert correct("the answer is 5", "5") == 0.0


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        (r"\frac12", r"\frac{1}{2}"),
        (r"\dfrac{3}4", r"\frac{3}{4}"),
        ("3/4", r"\frac{3}{4}"),
        (".5", "0.5"),
        (r"\$ 5.00", "5"),
        (r"10\%", "10"),
        (r"k = \sqrt2", r"\sqrt{2}"),
        (r"5\text{ cm}", "5cm"),
    ],
)
def test_normalize_answer(text, normal):
    assert normalize_answer(text) == normal


def test_verification_works_off_the_main_thread():
    """math-verify's default timeouts use signal.alarm, which raises outside the main thread."""
    results = []
    thread = threading.Thread(target=lambda: results.append(equivalent("0.5", r"\frac{1}{2}")))
    thread.start()
    thread.join()
    assert results == [True]
