"""What every evaluation task shares: the prompt and response format, scores, loading, summaries.

Prompt (layout as in d1's eval/; the system prompts here are dlmtune's own wording, d1's verbatim ones
are in dlmtune.tasks.protocols): the user turn is system prompt + "\\n\\n" + question (the bare question
when the system prompt is ""), rendered with the chat template and its generation prompt, then
"<reasoning>" appended so the model starts inside its reasoning. A k-shot prompt puts solved items first
as earlier user/assistant turns, each user turn built the same way (d1's one-turn layout: protocol "d1").
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from dlmtune.tasks.loading import read_records

REASONING_OPEN = "<reasoning>"
SYSTEM_PROMPT = (
    "Work through the problem step by step inside <reasoning> </reasoning> tags, then give the final "
    "answer inside <answer> </answer> tags, written as \\boxed{...}."
)


@dataclass(frozen=True)
class Score:
    """One item's result; a set's accuracy is sum(correct) / sum(total) (cell-level for Sudoku)."""

    correct: float
    total: float
    extracted: str | None = None
    timed_out: bool = False  # the scorer ran out of time (scored 0), counted apart in the results


class FieldError(ValueError):
    """A record lacks a field or holds an unusable value; the loader adds the file and location."""


def boxed(answer: object) -> str:
    return f"\\boxed{{{answer}}}"


def format_response(reasoning: str | Sequence[str], answer: str) -> str:
    """The response format the scorers read: reasoning lines, then the answer text inside <answer>.

    Used for SFT targets and for the assistant turns of k-shot prompts alike."""
    body = reasoning if isinstance(reasoning, str) else "\n".join(reasoning)
    return f"{REASONING_OPEN}\n{body}\n</reasoning>\n<answer>\n{answer}\n</answer>"


@dataclass(frozen=True)
class Task(ABC):
    """A reasoning task: prompt building, scoring and loading, with the papers' generation defaults."""

    name: str
    default_gen_length: int
    default_block_length: int = 32
    system_prompt: str = SYSTEM_PROMPT
    default_source: str | None = None
    hub_config: str | None = None

    protocol: ClassVar[str] = "dlmtune"  # whose prompts and scoring rules (dlmtune.tasks.protocols)
    raw_decode: ClassVar[bool] = False  # score the decode with special tokens kept (d1 does), not the clean one
    # canonical field -> accepted column names, in order of preference
    fields: ClassVar[dict[str, tuple[str, ...]]] = {}
    optional_fields: ClassVar[tuple[str, ...]] = ()

    @property
    def default_steps(self) -> int:
        """Papers' default: one step per two generated tokens."""
        return self.default_gen_length // 2

    @abstractmethod
    def question(self, item: dict) -> str: ...

    @abstractmethod
    def reference_response(self, item: dict) -> str:
        """A correct response in the format of `format_response`, for k-shot turns and SFT."""

    @abstractmethod
    def score(self, completion: str, item: dict) -> Score:
        """Score one completion; never raises, an unreadable answer scores 0."""

    def clean(self, item: dict[str, Any]) -> dict[str, Any]:
        """Convert and check field values of a loaded item; raise FieldError when one is unusable."""
        return item

    def user_turn(self, item: dict, system_prompt: str | None = None) -> str:
        system_prompt = self.system_prompt if system_prompt is None else system_prompt
        question = self.question(item)
        return f"{system_prompt}\n\n{question}" if system_prompt else question

    def messages(
        self, item: dict, system_prompt: str | None = None, shots: Sequence[dict] = ()
    ) -> list[dict]:
        """Chat messages; `system_prompt=None` means the task's own, "" the bare question."""
        turns: list[dict] = []
        for shot in shots:
            turns.append({"role": "user", "content": self.user_turn(shot, system_prompt)})
            turns.append({"role": "assistant", "content": self.reference_response(shot)})
        turns.append({"role": "user", "content": self.user_turn(item, system_prompt)})
        return turns

    def prompt(
        self, tokenizer: Any, item: dict, system_prompt: str | None = None, shots: Sequence[dict] = ()
    ) -> str:
        text = tokenizer.apply_chat_template(
            self.messages(item, system_prompt, shots), tokenize=False, add_generation_prompt=True
        )
        return text + REASONING_OPEN

    def summarize(self, scores: Sequence[Score]) -> dict[str, Any]:
        correct = sum(s.correct for s in scores)
        total = sum(s.total for s in scores)
        accuracy = correct / total if total else math.nan
        return {"accuracy": accuracy, "n": len(scores), "correct": correct, "total": total}

    def normalize(self, record: dict[str, Any]) -> dict[str, Any]:
        """The item in canonical field names, cleaned; raises FieldError naming the bad field."""
        item = {}
        for field, names in self.fields.items():
            name = next((n for n in names if record.get(n) not in (None, "")), None)
            if name is None:
                raise FieldError(f"missing field {field!r} (accepted names: {', '.join(names)})")
            item[field] = record[name]
        item.update({f: record[f] for f in self.optional_fields if record.get(f) not in (None, "")})
        return self.clean(item)

    def load(self, path_or_id: str | Path, split: str = "test", limit: int | None = None) -> list[dict]:
        """Items from a local JSONL / JSON / CSV / Parquet file, else from the Hub dataset of that id."""
        items: list[dict] = []
        for location, record in read_records(path_or_id, split, self.hub_config):
            if limit is not None and len(items) >= limit:
                break
            try:
                items.append(self.normalize(record))
            except FieldError as error:
                raise ValueError(f"{path_or_id}: {location}: {error}") from None
        return items
