"""Reasoning tasks of the papers' evaluation: Sudoku, Countdown, GSM8K, MATH-500, each under a protocol
(dlmtune's scoring by default, or d1's exact one: dlmtune.tasks.protocols)."""

from __future__ import annotations

from dlmtune.tasks.base import SYSTEM_PROMPT, Score, Task, format_response
from dlmtune.tasks.countdown import CountdownTask
from dlmtune.tasks.gsm8k import GSM8KTask
from dlmtune.tasks.math500 import Math500Task
from dlmtune.tasks.protocols import PROTOCOL_TASKS
from dlmtune.tasks.sudoku import SudokuTask

_REGISTRY: dict[str, dict[str, Task]] = {
    protocol: {task.name: task for task in tasks}
    for protocol, tasks in {"dlmtune": (SudokuTask(), CountdownTask(), GSM8KTask(), Math500Task()),
                            **PROTOCOL_TASKS}.items()
}
TASKS: tuple[str, ...] = tuple(_REGISTRY["dlmtune"])
PROTOCOLS: tuple[str, ...] = tuple(_REGISTRY)


def get_task(name: str, protocol: str = "dlmtune") -> Task:
    """The task called `name` under `protocol`; an unknown name is a ValueError listing the known ones."""
    if protocol not in _REGISTRY:
        raise ValueError(f"unknown protocol {protocol!r}; known protocols: {', '.join(PROTOCOLS)}")
    try:
        return _REGISTRY[protocol][name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


__all__ = ["PROTOCOLS", "SYSTEM_PROMPT", "TASKS", "Score", "Task", "format_response", "get_task"]
