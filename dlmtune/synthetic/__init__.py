"""Offline generators for the Sudoku and Countdown tasks, with solver traces for SFT and k-shot turns."""

from __future__ import annotations

from dlmtune.synthetic.countdown import generate_problems
from dlmtune.synthetic.countdown import solve_with_trace as solve_countdown
from dlmtune.synthetic.splits import make_splits
from dlmtune.synthetic.sudoku import generate_puzzles
from dlmtune.synthetic.sudoku import solve_with_trace as solve_sudoku

__all__ = [
    "generate_problems",
    "generate_puzzles",
    "make_splits",
    "solve_countdown",
    "solve_sudoku",
]
