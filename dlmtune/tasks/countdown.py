"""Countdown with three numbers (d1): an arithmetic expression using each given number once.

Checker (dlmtune's, stricter than d1's: protocols/d1_rules.py): the last \\boxed{} else the <answer> text; LaTeX operators become + - * /; a trailing
"= number" is dropped; the expression may hold only digits, + - * / ( ) . and spaces; its integers
must be exactly the given numbers (as a multiset); correct when its value is within 1e-5 of the target.
The expression is evaluated by walking its syntax tree, never with eval().
"""

from __future__ import annotations

import ast
import json
import operator
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from dlmtune.synthetic.countdown import generate_problems, solve_with_trace
from dlmtune.tasks.base import FieldError, Score, Task, boxed, format_response
from dlmtune.tasks.extract import answer_text, last_boxed

COUNTDOWN_PROMPT = (
    "Combine the given numbers with + - * / and parentheses, using each number exactly once, to reach the "
    "target. Reason step by step inside <reasoning> </reasoning> tags, then give the expression inside "
    "<answer> </answer> tags, written as \\boxed{...}."
)
_LATEX_OPS = {"\\div": "/", "\\times": "*", "\\cdot": "*"}
_TRAILING_RESULT = re.compile(r"=\s*-?\d+(?:\.\d+)?\s*$")
_ALLOWED = re.compile(r"[\d+\-*/(). ]+")
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def extract_expression(completion: str) -> str | None:
    """The answered expression, LaTeX operators replaced and a trailing "= result" dropped."""
    text = last_boxed(completion)
    if text is None:
        text = answer_text(completion)
    if text is None:
        return None
    for latex, op in _LATEX_OPS.items():
        text = text.replace(latex, op)
    return _TRAILING_RESULT.sub("", text).strip()


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    raise ValueError(f"not allowed in an expression: {ast.dump(node)}")


def evaluate_expression(expression: str) -> float | None:
    """Value of an arithmetic expression over + - * / and parentheses; None if it is not one."""
    if not _ALLOWED.fullmatch(expression):
        return None
    try:
        return float(_evaluate(ast.parse(expression, mode="eval")))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError, MemoryError):
        return None


def uses_exactly(expression: str, numbers: list[int]) -> bool:
    """The integers written in `expression` are the given numbers, each used once."""
    found = re.findall(r"\d+", expression)
    if any(len(n) > 30 for n in found):  # int() refuses very long digit strings
        return False
    return sorted(int(n) for n in found) == sorted(numbers)


@dataclass(frozen=True)
class CountdownTask(Task):
    name: str = "countdown"
    default_gen_length: int = 512
    system_prompt: str = COUNTDOWN_PROMPT

    # "input" / "output": d1's countdown_cd3_test.jsonl ({"input": "30,100,93", "output": "23"})
    fields: ClassVar[dict[str, tuple[str, ...]]] = {
        "numbers": ("numbers", "nums", "input"), "target": ("target", "output")}

    def question(self, item: dict) -> str:
        return f"Numbers: {item['numbers']}\nTarget: {item['target']}"

    def reference_response(self, item: dict) -> str:
        expression, steps = solve_with_trace(item["numbers"], item["target"])
        return format_response(steps, boxed(expression))

    def score(self, completion: str, item: dict) -> Score:
        expression = extract_expression(completion)
        if expression is None or not uses_exactly(expression, item["numbers"]):
            return Score(0.0, 1.0, expression)
        value = evaluate_expression(expression)
        correct = value is not None and abs(value - item["target"]) < 1e-5
        return Score(float(correct), 1.0, expression)

    def clean(self, item: dict[str, Any]) -> dict[str, Any]:
        numbers = item["numbers"]
        try:
            numbers = _number_list(numbers) if isinstance(numbers, str) else numbers
            item["numbers"] = [_integer(n) for n in numbers]
        except (TypeError, ValueError):
            raise FieldError(
                f"field 'numbers': expected a list of integers, got {item['numbers']!r}"
            ) from None
        try:
            item["target"] = _integer(item["target"])
        except (TypeError, ValueError):
            raise FieldError(f"field 'target': expected an integer, got {item['target']!r}") from None
        return item

    def generate(self, n: int, seed: int) -> list[dict]:
        """`n` distinct solvable problems (dlmtune.synthetic.countdown)."""
        return generate_problems(n, seed)


def _number_list(text: str) -> list:
    """A JSON list ("[30, 100, 93]") or comma-separated numbers ("30,100,93", d1's file)."""
    text = text.strip()
    return json.loads(text) if text.startswith("[") else text.split(",")


def _integer(value: Any) -> int:
    """An integer from an int, an integral float, or a string of either (CSV and Parquet columns)."""
    number = float(value)
    if not number.is_integer():
        raise ValueError(value)
    return int(number)
