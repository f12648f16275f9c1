"""d1's answer reading and comparison (d1 arXiv 2504.12216, eval/parse_and_get_acc.py), re-implemented.

Each function returns what d1's published scorer returns on the same text, quirks included; a line
marked QUIRK says where that departs from what is mathematically right. Every reader takes the raw
decode (special tokens such as <|eot_id|> and <|endoftext|> kept), which is what d1 scores.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import warnings

_UNCLOSED = None  # what `last_box` returns when d1's reader finds an unclosed box


def last_box(text: str) -> str | None:
    """d1's "last boxed" reading: None for an unclosed box, else a string, by these rules in order:
    QUIRK: any "\\boxed " (with a space) wins: the text after its last occurrence up to the first "$";
    QUIRK: with no "\\boxed" nor "\\fbox" at all, the whole text is the answer;
    the last "\\boxed" (else "\\fbox") with its first brace group: the group's contents for "\\boxed{",
    QUIRK: the whole span for anything else ("\\fbox{...}", "\\boxed\\n{...}")."""
    if "\\boxed " in text:
        return text.split("\\boxed ")[-1].split("$")[0]
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return text
    depth = 0
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if text[end] == "}" and depth == 0:
            span = text[start : end + 1]
            return span[len("\\boxed{") : -1] if span.startswith("\\boxed{") else span
    return _UNCLOSED


def first_answer_tag(text: str) -> str | None:
    """The stripped text of the first *closed* <answer>...</answer>; None when there is none."""
    match = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
    return match.group(1).strip() if match else None


# ---- MATH500: Hendrycks-style string normalisation, failures included ----------------------------------


class _Unnormalisable(Exception):
    """d1's normaliser raised on this string, so d1 compares the raw strings instead."""


def _fix_sqrt(text: str) -> str:
    head, *pieces = text.split("\\sqrt")
    for piece in pieces:
        if not piece:
            raise _Unnormalisable("\\sqrt at the end")
        head += "\\sqrt" + (piece if piece[0] == "{" else "{" + piece[0] + "}" + piece[1:])
    return head


def _fix_fracs(text: str) -> str:
    head, *pieces = text.split("\\frac")
    for piece in pieces:
        if not piece:
            raise _Unnormalisable("\\frac at the end")
        if piece[0] == "{":
            head += "\\frac" + piece
        elif len(piece) < 2:
            return text  # QUIRK: one character after \frac leaves the whole string as it was
        elif piece[1] != "{":
            head += "\\frac{" + piece[0] + "}{" + piece[1] + "}" + piece[2:]
        else:
            head += "\\frac{" + piece[0] + "}" + piece[1:]
    return head


def _fix_slash(text: str) -> str:
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        raise _Unnormalisable("a/b with a non-integer side") from None  # QUIRK: then raw comparison
    return f"\\frac{{{a}}}{{{b}}}" if text == f"{a}/{b}" else text


def normalize(text: str) -> str:
    """d1's canonical string of a MATH answer; raises _Unnormalisable where d1's normaliser raises."""
    text = text.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac")
    for piece in ("\\left", "\\right", "^{\\circ}", "^\\circ", "\\$"):
        text = text.replace(piece, "")
    if "\\text{ " in text:  # units on the right
        parts = text.split("\\text{ ")
        if len(parts) != 2:
            raise _Unnormalisable("several '\\text{ '")
        text = parts[0]
    text = text.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    lhs, *rhs = text.split("=")
    if len(rhs) == 1 and len(lhs) <= 2:  # QUIRK: any one- or two-character left side is dropped ("x=", "10=")
        text = rhs[0]
    text = _fix_fracs(_fix_sqrt(text).replace(" ", ""))
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _fix_slash(text)


def math_equivalent(prediction: str, gold: str) -> bool:
    """d1's MATH comparison: equal normalised strings; QUIRK: where normalising fails, equal raw strings."""
    try:
        return normalize(prediction) == normalize(gold)
    except _Unnormalisable:
        return prediction == gold


def math_prediction(text: str) -> str | None:
    """The last box; QUIRK: only an unclosed or empty one falls back to the first closed <answer> tag."""
    prediction = last_box(text)
    if not prediction:
        tag = first_answer_tag(text)
        prediction = prediction if tag is None else tag
    return prediction


# ---- GSM8K ----------------------------------------------------------------------------------------------

_GOLD = re.compile(r"####\s*\$?([\d,]+(?:\.\d+)?)")
_NUMBER = re.compile(r"-?\d+\.?\d*")


def gsm8k_gold(answer: str) -> float | None:
    """The number after the first "####"; QUIRK: a negative gold is unreadable (None, never matched)."""
    match = _GOLD.search(answer)
    try:
        return float(match.group(1).replace(",", "")) if match else None
    except ValueError:
        return None


def _as_number(text: str, position: int) -> float | None:
    """float(text), else the number at `position` (0 first, -1 last) of its digit runs."""
    try:
        return float(text)
    except ValueError:
        numbers = _NUMBER.findall(text)
        return float(numbers[position]) if numbers else None


def gsm8k_prediction(text: str) -> float | None:
    """The first one-line "\\boxed{...}" (contents up to the first "}") that holds a number, read as a
    float or else as its first number (QUIRK: "43,500" reads 43, "\\frac{1}{2}" reads 1); else the first
    closed <answer> tag, as a float or its last number."""
    for content in re.findall(r"\\boxed\{(.*?)\}", text):
        content = content.strip()
        if content and not re.fullmatch(r"\.+", content):
            value = _as_number(content, 0)
            if value is not None:
                return value
    answer = first_answer_tag(text)
    return _as_number(answer, -1) if answer else None


# ---- Countdown ------------------------------------------------------------------------------------------

_LATEX_OPS = (("\\div", "/"), ("\\times", "*"), ("\\cdot", "*"))
_EQUATION = re.compile(r"([0-9+\-*/() ]+)=[0-9. ]+")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow}
_SIGNS = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_MAX_POWER_BITS = 10_000


def countdown_expression(text: str) -> str:
    """The expression d1 checks: the last box (QUIRK: unclosed -> first closed <answer>, else the whole
    text; no box at all -> the whole text), LaTeX operators made Python's, then, QUIRK: if any "expr =
    number" occurs anywhere in it, the first such expr."""
    expression = last_box(text)
    if expression is _UNCLOSED:
        expression = first_answer_tag(text)
        expression = text if expression is None else expression
    for latex, op in _LATEX_OPS:
        expression = expression.replace(latex, op)
    match = _EQUATION.search(expression)
    return match.group(1).strip() if match else expression


def _value(node: ast.AST) -> float | int:
    """Python's own arithmetic on the tree (d1 uses eval): ** and // included; a huge power is refused."""
    if isinstance(node, ast.Expression):
        return _value(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):  # no complex literal passes the check
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _SIGNS:
        return _SIGNS[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(left) > 1 and right * math.log2(abs(left)) > _MAX_POWER_BITS:
            raise OverflowError("power too large to equal a target")  # d1 would compute it, never a match
        return _OPS[type(node.op)](left, right)
    raise TypeError(f"not arithmetic: {ast.dump(node)}")


def countdown_value(expression: str) -> complex:
    """The value d1 gives the expression: inf when it has other characters or does not evaluate."""
    if not re.match(r"^[\d+\-*/().\s]+$", expression):  # QUIRK: "$" also accepts a trailing newline
        return math.inf
    try:
        with warnings.catch_warnings():  # "3(4)" parses with a SyntaxWarning, then fails like d1's eval
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(expression.strip(), mode="eval")
        value = _value(tree)
    except (SyntaxError, TypeError, ValueError, ArithmeticError, RecursionError, MemoryError):
        return math.inf
    return value


def countdown_correct(expression: str, numbers: list[int], target: int) -> bool:
    """Its integers are the given numbers (each once; QUIRK: "2.5" counts 2 and 5) and it is within 1e-5."""
    try:
        used = sorted(int(n) for n in re.findall(r"\d+", expression))
    except ValueError:
        return False
    if used != sorted(numbers):
        return False
    return abs(countdown_value(expression) - target) < 1e-5


# ---- Sudoku ---------------------------------------------------------------------------------------------

_STOP = r"(?:<\|eot_id\|>|<\|endoftext\|>"
_GRID_SOURCES = (
    re.compile(r"<answer>.*?```\s*([\d\s]+)```", re.DOTALL),  # a code block after the first <answer>
    re.compile(r"<answer>(.*?)" + _STOP + r"|</answer>)", re.DOTALL),  # first <answer> to its end or a stop
    re.compile(r"</answer>\s*(.*?)" + _STOP + r"|$)", re.DOTALL),  # QUIRK: text after the first </answer>
    re.compile(r".*?(\d{16})\s*</answer>", re.DOTALL),  # the first 16 digits right before a </answer>
    re.compile(r"\b(\d{16})\b"),  # the first run of exactly 16 digits
)


def sudoku_grid(text: str) -> str:
    """d1's reading of the answered grid: the first source above whose first match is not blank,
    whitespace removed, cut or padded with "0" to 16 characters (QUIRK: any characters, not just digits,
    so "[1234...]" shifts every cell); "" when no source matches."""
    for pattern in _GRID_SOURCES:
        match = pattern.search(text)
        if match and match.group(1).strip():
            grid = re.sub(r"\s", "", match.group(1).strip())
            return grid[:16].ljust(16, "0")
    return ""
