"""The base model's corpus stays off the evaluated tasks and items, and the recipe still runs (shortened)."""

from __future__ import annotations

import copy
import json

import torch

from dlmtune.pretrain import (
    DOCUMENTS,
    KIND_ROTATION,
    PretrainConfig,
    TrainArgs,
    corpus,
    held_out_items,
    pretrain,
    trainer_optimizer,
)
from dlmtune.synthetic.countdown import problem_key
from dlmtune.tasks.countdown import evaluate_expression, extract_expression


def test_corpus_is_deterministic_and_mixes_every_kind():
    assert corpus(40, 3) == corpus(40, 3)
    assert corpus(40, 3) != corpus(40, 4)
    assert set(KIND_ROTATION) == set(DOCUMENTS)
    assert len(corpus(len(KIND_ROTATION), 0)) == len(KIND_ROTATION)
    assert all(set(doc) == {"prompt", "response"} for doc in corpus(20, 0))


def test_corpus_poses_only_easier_instances_of_the_tasks():
    """Sudoku puzzles with 2-5 empty cells (the demo's have 6-10); Countdown problems answered by a sum."""
    sudoku = countdown = 0
    for document in corpus(100 * len(KIND_ROTATION), 0):
        prompt, response = document["prompt"], document["response"]
        if prompt.startswith("Solve the following Sudoku puzzle: "):
            sudoku += 1
            assert 2 <= prompt.removeprefix("Solve the following Sudoku puzzle: ")[:16].count("0") <= 5
        if "Target: " in prompt:
            countdown += 1
            assert not set(extract_expression(response)) & set("-*/"), response
    assert sudoku == countdown == 100


def test_corpus_never_holds_a_held_out_item():
    """No grid of the demo's test/val puzzles; no test/val numbers posed with, or evaluated to, their target."""
    held_out = held_out_items()
    assert len(held_out) == 2 * (256 + 64)
    for document in corpus(2000, 0):
        prompt = document["prompt"]
        if "grid " in prompt or "puzzle: " in prompt:
            grid = prompt.split("grid " if "grid " in prompt else "puzzle: ")[1][:16]
            assert ("sudoku", grid) not in held_out
        if "Target: " in prompt:
            numbers = json.loads(prompt.split("\n")[0].removeprefix("Numbers: "))
            target = int(prompt.split("Target: ")[1])
            assert ("countdown", problem_key({"numbers": numbers, "target": target})) not in held_out
        if "Evaluate: " in prompt:
            numbers = json.loads(prompt.split("\n")[0].removeprefix("Numbers: "))
            expression = prompt.split("Evaluate: ")[1]
            target = int(evaluate_expression(expression))
            assert ("countdown", problem_key({"numbers": numbers, "target": target})) not in held_out


def test_weight_decay_spares_biases_and_norms_and_the_schedule_is_trainers(micro_model):
    args = TrainArgs(max_steps=20, per_device_train_batch_size=2, learning_rate=1e-2, warmup_ratio=0.1)
    optimizer, schedule = trainer_optimizer(micro_model, args)
    decayed, spared = optimizer.param_groups
    names = {id(p): n for n, p in micro_model.named_parameters()}
    assert decayed["weight_decay"] == 0.1 and spared["weight_decay"] == 0.0
    assert all("norm" in names[id(p)] for p in spared["params"])
    assert not any("norm" in names[id(p)] for p in decayed["params"])
    assert optimizer.defaults["betas"] == (0.9, 0.999) and optimizer.defaults["eps"] == 1e-8
    rates = []
    for _ in range(20):
        rates.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    # warm-up over ceil(0.1 * 20) = 2 steps from 0, then cosine down to 0
    assert rates[:3] == [0.0, 0.005, 0.01]
    assert rates[-1] < 1e-3 and all(a >= b for a, b in zip(rates[2:], rates[3:], strict=False))
    assert torch.isclose(torch.tensor(schedule.get_last_lr()[0]), torch.tensor(0.0))


def test_shortened_recipe_runs(tmp_path):
    out = pretrain(PretrainConfig(preset="micro", documents=16, steps=3, batch_size=4), tmp_path, progress=False)
    assert (out / "model.safetensors").exists()
    record = json.loads((out / "pretrain.json").read_text())
    assert record["trainer_arguments"]["max_steps"] == 3 and record["loss_curve"][-1][0] == 3


def test_amortised_objectives_measure_entropies_less_often(micro_model, tokenizer, monkeypatch):
    """8 examples, batch 4, 8 steps = 4 visits each: weft measures every visit, weft-k4 the first one only
    (its cache goes stale after 4), gift-star once per example against the frozen initial weights."""
    from dlmtune.objectives.registry import Weft
    from dlmtune.pretrain import encode, train_model

    measured = []
    original = Weft.measure_entropy
    monkeypatch.setattr(Weft, "measure_entropy",
                        lambda self, model, batch: measured.append(len(batch["input_ids"])) or original(self, model, batch))
    sequences = [encode(tokenizer, f"Numbers: [{i}, 2, 3]", f"{i}+2=x") for i in range(8)]
    args = TrainArgs(max_steps=8, per_device_train_batch_size=4, learning_rate=1e-3)
    counts = {}
    for objective in ("weft", "weft-k4", "gift-star"):
        measured.clear()
        model = copy.deepcopy(micro_model)
        train_model(model, sequences, args, objective=objective, mask_id=tokenizer.mask_token_id,
                    pad_id=tokenizer.eos_token_id, progress=False)
        counts[objective] = sum(measured)
    assert counts == {"weft": 32, "weft-k4": 8, "gift-star": 8}
