"""Answer extraction shared by the scorers: \\boxed{} contents, <answer> text, numbers.

All functions take arbitrary model output and return None (never raise) when nothing is found.
"""

from __future__ import annotations

import re

BOXED = "\\boxed"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?|-?\.\d+")
_NUMBER_NOISE = re.compile(r"\\\$|\$|\\%|%|,|\\!|\s|\\text\{\s*\}")


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """Contents of the brace group opening at text[start] == "{" and the index after it."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None


def all_boxed(text: str) -> list[str]:
    """Contents of every complete \\boxed{...} (balanced braces) or `\\boxed x` in order of appearance;
    a nested \\boxed counts once, as part of the outer one; an unclosed one is skipped."""
    found = []
    position = text.find(BOXED)
    while position != -1:
        after = position + len(BOXED)
        rest = text[after:]
        stripped = rest.lstrip()
        if stripped.startswith("{"):
            group = _braced(text, after + len(rest) - len(stripped))
            if group is not None:
                found.append(group[0])
                after = group[1]
        elif rest[:1] == " " and stripped:
            token = re.match(r"[^\s$]+", stripped)
            if token:
                found.append(token.group(0))
        position = text.find(BOXED, after)
    return found


def last_boxed(text: str) -> str | None:
    boxes = all_boxed(text)
    return boxes[-1] if boxes else None


def answer_text(text: str) -> str | None:
    """Text after the last <answer>, up to the next </answer> (or the end when it was never closed)."""
    start = text.rfind(ANSWER_OPEN)
    if start == -1:
        return None
    body = text[start + len(ANSWER_OPEN) :]
    end = body.find(ANSWER_CLOSE)
    return body if end == -1 else body[:end]


def parse_number(text: str) -> float | None:
    """The number `text` spells, allowing "$", "%", thousands commas and spaces; else None."""
    cleaned = _NUMBER_NOISE.sub("", text).rstrip(".")
    if not re.fullmatch(r"-?(?:\d+(?:\.\d*)?|\.\d+)", cleaned):
        return None
    return float(cleaned)


def last_number(text: str) -> str | None:
    """The last number written in `text` (thousands commas allowed), as written; else None."""
    matches = _NUMBER.findall(text)
    return matches[-1] if matches else None


def same_number(a: float, b: float) -> bool:
    return abs(a - b) < 1e-6 * max(1.0, abs(b))
