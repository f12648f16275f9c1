"""The RL prompts: task items, rendered as the evaluation renders them, and a deterministic schedule of
which items each rank rolls out at each step.

Prompts are `task.prompt(...)` (chat template, then the opening <reasoning> tag), exactly what
`dlmtune eval` feeds the sampler, so the policy is trained on the prompts it is measured on.

The schedule replaces a shuffling data loader: item g of the global stream (rollout r, micro-batch m,
rank k, slot i) is position g mod N of the permutation for pass g // N over the N items, seeded by
(seed, pass). It depends on nothing but those numbers, so every rank knows its own share without
communication, ranks never roll out the same prompts in one step, and a resumed run draws what the
uninterrupted one drew.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from dlmtune.rl.config import RLDataConfig
from dlmtune.synthetic.splits import DEFAULT_N_TEST, DEFAULT_N_VAL, GENERATORS, make_splits
from dlmtune.tasks import Task, get_task


def load_items(data: RLDataConfig) -> list[dict]:
    """The configured task items: generated (train split) or read from a task file / Hub id."""
    task = get_task(data.task)
    if data.source != "generated":
        return task.load(data.source, split="train", limit=data.size)
    if data.task not in GENERATORS:
        raise ValueError(f"data.source: task {data.task!r} has no offline generator ({', '.join(GENERATORS)} "
                         "have one); give a task file as data.source")
    if data.generator:
        return GENERATORS[data.task](data.size, data.seed, **data.generator)
    return make_splits(data.task, data.size, DEFAULT_N_VAL, DEFAULT_N_TEST, data.seed)["train"]


@dataclass
class PromptSet:
    """Items with their tokenised prompts; `tokens[i]` is a list of ids."""

    task: Task
    items: list[dict]
    tokens: list[list[int]]

    @classmethod
    def build(cls, data: RLDataConfig, tokenizer: Any, where: str = "data") -> PromptSet:
        task = get_task(data.task)
        items = load_items(data)
        if not items:
            raise ValueError(f"{where}: no prompts in {data.source!r}")
        tokens = []
        for index, item in enumerate(items):
            text = task.prompt(tokenizer, item, system_prompt=data.system_prompt)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) > data.max_prompt_length:
                raise ValueError(f"{where}: prompt {index} of {data.source!r} has {len(ids)} tokens, more than "
                                 f"max_prompt_length={data.max_prompt_length}; raise data.max_prompt_length "
                                 "or shorten the prompts (d1 cuts them from the left, which drops the system prompt)")
            tokens.append(ids)
        return cls(task, items, tokens)

    def schedule(self, seed: int, first: int, count: int) -> list[int]:
        """Item indices at positions first .. first + count - 1 of the global prompt stream."""
        n = len(self.items)
        out, orders = [], {}
        for g in range(first, first + count):
            epoch = g // n
            if epoch not in orders:
                orders[epoch] = list(range(n))
                random.Random(f"{seed}/{epoch}").shuffle(orders[epoch])
            out.append(orders[epoch][g % n])
        return out

    def batch(self, indices: list[int], repeats: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded [len(indices) * repeats, P] ids and attention mask, each prompt `repeats` times in a row."""
        rows = [self.tokens[i] for i in indices for _ in range(repeats)]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for row, tokens in enumerate(rows):
            ids[row, width - len(tokens):] = torch.tensor(tokens)
            attention[row, width - len(tokens):] = 1
        return ids, attention
