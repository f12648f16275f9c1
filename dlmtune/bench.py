"""`dlmtune bench train`: the cost of each objective's training step against `sft`, in one process.

Objectives run interleaved (A B A B ... after warm-up) on the same model and batches, so machine noise
hits all of them alike and the ratios to `sft` are taken within one run. Weights are random: a step's
cost does not depend on them. Peak memory is `torch.cuda.max_memory_allocated` per step on a GPU; on
the CPU, where a process's peak cannot be reset, each objective's peak RSS is measured in a fresh
child process running the same steps.

Besides the registered objectives the benchmark knows two variants (`VARIANTS`): `sft-full-logits`, the
same SFT loss computed the straightforward way (full [B, L, V] logits, then select), which the optimised
`sft` must not lose to; and `weft-k4`, weft with `beta_refresh_every: 4` in its steady state (the batch
is revisited every step, so entropies are measured on one step in four). `gift-star` is measured as
training runs it: its reference entropies are precomputed before the first timed step.
"""

from __future__ import annotations

import multiprocessing
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from dlmtune.objectives.registry import GiftStar, ObjectiveConfig, get_objective

VARIANTS: dict[str, tuple[str, dict]] = {
    "sft-full-logits": ("sft", {"tap_head": False}),
    "weft-k4": ("weft", {"beta_refresh_every": 4}),
}
LLADA_8B_SHAPE = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "intermediate_size": 12288, "vocab_size": 126464, "mask_token_id": 126336}


@dataclass
class BenchConfig:
    preset: str = "tiny"
    objectives: tuple[str, ...] = ("sft", "weft")
    lora: bool = False
    lora_r: int = 8
    seq_len: int = 256
    batch: int = 8
    steps: int = 10
    warmup: int = 2
    prompt_fraction: float = 0.25
    dtype: str = "float32"
    vocab_size: int | None = None  # override the preset's vocabulary (the LM head's cost grows with it)
    seed: int = 0
    measure_memory: bool = True
    chunk_size: int = ObjectiveConfig.chunk_size  # first-pass rows per head chunk (bounds its memory)


def build_model(config: BenchConfig) -> tuple[torch.nn.Module, int]:
    """The benchmark model and its mask id; LLaDA-8B's shape for `llada-8b-shape`."""
    dtype = getattr(torch, config.dtype)
    if config.preset == "llada-8b-shape":
        shape = dict(LLADA_8B_SHAPE)
        mask_id = shape.pop("mask_token_id")
        llama = LlamaConfig(**shape, num_key_value_heads=32, max_position_embeddings=4096, is_causal=False,
                            rope_theta=500000.0, tie_word_embeddings=False)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            torch.manual_seed(config.seed)
            model = LlamaForCausalLM(llama).to(dtype)
    else:
        from dlmtune.models.presets import build_preset_model
        from dlmtune.tokenizer import build_tokenizer

        tokenizer = build_tokenizer()
        mask_id = tokenizer.mask_token_id
        model = build_preset_model(config.preset, tokenizer, seed=config.seed, vocab_size=config.vocab_size).to(dtype)
        if torch.cuda.is_available():
            model = model.cuda()
    if config.lora:
        from dlmtune.models.lora import apply_lora

        model = apply_lora(model, r=config.lora_r, alpha=2 * config.lora_r, dropout=0.05,
                           target_modules=["q_proj", "k_proj", "v_proj"])
    model.train()
    return model, mask_id


def make_batch(config: BenchConfig, vocab_size: int, mask_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(config.seed)
    ids = torch.randint(0, vocab_size, (config.batch, config.seq_len), generator=generator)
    ids[ids == mask_id] = 0
    answer = torch.zeros_like(ids, dtype=torch.bool)
    answer[:, int(config.prompt_fraction * config.seq_len):] = True
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "answer_mask": answer.to(device), "example_id": torch.arange(config.batch, device=device)}


def _objective(name: str, model, batch, mask_id: int, config: BenchConfig):
    """The objective `name` (or variant) ready to step; gift-star with its entropies precomputed."""
    base, options = VARIANTS.get(name, (name, {}))
    objective = get_objective(base, ObjectiveConfig(chunk_size=config.chunk_size, **options),
                              mask_id=mask_id)
    if isinstance(objective, GiftStar):
        objective.precompute(model, [batch])
    return objective


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _step(model, objective, batch, optimizer, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    _sync()
    start = time.perf_counter()
    objective(model, batch, generator).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    _sync()
    return time.perf_counter() - start


def _setup(config: BenchConfig):
    torch.manual_seed(config.seed)
    model, mask_id = build_model(config)
    device = next(model.parameters()).device
    batch = make_batch(config, model.config.vocab_size, mask_id, device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    return model, mask_id, batch, optimizer


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0) and return the current RSS in bytes (0 if unknown)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return 0
    return (_status_kib("VmRSS") or 0) * 1024


def _peak_rss() -> int:
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _child_peak_rss(config: BenchConfig, name: str, queue) -> None:
    model, mask_id, batch, optimizer = _setup(config)
    objective = _objective(name, model, batch, mask_id, config)
    baseline = _reset_peak_rss()
    for i in range(max(config.warmup, 1) + 1):
        _step(model, objective, batch, optimizer, config.seed + i)
    peak = _peak_rss()
    queue.put((peak, max(peak - baseline, 0) if baseline else 0))


def _cpu_peak_rss(config: BenchConfig, name: str) -> tuple[int, int]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child_peak_rss, args=(config, name, queue))
    process.start()
    peak, step_growth = queue.get()
    process.join()
    return int(peak), int(step_growth)


def flop_floor(config: BenchConfig, model) -> float:
    """Lower bound of weft's step cost over sft's from matmul FLOPs: pass 1 adds one no-grad forward
    (LM head at answer rows only) to sft's forward + backward (head at masked rows, half the answer on
    average). Full fine-tuning's backward costs ~2 forwards; LoRA's ~1 (no weight gradients)."""
    c = model.config
    tokens = config.batch * config.seq_len
    answer = tokens * (1 - config.prompt_fraction)
    layer = 4 * c.hidden_size**2 + 3 * c.hidden_size * c.intermediate_size
    body = 2 * tokens * c.num_hidden_layers * layer + 4 * config.batch * config.seq_len**2 * c.hidden_size * c.num_hidden_layers
    head = 2 * c.hidden_size * c.vocab_size
    backward = 1.0 if config.lora else 2.0
    sft = (1 + backward) * (body + head * answer * 0.5)
    return (sft + body + head * answer) / sft


def bench_train(config: BenchConfig) -> dict:
    """Run the benchmark; returns the JSON-able result (see module docstring)."""
    model, mask_id, batch, optimizer = _setup(config)
    objectives = {name: _objective(name, model, batch, mask_id, config) for name in config.objectives}
    times: dict[str, list[float]] = {name: [] for name in objectives}
    peaks: dict[str, int] = {name: 0 for name in objectives}
    on_gpu = torch.cuda.is_available()
    for round_index in range(config.warmup + config.steps):
        for name, objective in objectives.items():
            if on_gpu:
                torch.cuda.reset_peak_memory_stats()
            elapsed = _step(model, objective, batch, optimizer, config.seed + round_index)
            if round_index >= config.warmup:
                times[name].append(elapsed)
                if on_gpu:
                    peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated())
    growth: dict[str, int] = {}
    if not on_gpu and config.measure_memory:
        measured = {name: _cpu_peak_rss(config, name) for name in objectives}
        peaks = {name: peak for name, (peak, _) in measured.items()}
        growth = {name: step for name, (_, step) in measured.items()}
    tokens = config.batch * config.seq_len
    results = {}
    for name in objectives:
        median = statistics.median(times[name])
        results[name] = {"step_time_s": median, "peak_mem_bytes": peaks[name], "tokens_per_s": tokens / median}
        if name in growth:
            results[name]["step_peak_growth_bytes"] = growth[name]
    base = results.get("sft")
    mem_key = "step_peak_growth_bytes" if growth and all(growth.values()) else "peak_mem_bytes"
    for entry in results.values():
        entry["ratio_to_sft"] = entry["step_time_s"] / base["step_time_s"] if base else None
        entry["mem_ratio_to_sft"] = entry[mem_key] / base[mem_key] if base and base[mem_key] else None
    device = torch.cuda.get_device_name() if on_gpu else f"cpu ({torch.get_num_threads()} threads)"
    return {"config": asdict(config), "device": device, "torch": torch.__version__,
            "peak_mem_kind": "cuda.max_memory_allocated" if on_gpu else
            "process peak RSS, fresh process per objective; mem_ratio_to_sft compares step_peak_growth_bytes "
            "(the peak above the RSS after set-up)",
            "flop_floor_weft_over_sft": flop_floor(config, model), "objectives": results}
