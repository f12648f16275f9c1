"""`dlmtune bench train` in CI size: the output format and the facts it must report (not timings)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from dlmtune.bench import BenchConfig, bench_train, build_model, flop_floor
from dlmtune.cli import app
from dlmtune.objectives.registry import Weft


def test_bench_train_cli_writes_the_documented_json(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, [
        "bench", "train", "--preset", "micro", "--objectives", "sft,weft,sft-full-logits,weft-k4,gift-star", "--seq-len", "32",
        "--batch", "2", "--steps", "2", "--warmup", "1", "--no-memory", "--json", str(out),
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
    assert "weft" in result.output and "time/sft" in result.output


def test_cpu_peak_memory_is_measured_per_objective():
    payload = bench_train(BenchConfig(preset="micro", objectives=("sft", "weft"), seq_len=32, batch=2, steps=1, warmup=0))
    weights = 4 * sum(p.numel() for p in build_model(BenchConfig(preset="micro"))[0].parameters())
    for entry in payload["objectives"].values():
        assert entry["peak_mem_bytes"] > 3 * weights  # weights, Adam's two moments, gradients, activations
        assert 0 < entry["step_peak_bytes"] < entry["peak_mem_bytes"]
        assert entry["mem_ratio_to_sft"] > 0


def test_flop_floor_matches_hand_count():
    """Full FT, no attention term worth noting: floor = (3 F + F') / 3 F where F' = body + head at all
    answer rows and F = body + head at half of them. For LoRA the backward counts once, so 2 F."""
    config = BenchConfig(preset="micro", seq_len=8, batch=1, prompt_fraction=0.5)

    class Cfg:
        hidden_size, intermediate_size, num_hidden_layers, vocab_size = 4, 8, 1, 10

    class Model:
        config = Cfg()

    body = 2 * 8 * (4 * 16 + 3 * 4 * 8) + 4 * 1 * 64 * 4  # 2 T layer + attention 4 B T^2 D L
    head = 2 * 4 * 10
    sft_full = 3 * (body + head * 4 * 0.5)
    assert abs(flop_floor(config, Model()) - (sft_full + body + head * 4) / sft_full) < 1e-12
    config.lora = True
    sft_lora = 2 * (body + head * 4 * 0.5)
    assert abs(flop_floor(config, Model()) - (sft_lora + body + head * 4) / sft_lora) < 1e-12


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
        bench_train(BenchConfig(preset="micro", objectives=("sft", name), seq_len=16, batch=2, steps=8, warmup=0,
                                measure_memory=False))
        counts[name] = calls["n"]
    assert counts == {"weft": 8, "weft-k4": 2, "gift-star": 1}


def test_llada_8b_shape_is_dlmtunes_llada_at_the_official_config():
    """Built on the meta device (shapes only): LLaDA-8B's 8.02B parameters, in the asked dtype, through
    the native LLaDA class; `layers` keeps the layer shape and scales the depth."""
    from dlmtune.models.llada import LLaDAForDiffusionLM

    model, mask_id = build_model(BenchConfig(preset="llada-8b-shape", dtype="bfloat16", device="meta"))
    assert isinstance(model, LLaDAForDiffusionLM) and mask_id == 126336
    assert abs(sum(p.numel() for p in model.parameters()) - 8.0156e9) < 1e6
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    one, _ = build_model(BenchConfig(preset="llada-8b-shape", dtype="bfloat16", device="meta", layers=1))
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
