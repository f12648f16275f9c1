"""Reasoning tasks of the papers' evaluation (d1 protocol): Sudoku, Countdown, GSM8K, MATH-500."""

from __future__ import annotations

from dlmtune.tasks.base import SYSTEM_PROMPT, Score, Task, format_response
from dlmtune.tasks.countdown import CountdownTask
from dlmtune.tasks.gsm8k import GSM8KTask
from dlmtune.tasks.math500 import Math500Task
from dlmtune.tasks.sudoku import SudokuTask

_REGISTRY: dict[str, Task] = {
    task.name: task for task in (SudokuTask(), CountdownTask(), GSM8KTask(), Math500Task())
}
TASKS: tuple[str, ...] = tuple(_REGISTRY)


def get_task(name: str) -> Task:
    """The task called `name`; an unknown name is a ValueError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


__all__ = ["SYSTEM_PROMPT", "TASKS", "Score", "Task", "format_response", "get_task"]
