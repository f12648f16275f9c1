"""GSM8K: gold after "####"; prediction from the first numeric box, else <answer>, else the text."""

from __future__ import annotations

import pytest

from dlmtune.tasks import get_task
from dlmtune.tasks.base import Score

TASK = get_task("gsm8k")
ITEM = {
    "question": "Natalia sold clips to 48 friends in April, and half as many in May. How many in total?",
    "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nShe sold 48+24 = <<48+24=72>>72 clips.\n#### 1,072",
}


def score(text: str) -> Score:
    return TASK.score(text, ITEM)


@pytest.mark.parametrize(
    "text",
    [
        r"<answer>\boxed{1072}</answer>",
        r"<answer>\boxed{1,072}</answer>",
        r"<answer>\boxed{\$1072}</answer>",
        r"<answer>\boxed{$1,072.00}</answer>",
        r"\boxed{clips} then \boxed{1072} and \boxed{5}",
        "<answer>She sold 3 then 1,072</answer> finally 9",
        "so in total 1072",
    ],
)
def test_correct(text):
    assert score(text).correct == 1.0


@pytest.mark.parametrize(
    "text",
    [
        r"\boxed{5} then \boxed{1072}",
        r"<answer>1072 or 5</answer>",
        "1072 is not it, 1073 is",
        r"<answer>\boxed{about 1072 or 5}</answer>",  # box is not a number: last number in <answer>
        "",
        "no idea",
    ],
)
def test_incorrect(text):
    assert score(text).correct == 0.0


def test_extracted_is_the_text_it_came_from():
    assert score(r"\boxed{x} \boxed{ 1,072 }") == Score(1.0, 1.0, "1,072")
    assert score("nothing") == Score(0.0, 1.0, None)


def test_reference_response_reformats_the_gold_solution():
    response = TASK.reference_response(ITEM)
    assert response == (
        "<reasoning>\nIn May she sold 48/2 = 24 clips.\nShe sold 48+24 = 72 clips.\n</reasoning>\n"
        "<answer>\n\\boxed{1072}\n</answer>"
    )
    assert score(response).correct == 1.0
