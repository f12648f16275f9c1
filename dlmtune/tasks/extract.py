"""Answer extraction shared by the scorers: \\boxed{} contents, <answer> text, numbers.

All functions take arbitrary model output and return None (never raise) when nothing is found.
"""

from __future__ import annotations

import re

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?|-?\.\d+")
_NUMBER_NOISE = re.compile(r"\\\$|\$|\\%|%|,|\\!|\s|\\text\{\s*\}")
_BOXED_AT = re.compile(r"\\boxed(\s*)")
_BRACE = re.compile(r"[{}]")
_TOKEN = re.compile(r"[^\s$]+")


def _brace_pairs(text: str) -> dict[int, int]:
    """Each "{" index -> the index after its matching "}" (one pass with a stack; stray "}" ignored)."""
    pairs, stack = {}, []
    for match in _BRACE.finditer(text):
        if match.group() == "{":
            stack.append(match.start())
        elif stack:
            pairs[stack.pop()] = match.end()
    return pairs


def all_boxed(text: str) -> list[str]:
    """Contents of every complete \\boxed{...} (balanced braces) or `\\boxed x` in order of appearance;
    a nested \\boxed counts once, as part of the outer one; an unclosed one is skipped.

    Linear in len(text), so a completion of thousands of nested or unclosed boxes costs one pass."""
    pairs = _brace_pairs(text)
    found: list[str] = []
    inside_until = -1  # end of the last complete braced box taken: boxes starting before it are nested
    for match in _BOXED_AT.finditer(text):
        if match.start() < inside_until:
            continue
        brace = match.end()
        if text.startswith("{", brace):
            if brace in pairs:
                found.append(text[brace + 1 : pairs[brace] - 1])
                inside_until = pairs[brace]
        elif match.group(1).startswith(" ") and brace < len(text):
            token = _TOKEN.match(text, brace)
            if token:
                found.append(token.group())
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
