"""GSM8K: grade-school word problems with a numeric answer.

Gold: the number after "####" in the reference solution. Prediction (dlmtune's; d1's own reading is in
protocols/d1_rules.py): the first \\boxed{} whose content is a number, else the last number inside
<answer>, else the last number in the completion. Correct when the two numbers are equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from dlmtune.tasks.base import FieldError, Score, Task, boxed, format_response
from dlmtune.tasks.extract import all_boxed, answer_text, last_number, parse_number, same_number

_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations, e.g. <<48/2=24>>


def split_solution(answer: str) -> tuple[str, str]:
    """(worked solution without calculator annotations, final answer text) of a GSM8K answer field."""
    work, _, final = answer.rpartition("####")
    return _CALCULATOR.sub("", work).strip(), final.strip()


def gold_number(item: dict) -> float | None:
    return parse_number(split_solution(item["answer"])[1])


def extract_number(completion: str) -> str | None:
    """The predicted number as written, by the order of sources in the module docstring."""
    for content in all_boxed(completion):
        if parse_number(content) is not None:
            return content.strip()
    for text in (answer_text(completion), completion):
        number = last_number(text or "")
        if number is not None:
            return number
    return None


@dataclass(frozen=True)
class GSM8KTask(Task):
    name: str = "gsm8k"
    default_gen_length: int = 256
    default_source: str | None = "openai/gsm8k"
    hub_config: str | None = "main"

    fields: ClassVar[dict[str, tuple[str, ...]]] = {"question": ("question",), "answer": ("answer",)}

    def question(self, item: dict) -> str:
        return item["question"]

    def reference_response(self, item: dict) -> str:
        """The gold worked solution as reasoning, the "####" number boxed as the answer."""
        work, final = split_solution(item["answer"])
        return format_response(work, boxed(final.replace(",", "")))

    def clean(self, item: dict[str, Any]) -> dict[str, Any]:
        if gold_number(item) is None:
            raise FieldError("field 'answer': no number after '####'")
        return item

    def score(self, completion: str, item: dict) -> Score:
        gold = gold_number(item)
        extracted = extract_number(completion)
        value = None if extracted is None else parse_number(extracted)
        correct = value is not None and gold is not None and same_number(value, gold)
        return Score(float(correct), 1.0, extracted)
