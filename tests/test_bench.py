"""`dlmtune bench train` in CI size: the output format and the facts it must report (not timings)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from dlmtune.bench import RoundTrainer, bench_config, bench_train, build_model, flop_floor
from dlmtune.cli import app
from dlmtune.objectives.registry import Weft
from dlmtune.trainer import DiffusionTrainer


def micro(*overrides):
    return bench_config([("model", "preset:micro"), ("data.max_length", 32), ("per_device_train_batch_size", 2),
                         *overrides])


def test_bench_train_cli_writes_the_documented_json(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, [
        "bench", "train", "--preset", "micro", "--objectives", "sft,weft,sft-full-logits,weft-k4,gift-star", "--seq-len", "32",
        "--batch", "2", "--steps", "2", "--warmup", "1", "--no-memory", "--json", str(out),
        "--output_dir", str(tmp_path / "run"),
    ])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    objectives = payload["objectives"]
    assert set(objectives) == {"sft", "weft", "sft-full-logits", "weft-k4", "gift-star"}
    for entry in objectives.values():
        assert entry["step_time_s"] > 0 and entry["tokens_per_s"] > 0
        assert isinstance(entry["peak_mem_bytes"], int)
        assert entry["ratio_to_sft"] > 0
    assert objectives["sft"]["ratio_to_sft"] == 1.0
    assert payload["flop_floor_weft_over_sft"] > 1.0
    assert payload["config"]["per_device_train_batch_size"] == 2 and payload["config"]["data"]["max_length"] == 32
    assert "weft" in result.output and "time/sft" in result.output


def test_bench_device_cpu_stays_on_the_cpu_and_other_devices_are_refused(tmp_path):
    out = tmp_path / "bench.json"
    common = ["bench", "train", "--preset", "micro", "--seq-len", "16", "--batch", "2", "--steps", "1", "--warmup", "0",
              "--no-memory", "--json", str(out)]
    result = CliRunner().invoke(app, [*common, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["config"]["use_cpu"] is True and payload["device"].startswith("cpu")
    refused = CliRunner().invoke(app, [*common, "--device", "mps"])
    assert refused.exit_code != 0 and "--device" in refused.output and "'mps'" in refused.output


def test_the_timed_steps_are_the_trainers(monkeypatch):
    """Every optimizer step runs through DiffusionTrainer.training_step, objectives in rotation, and the
    reported medians are the trainer's StepTimer times of the measured rounds."""
    calls, timers = [], []
    original_step, original_train = DiffusionTrainer.training_step, DiffusionTrainer.train

    def step(self, *args, **kwargs):
        calls.append(self.objective.name)
        return original_step(self, *args, **kwargs)

    def train(self, *args, **kwargs):
        timers.append(self.step_timer)
        return original_train(self, *args, **kwargs)

    monkeypatch.setattr(DiffusionTrainer, "training_step", step)
    monkeypatch.setattr(DiffusionTrainer, "train", train)
    payload = bench_train(micro(), ["sft", "weft"], steps=3, warmup=1, measure_memory=False)
    assert calls == ["sft", "weft"] * 4
    times = timers[0].times
    assert len(times) == 8
    assert payload["objectives"]["sft"]["step_time_s"] == sorted(times[2::2])[1]
    assert payload["objectives"]["weft"]["step_time_s"] == sorted(times[3::2])[1]


def test_the_objectives_of_a_round_draw_the_same_masks(monkeypatch):
    seeds = []
    original = RoundTrainer.next_generator

    def recording(self):
        generator = original(self)
        seeds.append(generator.initial_seed())
        return generator

    monkeypatch.setattr(RoundTrainer, "next_generator", recording)
    bench_train(micro(), ["sft", "sft-full-logits"], steps=2, warmup=0, measure_memory=False)
    assert seeds[0] == seeds[1] and seeds[2] == seeds[3] and seeds[0] != seeds[2]


def test_cpu_peak_memory_is_measured_per_objective():
    payload = bench_train(micro(), ["sft", "weft"], steps=1, warmup=0)
    weights = 4 * sum(p.numel() for p in build_model("preset:micro")[0].parameters())
    for entry in payload["objectives"].values():
        assert entry["peak_mem_bytes"] > 3 * weights  # weights, Adam's two moments, gradients, activations
        assert 0 < entry["step_peak_bytes"] < entry["peak_mem_bytes"]
        assert entry["mem_ratio_to_sft"] > 0


def test_lora_trains_only_the_adapters():
    payload = bench_train(micro(("lora.r", 4)), ["sft"], steps=1, warmup=0)
    full = bench_train(micro(), ["sft"], steps=1, warmup=0)
    assert payload["config"]["lora"]["r"] == 4
    assert payload["objectives"]["sft"]["peak_mem_bytes"] < full["objectives"]["sft"]["peak_mem_bytes"]


def test_flop_floor_matches_hand_count():
    """Full FT, no attention term worth noting: floor = (3 F + F') / 3 F where F' = body + head at all
    answer rows and F = body + head at half of them. For LoRA the backward counts once, so 2 F."""

    class Cfg:
        hidden_size, intermediate_size, num_hidden_layers, vocab_size = 4, 8, 1, 10

    body = 2 * 8 * (4 * 16 + 3 * 4 * 8) + 4 * 1 * 64 * 4  # 2 T layer + attention 4 B T^2 D L
    head = 2 * 4 * 10
    sft_full = 3 * (body + head * 4 * 0.5)
    shape = {"batch": 1, "seq_len": 8, "prompt_fraction": 0.5}
    assert abs(flop_floor(Cfg(), **shape, lora=False) - (sft_full + body + head * 4) / sft_full) < 1e-12
    sft_lora = 2 * (body + head * 4 * 0.5)
    assert abs(flop_floor(Cfg(), **shape, lora=True) - (sft_lora + body + head * 4) / sft_lora) < 1e-12


def test_amortised_variants_skip_the_first_pass(monkeypatch):
    """Counted, not timed: weft measures entropies every step, weft-k4 on one visit in four, and
    gift-star only in its precompute, before the timed steps."""
    calls = {"n": 0}
    original = Weft.measure_entropy

    def counting(self, model, batch):
        calls["n"] += 1
        return original(self, model, batch)

    monkeypatch.setattr(Weft, "measure_entropy", counting)
    counts = {}
    for name in ("weft", "weft-k4", "gift-star"):
        calls["n"] = 0
        bench_train(micro(("data.max_length", 16)), ["sft", name], steps=8, warmup=0, measure_memory=False)
        counts[name] = calls["n"]
    assert counts == {"weft": 8, "weft-k4": 2, "gift-star": 1}


def test_llada_8b_shape_is_dlmtunes_llada_at_the_official_config():
    """Built on the meta device (shapes only): LLaDA-8B's 8.02B parameters, in the asked dtype, through
    the native LLaDA class; `layers` keeps the layer shape and scales the depth."""
    from dlmtune.models.llada import LLaDAForDiffusionLM

    model, mask_id = build_model("preset:llada-8b-shape", dtype="bfloat16", device="meta")
    assert isinstance(model, LLaDAForDiffusionLM) and mask_id == 126336
    assert abs(sum(p.numel() for p in model.parameters()) - 8.0156e9) < 1e6
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    one, _ = build_model("preset:llada-8b-shape", dtype="bfloat16", device="meta", layers=1)
    per_layer = 4 * 4096**2 + 3 * 4096 * 12288 + 2 * 4096
    assert sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in one.parameters()) == 31 * per_layer


def test_bench_sample_cli_times_every_variant_and_batch(tmp_path):
    out = tmp_path / "sample.json"
    result = CliRunner().invoke(app, [
        "bench", "sample", "--preset", "micro", "--batch", "1,2", "--prompt-len", "8", "--gen-length", "16",
        "--block-length", "8", "--steps", "16", "--variants", "plain,dual,fast", "--rounds", "1", "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert set(payload["batches"]) == {"1", "2"}
    for size, per_batch in payload["batches"].items():
        assert set(per_batch) == {"plain", "dual", "fast"}
        assert per_batch["plain"]["speedup_over_plain"] == 1.0
        for entry in per_batch.values():
            assert entry["forwards"] == 16  # one token per step; a random model never passes the threshold
            assert entry["tokens_per_s"] == pytest.approx(int(size) * 16 / entry["seconds"])
    assert payload["attn_implementation"] and payload["transformers"]


def test_bench_sample_rejects_an_unknown_variant():
    from dlmtune.bench_sampling import SampleBenchConfig, bench_sample

    with pytest.raises(ValueError, match="unknown sampler variant 'turbo'"):
        bench_sample(SampleBenchConfig(preset="micro", variants=("plain", "turbo")))
