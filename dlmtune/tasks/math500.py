"""MATH-500: the last \\boxed{} of the completion against the gold answer.

Equal when math-verify finds them symbolically equivalent (offline; its timeouts use signal.alarm,
which only works in the main thread, so they are switched off) or when their strings match after a
Hendrycks-style normalisation (d1's comparison), which also covers answers sympy cannot parse.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import ClassVar

from math_verify import parse, verify

from dlmtune.tasks.base import Score, Task, boxed, format_response
from dlmtune.tasks.extract import last_boxed

_REMOVED = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "^{\\circ}", "^\\circ", "\\$", "$", "\\%", "%")
_BARE_ARGUMENT = re.compile(r"\\(frac|sqrt)([0-9a-zA-Z])")  # \frac12, \sqrt2
_BARE_DENOMINATOR = re.compile(r"(\\frac\{[^{}]*\})([0-9a-zA-Z])")  # \frac{1}2
_TEXT = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")
_SIMPLE_FRACTION = re.compile(r"^(-?\d+)/(\d+)$")
_SHORT_LHS = re.compile(r"^[a-zA-Z]\w?=")

# math-verify warns on every call that its timeouts are off; that is deliberate here.
logging.getLogger("math_verify").setLevel(logging.ERROR)


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


def equivalent(prediction: str, gold: str) -> bool:
    """Normalised strings match, or math-verify proves the two answers equal; never raises."""
    if normalize_answer(prediction) == normalize_answer(gold):
        return True
    try:
        parsed_gold = parse(boxed(gold), parsing_timeout=None)
        parsed_prediction = parse(boxed(prediction), parsing_timeout=None)
        return bool(verify(parsed_gold, parsed_prediction, timeout_seconds=None))
    except Exception:  # math-verify and sympy can fail in many ways on arbitrary text
        return False


@dataclass(frozen=True)
class Math500Task(Task):
    name: str = "math500"
    default_gen_length: int = 256
    default_source: str | None = "HuggingFaceH4/MATH-500"

    fields: ClassVar[dict[str, tuple[str, ...]]] = {"problem": ("problem",), "answer": ("answer",)}
    optional_fields: ClassVar[tuple[str, ...]] = ("solution",)

    def question(self, item: dict) -> str:
        return item["problem"]

    def reference_response(self, item: dict) -> str:
        """The worked solution when the item has one, then the boxed gold answer."""
        return format_response(item.get("solution", "").strip(), boxed(item["answer"]))

    def score(self, completion: str, item: dict) -> Score:
        prediction = last_boxed(completion)
        correct = prediction is not None and equivalent(prediction, str(item["answer"]))
        return Score(float(correct), 1.0, prediction)
