"""The base model's corpus stays off the evaluated tasks and items, and its recipe (configs/pretrain-tiny.yaml,
run by `dlmtune pretrain` through DiffusionTrainer) still runs, shortened."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

from dlmtune.cli import app
from dlmtune.data.corpus import DOCUMENTS, KIND_ROTATION, corpus, held_out_items
from dlmtune.synthetic.countdown import problem_key
from dlmtune.tasks.countdown import evaluate_expression, extract_expression
from dlmtune.train import load_config, run_training
from dlmtune.trainer import DiffusionTrainer, DiffusionTrainingArguments


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


def test_weight_decay_spares_biases_and_norms_and_the_schedule_is_trainers(micro_model, tmp_path):
    """The one optimizer every run uses: Trainer's AdamW groups and its warm-up + cosine schedule."""
    from dlmtune.objectives import get_objective

    args = DiffusionTrainingArguments(output_dir=str(tmp_path), max_steps=20, learning_rate=1e-2, warmup_steps=0.1,
                                      weight_decay=0.1, lr_scheduler_type="cosine", use_cpu=True, report_to="none")
    trainer = DiffusionTrainer(model=micro_model, args=args, objective=get_objective("sft", mask_id=0))
    trainer.create_optimizer_and_scheduler(num_training_steps=20)
    optimizer, schedule = trainer.optimizer, trainer.lr_scheduler
    names = {id(p): n for n, p in micro_model.named_parameters()}
    decayed = [g for g in optimizer.param_groups if g["weight_decay"] == 0.1]
    spared = [g for g in optimizer.param_groups if g["weight_decay"] == 0.0]
    assert len(decayed) == len(spared) == 1
    assert all("norm" in names[id(p)] for p in spared[0]["params"])
    assert not any("norm" in names[id(p)] for p in decayed[0]["params"])
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
    """`dlmtune pretrain` is `dlmtune train configs/pretrain-tiny.yaml`: a normal train output folder."""
    result = CliRunner().invoke(app, ["pretrain", "--out", str(tmp_path), "--model", "preset:micro", "--max_steps", "3",
                                      "--per_device_train_batch_size", "4", "--data.synthetic_size", "16",
                                      "--logging_steps", "1", "--disable_tqdm", "true"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model.safetensors").exists()
    recipe = yaml.safe_load((tmp_path / "dlmtune_train.yaml").read_text())
    assert recipe["data"]["source"] == "synthetic:corpus" and recipe["objective"]["t_sampling"] == "stratified"
    assert recipe["learning_rate"] == 3e-3 and recipe["model"]["name_or_path"] == "preset:micro"
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["global_step"] == 3 and summary["data"]["examples"] == 16


def test_the_recipe_is_the_shipped_bases(tmp_path):
    """The shipped base is what `dlmtune pretrain` makes of configs/pretrain-tiny.yaml: its recorded config
    is the recipe, and its record says it ran the recipe's steps."""
    from dlmtune.models.embedded import SHIPPED_BASE
    from dlmtune.train import embedded_config

    shipped = yaml.safe_load((SHIPPED_BASE / "dlmtune_train.yaml").read_text())
    recipe = yaml.safe_load(embedded_config("pretrain-tiny").read_text())
    assert {k: v for k, v in shipped.items() if k != "output_dir"} == {k: v for k, v in recipe.items() if k != "output_dir"}
    summary = json.loads((SHIPPED_BASE / "train_summary.json").read_text())
    assert summary["global_step"] == recipe["max_steps"] and summary["data"]["examples"] == recipe["data"]["synthetic_size"]


def test_amortised_objectives_measure_entropies_less_often(tmp_path, monkeypatch):
    """8 examples, batch 4, 8 steps = 4 visits each: weft measures every visit, weft-k4 the first one only
    (its cache goes stale after 4), gift-star once per example against the frozen initial weights."""
    from dlmtune.objectives.registry import Weft

    measured = []
    original = Weft.measure_entropy
    monkeypatch.setattr(Weft, "measure_entropy",
                        lambda self, model, batch: measured.append(len(batch["input_ids"])) or original(self, model, batch))
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Numbers: [{i}, 2, 3]", "response": f"{i}+2=x"}) + "\n"
                            for i in range(8)))
    counts = {}
    for objective in ("weft", "weft-k4", "gift-star"):
        measured.clear()
        overrides = {"output_dir": str(tmp_path / objective), "model": "preset:micro", "data": str(data),
                     "objective": objective, "max_steps": 8, "per_device_train_batch_size": 4,
                     "per_device_eval_batch_size": 8, "save_strategy": "no", "report_to": "none",
                     "use_cpu": True, "disable_tqdm": True}
        run_training(load_config(None, list(overrides.items())))
        counts[objective] = sum(measured)
    assert counts == {"weft": 32, "weft-k4": 8, "gift-star": 8}


def test_the_embedded_base_is_found_without_the_recipe(tmp_path, monkeypatch):
    """`embedded:base-tiny` resolves to the shipped folder; with neither it nor a cached rebuild, the error
    says how to build one (no 36-minute pretraining started behind the user's back)."""
    from dlmtune.models import embedded

    assert embedded.embedded_base_folder() == embedded.SHIPPED_BASE
    monkeypatch.setattr(embedded, "SHIPPED_BASE", tmp_path / "shipped")
    monkeypatch.setattr(embedded, "CACHED_BASE", tmp_path / "cached")
    with pytest.raises(FileNotFoundError, match="dlmtune pretrain --out"):
        embedded.embedded_base_folder()
