"""`dlmtune bench sample`: decoding speed of the plain LLaDA sampler against Fast-dLLM's accelerations,
on a bench model (`dlmtune.bench.build_model`) with random weights and random prompts.

Only time is measured: a step's cost does not depend on the weights, but what the threshold saves does.
A random model is never confident, so threshold decoding commits no more than the plain schedule and
"fast" (dual cache + threshold, `dlmtune eval --fast`) runs as many forwards as plain; what it gains over
plain here is the cache's alone. Accuracy and the threshold's savings need a trained model
(`benchmarks/bench_sampler.py`).

Every batch size is decoded by every variant in each round, in an order rotated from round to round,
after one untimed warm-up decode per variant and batch size (one block). Per variant and batch size:
median seconds per `generate` call, tokens/s = batch x gen_length / that median, model forwards per call,
the speed-up over plain (ratio of medians) and, on a GPU, the peak memory of the calls.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from dlmtune.bench import build_model, environment

VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "prefix": {"cache": "prefix"},
    "dual": {"cache": "dual"},
    "threshold": {"threshold": True},
    "fast": {"cache": "dual", "threshold": True},  # what `dlmtune eval --fast` adds to the protocol
}


@dataclass
class SampleBenchConfig:
    preset: str = "tiny"
    dtype: str = "float32"
    device: str | None = None  # default: cuda if available, else cpu
    layers: int | None = None
    vocab_size: int | None = None
    batches: tuple[int, ...] = (1, 8)
    prompt_len: int = 128
    gen_length: int = 256
    block_length: int = 32
    steps: int = 256
    threshold: float = 0.9
    variants: tuple[str, ...] = ("plain", "prefix", "dual", "fast")
    rounds: int = 2
    seed: int = 0


class ForwardCounter:
    """Counts the model's top-level forward calls (function evaluations) through a hook."""

    def __init__(self, model: torch.nn.Module):
        self.calls = 0
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, *_: Any) -> None:
        self.calls += 1


def _options(variant: str, threshold: float) -> dict[str, Any]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown sampler variant {variant!r}; known: {', '.join(VARIANTS)}")
    options = dict(VARIANTS[variant])
    if options.get("threshold"):
        options["threshold"] = threshold
    return options


def bench_sample(config: SampleBenchConfig) -> dict:
    """Run the benchmark; returns the JSON-able result (see module docstring)."""
    from dlmtune.sampling import generate

    options = {name: _options(name, config.threshold) for name in config.variants}
    model, mask_id = build_model(f"preset:{config.preset}", dtype=config.dtype, device=config.device,
                                 layers=config.layers, vocab_size=config.vocab_size, seed=config.seed)
    model.eval()
    device = next(model.parameters()).device
    on_gpu = device.type == "cuda"
    generator = torch.Generator().manual_seed(config.seed)
    prompts = {}
    for batch in config.batches:
        ids = torch.randint(0, model.config.vocab_size, (batch, config.prompt_len), generator=generator)
        ids[ids == mask_id] = 0
        prompts[batch] = ids.to(device)

    def decode(batch: int, name: str, gen_length: int, steps: int) -> tuple[float, int]:
        calls = counter.calls
        if on_gpu:
            torch.cuda.synchronize()
        start = time.perf_counter()
        generate(model, prompts[batch], mask_id=mask_id, gen_length=gen_length, block_length=config.block_length,
                 steps=steps, **options[name])
        if on_gpu:
            torch.cuda.synchronize()
        return time.perf_counter() - start, counter.calls - calls

    counter = ForwardCounter(model)
    warmup_steps = max(config.steps * config.block_length // config.gen_length, 1)
    for batch in config.batches:
        for name in options:
            decode(batch, name, config.block_length, warmup_steps)
    runs = [(batch, name) for batch in config.batches for name in options]
    seconds: dict[tuple, list[float]] = {run: [] for run in runs}
    forwards: dict[tuple, int] = {}
    peaks: dict[tuple, int] = {}
    for round_index in range(config.rounds):
        shift = round_index % len(runs)
        for run in runs[shift:] + runs[:shift]:
            if on_gpu:
                torch.cuda.reset_peak_memory_stats()
            elapsed, forwards[run] = decode(*run, config.gen_length, config.steps)
            seconds[run].append(elapsed)
            if on_gpu:
                peaks[run] = max(peaks.get(run, 0), torch.cuda.max_memory_allocated())
    counter.handle.remove()
    results: dict[str, dict[str, dict]] = {}
    for batch, name in runs:
        median = statistics.median(seconds[batch, name])
        results.setdefault(str(batch), {})[name] = {
            "seconds": median, "all_seconds": seconds[batch, name], "tokens_per_s": batch * config.gen_length / median,
            "forwards": forwards[batch, name], "peak_mem_bytes": peaks.get((batch, name)),
        }
    for per_batch in results.values():
        plain = per_batch.get("plain")
        for entry in per_batch.values():
            entry["speedup_over_plain"] = plain["seconds"] / entry["seconds"] if plain else None
    return {"config": asdict(config), **environment(model, on_gpu), "batches": results}
