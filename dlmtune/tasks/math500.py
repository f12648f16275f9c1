"""MATH-500: the last \\boxed{} of the completion against the gold answer.

Equal when their strings match after a Hendrycks-style normalisation (d1's comparison, which also
covers answers sympy cannot parse) or when math-verify finds them symbolically equivalent. math-verify
runs in a child process with a hard limit per completion (`dlmtune.tasks.verify_worker`), so a hostile
answer such as \\boxed{9^{9^{9}}} scores 0 as "timed out" after `timeout_s` instead of stalling the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from dlmtune.tasks.base import Score, Task, boxed, format_response
from dlmtune.tasks.extract import last_boxed
from dlmtune.tasks.verify_worker import VerifyWorker

VERIFY_TIMEOUT_S = 5.0

_REMOVED = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "^{\\circ}", "^\\circ", "\\$", "$", "\\%", "%")
_BARE_ARGUMENT = re.compile(r"\\(frac|sqrt)([0-9a-zA-Z])")  # \frac12, \sqrt2
_BARE_DENOMINATOR = re.compile(r"(\\frac\{[^{}]*\})([0-9a-zA-Z])")  # \frac{1}2
_TEXT = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")
_SIMPLE_FRACTION = re.compile(r"^(-?\d+)/(\d+)$")
_SHORT_LHS = re.compile(r"^[a-zA-Z]\w?=")
_WORKER = VerifyWorker()


def normalize_answer(text: str) -> str:
    """Hendrycks-style canonical string: no spacing, units markup, dollars, degrees or percent signs;
    \\dfrac/\\tfrac as \\frac; \\frac12 as \\frac{1}{2}; a/b as \\frac{a}{b}; .5 as 0.5; "x=" dropped."""
    text = text.strip().replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _TEXT.sub(r"\1", text)
    for piece in _REMOVED:
        text = text.replace(piece, "")
    text = re.sub(r"\s+", "", text).rstrip(".")
    text = _SHORT_LHS.sub("", text)
    text = _BARE_DENOMINATOR.sub(r"\1{\2}", _BARE_ARGUMENT.sub(r"\\\1{\2}", text))
    text = _SIMPLE_FRACTION.sub(r"\\frac{\1}{\2}", text)
    text = re.sub(r"(^|[^\d])\.(\d)", r"\g<1>0.\2", text)
    return re.sub(r"^(-?\d+)\.0+$", r"\1", text)


def equivalent(prediction: str, gold: str, timeout_s: float = VERIFY_TIMEOUT_S) -> bool | None:
    """Normalised strings match, or math-verify proves the two answers equal; None when math-verify ran
    out of time (see `verify_worker`); never raises."""
    if normalize_answer(prediction) == normalize_answer(gold):
        return True
    return _WORKER.equivalent(gold, prediction, timeout_s)


@dataclass(frozen=True)
class Math500Task(Task):
    name: str = "math500"
    default_gen_length: int = 256
    default_source: str | None = "HuggingFaceH4/MATH-500"
    timeout_s: float = VERIFY_TIMEOUT_S  # math-verify's time per completion; past it the item scores 0

    fields: ClassVar[dict[str, tuple[str, ...]]] = {"problem": ("problem",), "answer": ("answer",)}
    optional_fields: ClassVar[tuple[str, ...]] = ("solution",)

    def question(self, item: dict) -> str:
        return item["problem"]

    def reference_response(self, item: dict) -> str:
        """The worked solution when the item has one, then the boxed gold answer."""
        return format_response(item.get("solution", "").strip(), boxed(item["answer"]))

    def score(self, completion: str, item: dict) -> Score:
        prediction = last_boxed(completion)
        if prediction is None:
            return Score(0.0, 1.0, None)
        correct = equivalent(prediction, str(item["answer"]), self.timeout_s)
        return Score(float(bool(correct)), 1.0, prediction, timed_out=correct is None)
