"""Short real training runs on the micro preset: loss falls, outputs reload, runs reproduce."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaForCausalLM

from dlmtune.models.loading import load_model
from dlmtune.train import GIFT_STAR_CACHE, load_config, run_training


def micro_overrides(out, **extra):
    values = {
        "output_dir": str(out), "model.name_or_path": "preset:micro",
        "data.source": "synthetic:countdown", "data.synthetic_size": 48, "data.max_length": 128,
        "max_steps": 8, "per_device_train_batch_size": 8, "learning_rate": 3e-3, "logging_steps": 1,
        "save_strategy": "no", "report_to": "none", "use_cpu": True, "seed": 7, "disable_tqdm": True,
    }
    values.update(extra)
    return list(values.items())


def train(out, **extra):
    return run_training(load_config(None, micro_overrides(out, **extra)))


def logged_losses(out):
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


@pytest.mark.parametrize("objective", ["sft", "weft"])
def test_loss_falls_and_the_model_reloads(tmp_path, objective):
    out = tmp_path / objective
    summary = train(out, objective=objective, max_steps=30, logging_steps=5)
    losses = logged_losses(out)
    assert len(losses) == 6
    assert losses[-1] < 0.8 * losses[0], losses
    reloaded = LlamaForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.mask_token_id is not None
    assert summary["grad_norm"]["steps"] == 30
    assert summary["grad_norm"]["max"] >= summary["grad_norm"]["median"] > 0
    assert summary["seconds_per_step"] > 0
    base = load_model("preset:micro")[0]
    changed = [name for name, p in reloaded.named_parameters()
               if not torch.equal(p, dict(base.named_parameters())[name])]
    assert len(changed) == len(list(base.parameters())), "every parameter should be trained"


def test_weft_logs_its_metrics(tmp_path):
    train(tmp_path, objective="weft", max_steps=2)
    record = next(json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines())
    for key in ("loss", "grad_norm", "mean_entropy", "beta_ref", "mask_fraction", "learning_rate"):
        assert key in record
    assert 0 < record["mask_fraction"] <= 1 and record["mean_entropy"] > 0


def test_lora_run_saves_an_adapter_that_reloads(tmp_path):
    train(tmp_path, objective="weft", max_steps=3, **{"lora.r": 4, "lora.alpha": 8})
    assert (tmp_path / "adapter_config.json").exists() and not (tmp_path / "model.safetensors").exists()
    base, _, _ = load_model("preset:micro")
    model = PeftModel.from_pretrained(base, tmp_path)
    trained = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert trained and all("lora_" in name for name in trained)
    ids = torch.arange(10).reshape(1, -1)
    with model.disable_adapter():
        plain = model(input_ids=ids).logits
    assert not torch.allclose(model(input_ids=ids).logits, plain), "the adapter changes the model"


def test_same_seed_same_parameters(tmp_path):
    train(tmp_path / "a", objective="weft", max_steps=4)
    train(tmp_path / "b", objective="weft", max_steps=4)
    a, b = (load_file(str(tmp_path / x / "model.safetensors")) for x in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gift_star_precomputes_once_and_reuses_the_file(tmp_path):
    train(tmp_path, objective="gift-star", max_steps=2)
    cache = tmp_path / GIFT_STAR_CACHE
    stamp = cache.stat().st_mtime_ns
    assert cache.stat().st_size > 0
    train(tmp_path, objective="gift-star", max_steps=2, overwrite_output_dir=True)  # a new run, same folder
    assert cache.stat().st_mtime_ns == stamp, "a second run on the same data and model reuses the entropies"


@pytest.mark.parametrize("shuffled", [True, False])
def test_group_by_length_batches_come_in_random_order_unless_told(micro_model, tokenizer, tmp_path, shuffled):
    """group_by_length gives dlmtune's length-grouped batches in random order (transformers' own sweeps
    from long to short batches inside each megabatch); shuffle_length_groups=False gives transformers'."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from dlmtune.data import build_sft_dataset
    from dlmtune.data.sampler import ShuffledLengthGroupedSampler
    from dlmtune.objectives import get_objective
    from dlmtune.trainer import DiffusionTrainer, DiffusionTrainingArguments

    config = load_config(None, micro_overrides(tmp_path)).data
    dataset, _ = build_sft_dataset(tokenizer, config)
    args = DiffusionTrainingArguments(output_dir=str(tmp_path), train_sampling_strategy="group_by_length",
                                      shuffle_length_groups=shuffled, per_device_train_batch_size=8, seed=4,
                                      use_cpu=True, report_to="none")
    trainer = DiffusionTrainer(model=micro_model, args=args, train_dataset=dataset, processing_class=tokenizer,
                               objective=get_objective("sft", mask_id=tokenizer.mask_token_id))
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, ShuffledLengthGroupedSampler if shuffled else LengthGroupedSampler)
    if shuffled:
        assert (sampler.batch_size, sampler.seed) == (8, 4)
        assert list(sampler) == list(ShuffledLengthGroupedSampler(dataset["length"], 8, seed=4))


@pytest.mark.parametrize("regional,dynamic", [(True, True), (False, False)])
def test_torch_compile_is_regional_and_dynamic_as_configured(micro_model, tmp_path, regional, dynamic):
    """dLLM batches change length every step: the Trainer's plugin (whole model, static shapes) would
    recompile for each; DiffusionTrainer's compiles the repeated blocks for dynamic shapes unless told not to."""
    from dlmtune.objectives import get_objective
    from dlmtune.trainer import DiffusionTrainer, DiffusionTrainingArguments

    args = DiffusionTrainingArguments(output_dir=str(tmp_path), torch_compile=True, torch_compile_regional=regional,
                                      torch_compile_dynamic=dynamic, use_cpu=True, report_to="none")
    trainer = DiffusionTrainer(model=micro_model, args=args, objective=get_objective("sft", mask_id=0))
    plugin = trainer.accelerator.state.dynamo_plugin
    assert plugin.backend.value.lower() == "inductor"
    assert plugin.use_regional_compilation is regional and plugin.dynamic is dynamic


@pytest.mark.slow
def test_compiled_training_follows_the_eager_run(tmp_path):
    """Compiling changes rounding only: the same run's losses agree to a few parts in a thousand."""
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    train(eager)
    train(compiled, torch_compile=True)
    losses = [[r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "loss" in r]
              for out in (eager, compiled)]
    assert len(losses[0]) == 8 and losses[0] == pytest.approx(losses[1], rel=5e-3)


def test_quiet_keeps_log_records_off_stdout_but_in_the_log(tmp_path, capsys):
    """The demo draws its own progress bar: `quiet` drops the Trainer's printed records, not log.jsonl's."""
    train(tmp_path / "loud")
    loud = capsys.readouterr().out
    run_training(load_config(None, micro_overrides(tmp_path / "quiet")), quiet=True)
    quiet = capsys.readouterr().out
    assert "'loss'" in loud and "'loss'" not in quiet
    records = [json.loads(line) for line in (tmp_path / "quiet" / "log.jsonl").read_text().splitlines()]
    assert sum("loss" in r for r in records) == 8
