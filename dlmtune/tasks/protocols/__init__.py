"""Evaluation protocols: whose prompts and answer-scoring rules a task follows.

"dlmtune" (the default) scores what an answer means: math-verify equivalence, digits-only Sudoku
reading, + - * / only in Countdown. "d1" reproduces d1's published evaluation (d1 arXiv 2504.12216),
quirks included, so that numbers can be compared with the papers' tables; "wd1" (arXiv 2507.08838)
evaluates with d1's code unchanged, so it names the same tasks.
"""

from __future__ import annotations

from dlmtune.tasks.protocols.d1 import D1_TASKS

PROTOCOL_TASKS = {"d1": D1_TASKS, "wd1": D1_TASKS}
