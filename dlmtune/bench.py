"""`dlmtune bench train`: the cost of each objective's training step against `sft`, in one process.

Objectives run interleaved (A B A B ... after warm-up) on the same model and batches, so machine noise
hits all of them alike and the ratios to `sft` are taken within one run. Weights are random: a step's
cost does not depend on them. Peak memory is `torch.cuda.max_memory_allocated` per step on a GPU, and
on the CPU the peak of live tensor bytes over one extra step per objective (`dlmtune.memory`), both
counting weights, gradients and optimizer state as they stand.

Besides the registered objectives the benchmark runs the two variants of `objectives.VARIANTS`:
`sft-full-logits`, the same SFT loss computed the straightforward way (full [B, L, V] logits, then
select), which the optimised `sft` must not lose to; and `weft-k4`, weft with `beta_refresh_every: 4` in
its steady state (the batch is revisited every step, so entropies are measured on one step in four). `gift-star` is measured as
training runs it: its reference entropies are precomputed before the first timed step.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch

from dlmtune.memory import peak_bytes, tensor_bytes
from dlmtune.objectives.registry import ObjectiveConfig, get_objective

# LLaDA-8B-Instruct's config.json values (its official field names), read by dlmtune's LLaDAConfig.
LLADA_8B_CONFIG = {"d_model": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 32, "mlp_hidden_size": 12288,
                   "vocab_size": 126464, "embedding_size": 126464, "max_sequence_length": 4096,
                   "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "activation_type": "silu", "block_type": "llama",
                   "weight_tying": False, "mask_token_id": 126336, "eos_token_id": 126081, "pad_token_id": 126081}


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
    activation_checkpointing: bool = False
    device: str | None = None  # default: cuda if available, else cpu; "meta" for dlmtune.memory's accounting
    layers: int | None = None  # override the preset's layer count (a cheap stand-in with the real layer shape)
    chunk_size: int = ObjectiveConfig.chunk_size  # first-pass rows per head chunk (bounds its memory)


def build_model(config: BenchConfig) -> tuple[torch.nn.Module, int]:
    """The benchmark model and its mask id; for `llada-8b-shape` dlmtune's LLaDA model at LLaDA-8B's
    config, created directly on the device in the benchmark's dtype (no float32 copy of 8B weights)."""
    dtype = getattr(torch, config.dtype)
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if config.preset == "llada-8b-shape":
        from dlmtune.models.llada import LLaDAConfig, LLaDAForDiffusionLM

        fields = dict(LLADA_8B_CONFIG, n_layers=config.layers or LLADA_8B_CONFIG["n_layers"])
        if config.vocab_size:
            fields.update(vocab_size=config.vocab_size, embedding_size=config.vocab_size,
                          mask_token_id=config.vocab_size - 1, eos_token_id=0, pad_token_id=0)
        llada = LLaDAConfig(**fields)
        mask_id = llada.mask_token_id
        with torch.device(device):
            torch.manual_seed(config.seed)
            model = LLaDAForDiffusionLM._from_config(llada, dtype=dtype)
    else:
        from dlmtune.models.presets import build_preset_model
        from dlmtune.tokenizer import build_tokenizer

        tokenizer = build_tokenizer()
        mask_id = tokenizer.mask_token_id
        model = build_preset_model(config.preset, tokenizer, seed=config.seed, vocab_size=config.vocab_size,
                                   layers=config.layers).to(dtype).to(device)
    if config.activation_checkpointing:
        model.activation_checkpointing_enable()
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
    objective = get_objective(name, ObjectiveConfig(chunk_size=config.chunk_size), mask_id=mask_id)
    if objective.precompute_before_training:
        objective.precompute(model, [batch])
    return objective


def _sync() -> None:
    if torch.cuda.is_initialized():
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


def optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]


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
    on_gpu = batch["input_ids"].device.type == "cuda"
    for round_index in range(config.warmup + config.steps):
        for name, objective in objectives.items():
            if on_gpu:
                torch.cuda.reset_peak_memory_stats()
            elapsed = _step(model, objective, batch, optimizer, config.seed + round_index)
            if round_index >= config.warmup:
                times[name].append(elapsed)
                if on_gpu:
                    peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated())
    step_peaks: dict[str, int] = {}
    if not on_gpu and config.measure_memory:
        resident = tensor_bytes([*model.parameters(), *optimizer_state_tensors(optimizer), *batch.values()])
        for name, objective in objectives.items():  # one more step each, outside the timed rounds
            step_peaks[name] = peak_bytes(lambda o=objective: _step(model, o, batch, optimizer, config.seed))
            peaks[name] = resident + step_peaks[name]
    tokens = config.batch * config.seq_len
    results = {}
    for name in objectives:
        median = statistics.median(times[name])
        results[name] = {"step_time_s": median, "peak_mem_bytes": peaks[name], "tokens_per_s": tokens / median}
        if name in step_peaks:
            results[name]["step_peak_bytes"] = step_peaks[name]
    base = results.get("sft")
    for entry in results.values():
        entry["ratio_to_sft"] = entry["step_time_s"] / base["step_time_s"] if base else None
        entry["mem_ratio_to_sft"] = entry["peak_mem_bytes"] / base["peak_mem_bytes"] if base and base["peak_mem_bytes"] else None
    return {"config": asdict(config), **environment(model, on_gpu),
            "peak_mem_kind": "cuda.max_memory_allocated" if on_gpu else "CPU: weights + optimizer state + batch, plus the allocator's peak above them during a step "
            "(step_peak_bytes, live tensor storages counted by dlmtune.memory)",
            "flop_floor_weft_over_sft": flop_floor(config, model), "objectives": results}


def environment(model, on_gpu: bool) -> dict:
    """What the figures depend on: device, library versions, the attention kernel the model used."""
    import transformers

    return {"device": torch.cuda.get_device_name() if on_gpu else f"cpu ({torch.get_num_threads()} threads)",
            "torch": torch.__version__, "transformers": transformers.__version__,
            "attn_implementation": getattr(model.config, "_attn_implementation", None),
            "parameters": sum(p.numel() for p in model.parameters())}
