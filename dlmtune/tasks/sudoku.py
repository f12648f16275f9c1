"""4x4 Sudoku (as in d1): the model fills the empty cells; scored per empty cell, not per puzzle."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from dlmtune.synthetic.sudoku import DIGITS, EMPTY, generate_puzzles, solve_with_trace
from dlmtune.tasks.base import FieldError, Score, Task, format_response
from dlmtune.tasks.extract import answer_text

CELLS = 16
SUDOKU_PROMPT = (
    "Solve the 4x4 Sudoku: every row, column and 2x2 box must hold the digits 1-4 once; 0 marks an empty "
    "cell. Reason step by step inside <reasoning> </reasoning> tags, then write the 16 digits of the solved "
    "grid, row by row, inside <answer> </answer> tags."
)
_CODE_BLOCK = re.compile(r"```(?:[^\n`]*\n)?(.*?)```", re.DOTALL)
_RUN_OF_16 = re.compile(r"\d{16}")


def _digits(text: str | None) -> str:
    return re.sub(r"\D", "", text or "")


def extract_grid(completion: str) -> str | None:
    """The answered grid as 16 digits: digits of the <answer> text, else of the last code block, else
    the last run of 16 digits; padded with "0" (never correct) or truncated to 16. None if no source."""
    blocks = _CODE_BLOCK.findall(completion)
    runs = _RUN_OF_16.findall(completion)
    for source in (answer_text(completion), blocks[-1] if blocks else None, runs[-1] if runs else None):
        digits = _digits(source)
        if digits:
            return digits[:CELLS].ljust(CELLS, EMPTY)
    return None


def _grid(value: Any, allowed: str) -> str:
    """A 16-character grid from a string or an integer (leading zeros lost by a numeric column)."""
    text = str(value).strip().zfill(CELLS) if isinstance(value, int) else str(value).strip()
    if len(text) != CELLS or set(text) - set(allowed):
        raise ValueError(f"expected {CELLS} digits from {allowed!r}, got {text!r}")
    return text


@dataclass(frozen=True)
class SudokuTask(Task):
    name: str = "sudoku"
    default_gen_length: int = 512
    system_prompt: str = SUDOKU_PROMPT

    fields: ClassVar[dict[str, tuple[str, ...]]] = {
        "puzzle": ("puzzle", "Puzzle", "quizzes"),
        "solution": ("solution", "Solution", "solutions"),
    }

    def question(self, item: dict) -> str:
        return f"Solve the following Sudoku puzzle: {item['puzzle']}\n"

    def reference_response(self, item: dict) -> str:
        solution, steps = solve_with_trace(item["puzzle"])
        return format_response(steps, solution)

    def score(self, completion: str, item: dict) -> Score:
        puzzle, solution = item["puzzle"], item["solution"]
        grid = extract_grid(completion)
        empty = [i for i, cell in enumerate(puzzle) if cell == EMPTY]
        correct = 0 if grid is None else sum(grid[i] == solution[i] for i in empty)
        return Score(correct=float(correct), total=float(len(empty)), extracted=grid)

    def summarize(self, scores: Sequence[Score]) -> dict[str, Any]:
        """Adds the fraction of puzzles with every empty cell right."""
        summary = super().summarize(scores)
        solved = sum(s.correct == s.total for s in scores)
        summary["solved_fraction"] = solved / len(scores) if scores else float("nan")
        return summary

    def clean(self, item: dict[str, Any]) -> dict[str, Any]:
        for field, allowed in (("puzzle", DIGITS + EMPTY), ("solution", DIGITS)):
            try:
                item[field] = _grid(item[field], allowed)
            except ValueError as error:
                raise FieldError(f"field {field!r}: {error}") from None
        return item

    def generate(self, n: int, seed: int) -> list[dict]:
        """`n` distinct uniquely solvable puzzles (dlmtune.synthetic.sudoku)."""
        return generate_puzzles(n, seed)
