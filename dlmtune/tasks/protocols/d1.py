"""The four tasks under d1's evaluation protocol (d1 arXiv 2504.12216; wd1 arXiv 2507.08838 uses it as is).

What changes against dlmtune's protocol: d1's system prompts (d1_prompts), k-shot examples inside the
one user turn, and d1's readers and comparisons (d1_rules), applied to the raw decode with special
tokens kept (`raw_decode`). Item fields, loading and generation defaults are the tasks' own.
Where d1's k-shot code differs from its intent, the intent is kept: its GSM8K and Sudoku loaders of
examples never fire (eval/gsm8k.py tests the wrong object), so its k-shot prompts there hold only the
"Question: ... Answer:" frame; here they hold the k examples, in d1's layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from dlmtune.synthetic.countdown import solve_with_trace
from dlmtune.tasks.base import Score
from dlmtune.tasks.countdown import CountdownTask
from dlmtune.tasks.gsm8k import GSM8KTask
from dlmtune.tasks.math500 import Math500Task
from dlmtune.tasks.protocols import d1_rules as rules
from dlmtune.tasks.protocols.d1_prompts import PROMPTS, few_shot_block
from dlmtune.tasks.sudoku import SudokuTask


class D1Protocol:
    """Mixin: d1's prompt layout; a task adds `score` and `shot_answer` (the example's answer text)."""

    protocol: ClassVar[str] = "d1"
    raw_decode: ClassVar[bool] = True

    def shot_answer(self, item: dict) -> str:
        raise NotImplementedError

    def messages(self, item: dict, system_prompt: str | None = None, shots: Sequence[dict] = ()) -> list[dict]:
        """One user turn: system prompt + "\\n\\n" + the question, or the k-shot block of d1's layout."""
        system_prompt = self.system_prompt if system_prompt is None else system_prompt
        body = self.question(item)
        if shots:
            body = few_shot_block(body, [(self.question(s), self.shot_answer(s)) for s in shots])
        return [{"role": "user", "content": f"{system_prompt}\n\n{body}" if system_prompt else body}]


@dataclass(frozen=True)
class D1GSM8KTask(D1Protocol, GSM8KTask):
    system_prompt: str = PROMPTS["gsm8k"]

    def shot_answer(self, item: dict) -> str:
        return item["answer"]  # the reference solution as published, calculator notes and "####" included

    def score(self, completion: str, item: dict) -> Score:
        prediction = rules.gsm8k_prediction(completion)
        gold = rules.gsm8k_gold(item["answer"])
        correct = prediction is not None and gold is not None and prediction == gold  # QUIRK: exact float
        return Score(float(correct), 1.0, None if prediction is None else repr(prediction))


@dataclass(frozen=True)
class D1Math500Task(D1Protocol, Math500Task):
    system_prompt: str = PROMPTS["math500"]

    def shot_answer(self, item: dict) -> str:
        return item.get("solution") or f"\\boxed{{{item['answer']}}}"

    def score(self, completion: str, item: dict) -> Score:
        prediction = rules.math_prediction(completion)
        correct = prediction is not None and rules.math_equivalent(prediction, str(item["answer"]))
        return Score(float(correct), 1.0, prediction)


@dataclass(frozen=True)
class D1CountdownTask(D1Protocol, CountdownTask):
    """d1 itself forces zero-shot for Countdown; a k-shot prompt here uses its layout all the same."""

    system_prompt: str = PROMPTS["countdown"]

    def shot_answer(self, item: dict) -> str:
        expression, _ = solve_with_trace(item["numbers"], item["target"])
        return f"\\boxed{{{expression}}}"

    def score(self, completion: str, item: dict) -> Score:
        expression = rules.countdown_expression(completion)
        correct = rules.countdown_correct(expression, item["numbers"], item["target"])
        return Score(float(correct), 1.0, expression)


@dataclass(frozen=True)
class D1SudokuTask(D1Protocol, SudokuTask):
    system_prompt: str = PROMPTS["sudoku"]

    def shot_answer(self, item: dict) -> str:
        return item["solution"]

    def score(self, completion: str, item: dict) -> Score:
        grid = rules.sudoku_grid(completion)
        empty = [i for i, cell in enumerate(item["puzzle"]) if cell == "0"]
        correct = sum(grid[i] == item["solution"][i] for i in empty) if grid else 0
        return Score(float(correct), float(len(empty)), grid or None)


D1_TASKS = (D1SudokuTask(), D1CountdownTask(), D1GSM8KTask(), D1Math500Task())
