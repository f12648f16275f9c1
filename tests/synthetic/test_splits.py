"""Splits are disjoint and deterministic; SFT pairs match what evaluation prompts with system_prompt=""."""

from __future__ import annotations

import pytest

from dlmtune.synthetic import make_splits
from dlmtune.synthetic.countdown import problem_key
from dlmtune.tasks import get_task
from dlmtune.tasks.generated import sft_examples

KEYS = {"sudoku": lambda item: item["puzzle"], "countdown": problem_key}


@pytest.mark.parametrize("task", sorted(KEYS))
def test_splits_disjoint_sized_and_deterministic(task):
    splits = make_splits(task, n_train=300, n_val=40, n_test=100, seed=11)
    assert {k: len(v) for k, v in splits.items()} == {"train": 300, "val": 40, "test": 100}
    keys = {name: {KEYS[task](item) for item in items} for name, items in splits.items()}
    assert sum(len(k) for k in keys.values()) == 440
    assert not (keys["train"] & keys["val"] or keys["train"] & keys["test"] or keys["val"] & keys["test"])
    assert splits == make_splits(task, n_train=300, n_val=40, n_test=100, seed=11)
    assert splits["test"] != make_splits(task, n_train=300, n_val=40, n_test=100, seed=12)["test"]


@pytest.mark.parametrize("task", sorted(KEYS))
def test_test_and_val_do_not_depend_on_train_size(task):
    small = make_splits(task, n_train=10, n_val=20, n_test=30, seed=0)
    large = make_splits(task, n_train=200, n_val=20, n_test=30, seed=0)
    assert small["test"] == large["test"] and small["val"] == large["val"]


@pytest.mark.parametrize("task", sorted(KEYS))
def test_sft_examples_are_bare_questions_with_correct_traces(task):
    handler = get_task(task)
    examples = sft_examples(task, 50, seed=2)
    train = make_splits(task, 50, 64, 256, seed=2)["train"]
    assert [e["prompt"] for e in examples] == [handler.question(item) for item in train]
    assert [e["prompt"] for e in examples] == [
        handler.messages(item, system_prompt="")[0]["content"] for item in train
    ]
    for example, item in zip(examples, train, strict=True):
        score = handler.score(example["response"], item)
        assert score.correct == score.total > 0
    held_out = {e["prompt"] for e in sft_examples(task, 256, seed=2, split="test")}
    assert held_out.isdisjoint(e["prompt"] for e in examples)


def test_unknown_task_or_split():
    with pytest.raises(ValueError, match="generated tasks: sudoku, countdown"):
        make_splits("gsm8k", 1, 1, 1, seed=0)
    with pytest.raises(ValueError, match="unknown split"):
        sft_examples("sudoku", 1, seed=0, split="dev")
