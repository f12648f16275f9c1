"""Reward functions built from a task's scorer, so any task that can score a completion is an RL environment.

A reward function maps (response, item) to a float, the response being the model's completion behind the
opening `<reasoning>` tag the prompt ends with. `correctness` is the task's score as a fraction,
`correct / total`: cell accuracy for Sudoku (d1's Sudoku reward, the share of empty cells filled right),
1 or 0 for Countdown, GSM8K and MATH500 (d1 weights GSM8K and MATH correctness 2.0: set the weight).
`format` is 1 when the response has a <reasoning> block followed by an <answer> block (d1's "soft format"
check, which d1 scores 0.5: again, the weight). The config chooses functions and weights by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dlmtune.tasks.base import Task

RewardFunction = Callable[[str, dict], float]
_FORMAT = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", re.DOTALL)


def _has_scorer(task: Task) -> bool:
    score = getattr(task, "score", None)
    return callable(score) and not getattr(score, "__isabstractmethod__", False)


def correctness(task: Task) -> RewardFunction:
    if not _has_scorer(task):
        raise ValueError(f"task {getattr(task, 'name', task)!r} has no scorer (a `score(completion, item)` "
                         "method), so it cannot give the correctness reward; use a task with one "
                         "(sudoku, countdown, gsm8k, math500)")

    def reward(response: str, item: dict) -> float:
        score = task.score(response, item)
        return score.correct / score.total if score.total else 0.0

    return reward


def format_reward(task: Task) -> RewardFunction:
    def reward(response: str, item: dict) -> float:
        return 1.0 if _FORMAT.search(response) else 0.0

    return reward


REWARD_FUNCTIONS: dict[str, Callable[[Task], RewardFunction]] = {"correctness": correctness, "format": format_reward}


@dataclass(frozen=True)
class RewardSet:
    """The configured reward functions, in config order, with their weights."""

    names: tuple[str, ...]
    functions: tuple[RewardFunction, ...]
    weights: tuple[float, ...]

    def score(self, response: str, item: dict) -> list[float]:
        """Each function's reward (unweighted), in `names` order."""
        return [function(response, item) for function in self.functions]


def build_rewards(task: Task, weights: Mapping[str, float]) -> RewardSet:
    """The reward functions named in `weights` (name -> weight) for `task`; unknown names and tasks
    without a scorer are ValueErrors saying what exists."""
    if not weights:
        raise ValueError(f"no reward functions configured; choose from {', '.join(REWARD_FUNCTIONS)}")
    unknown = [name for name in weights if name not in REWARD_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown reward function(s) {unknown}; known: {', '.join(REWARD_FUNCTIONS)}")
    names = tuple(weights)
    return RewardSet(names, tuple(REWARD_FUNCTIONS[name](task) for name in names),
                     tuple(float(weights[name]) for name in names))
