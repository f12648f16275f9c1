"""The evaluation runner: results on disk match the completions, re-runs resume, failures score 0."""

from __future__ import annotations

import json

import pytest
import torch

from dlmtune.evaluate import GenerationSettings, evaluate_model, load_task_items
from dlmtune.models.spec import describe
from dlmtune.tasks import get_task

GENERATION = {"gen_length": 16, "block_length": 8, "batch_size": 2}


class CountingModel(torch.nn.Module):
    """Wraps a model, counts forward calls, and can fail after `fail_after` calls (an interruption)."""

    def __init__(self, model, fail_after: int | None = None):
        super().__init__()
        self.model, self.calls, self.fail_after = model, 0, fail_after

    def forward(self, *args, **kwargs):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        return self.model(*args, **kwargs)


@pytest.fixture
def setup(tokenizer, micro_model):
    spec = describe(micro_model.config, tokenizer)
    items = {"countdown": load_task_items("countdown", None, 5), "sudoku": load_task_items("sudoku", None, 3)}
    return micro_model.eval(), spec, items


def _run(model, tokenizer, spec, items, out, seeds=(42,)):
    return evaluate_model(model, tokenizer, spec, items, out_dir=out, seeds=seeds, generation=GENERATION,
                          system_prompt="", progress=False)


def test_results_match_saved_completions(tmp_path, tokenizer, setup):
    model, spec, items = setup
    results = _run(model, tokenizer, spec, items, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())["tasks"]
    for name in items:
        records = [json.loads(line) for line in (tmp_path / "completions" / f"{name}-seed42.rank0.jsonl").open()]
        assert sorted(r["index"] for r in records) == list(range(len(items[name])))
        task = get_task(name)
        for r in records:  # each stored score is the task's score of the stored completion
            score = task.score(r["completion"], items[name][r["index"]])
            assert (score.correct, score.total) == (r["correct"], r["total"])
        accuracy = sum(r["correct"] for r in records) / sum(r["total"] for r in records)
        assert saved[name]["per_seed"]["42"]["accuracy"] == pytest.approx(accuracy)
        assert results[name]["mean"] == pytest.approx(accuracy)
    assert "| countdown | 5 | 1 |" in (tmp_path / "results.md").read_text()


def test_interrupted_eval_resumes_without_redoing_items(tmp_path, tokenizer, setup):
    model, spec, items = setup
    reference = _run(model, tokenizer, spec, items, tmp_path / "ref")
    steps_per_batch = GENERATION["gen_length"] // 2
    interrupted = CountingModel(model, fail_after=steps_per_batch + 1)  # dies inside the second batch
    with pytest.raises(KeyboardInterrupt):
        _run(interrupted, tokenizer, spec, items, tmp_path / "run")
    done = (tmp_path / "run" / "completions" / "countdown-seed42.rank0.jsonl").read_text().splitlines()
    assert len(done) == GENERATION["batch_size"]
    (tmp_path / "run" / "completions" / "countdown-seed42.rank0.jsonl").open("a").write('{"index": 4, "compl')
    resumed = CountingModel(model)
    results = _run(resumed, tokenizer, spec, items, tmp_path / "run")
    remaining_batches = 2 + 2  # countdown: 3 items left (batches of 2); sudoku: 3 items
    assert resumed.calls == remaining_batches * steps_per_batch
    for name in items:
        assert results[name]["per_seed"] == reference[name]["per_seed"]


def test_unparsable_completions_score_zero_and_never_crash(tmp_path, tokenizer, setup):
    model, spec, items = setup
    results = _run(model, tokenizer, spec, items, tmp_path)  # an untrained model writes gibberish
    assert results["countdown"]["mean"] == 0.0
    records = [json.loads(line) for line in (tmp_path / "completions" / "countdown-seed42.rank0.jsonl").open()]
    assert all(r["correct"] == 0 for r in records)


def test_generation_settings_follow_the_papers_per_task():
    sudoku, gsm8k = get_task("sudoku"), get_task("gsm8k")
    assert GenerationSettings.for_task(sudoku) == GenerationSettings(512, 32, 256)
    assert GenerationSettings.for_task(gsm8k) == GenerationSettings(256, 32, 128)
    assert GenerationSettings.for_task(gsm8k, gen_length=64).steps == 32
    fast = GenerationSettings.for_task(gsm8k, fast=True)
    assert fast.threshold == 0.9 and fast.cache == "dual"


def test_k_shot_prompts_contain_solved_examples_not_the_test_item(tmp_path, tokenizer, setup):
    model, spec, items = setup
    evaluate_model(model, tokenizer, spec, {"countdown": items["countdown"][:1]}, out_dir=tmp_path, shots=2,
                   generation=GENERATION, system_prompt="", progress=False)
    from dlmtune.evaluate import few_shot_items

    shots = few_shot_items("countdown", 2, exclude=items["countdown"])
    assert len(shots) == 2 and not any(s in items["countdown"] for s in shots)
    prompt = get_task("countdown").prompt(tokenizer, items["countdown"][0], system_prompt="", shots=shots)
    assert prompt.count("<|assistant|>") == 3 and "\\boxed{" in prompt
