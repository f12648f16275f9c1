"""`dlmtune bench train`: the cost of each objective's training step against `sft`, in one training run.

The run is `dlmtune train`'s: a `TrainConfig` (`dlmtune.train.load_config`, YAML keys and overrides as
in `dlmtune train`) gives the training arguments, the objective settings and the LoRA section, and the
steps are `DiffusionTrainer`'s own (loss, backward, gradient clipping, AdamW, schedule), timed by its
`StepTimer`. What the bench adds is a callback that hands the trainer the next objective before every
optimizer step, so the objectives run interleaved (A B A B ... after warm-up rounds) on the same model
and batch, each objective of a round with the same random draws (`RoundTrainer`): machine noise hits all
of them alike and the ratios to `sft` are taken within one run.

The model is a preset with random weights (a step's cost does not depend on them), or `llada-8b-shape`
(LLaDA-8B's shape, for a GPU); the batch is random tokens, the first `prompt_fraction` of each row
prompt and the rest answer, the same rows at every step. Peak memory is `torch.cuda.max_memory_allocated`
per step on a GPU; on the CPU, weights + optimizer state + batch plus the peak of live tensor bytes
during one extra step per objective after the timed rounds (`dlmtune.memory`).

Besides registered objectives the bench runs the variants of `objectives.VARIANTS`: `sft-full-logits`
(the SFT loss through full [B, L, V] logits, which the optimised `sft` must not lose to) and `weft-k4`
(weft with `beta_refresh_every: 4` in steady state: the rows come back every step, so entropies are
measured on one visit in four). `gift-star` runs as training runs it: its reference entropies are
precomputed before the first step.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import torch
from transformers import PrinterCallback, TrainerCallback

from dlmtune.config import ConfigError
from dlmtune.data import DiffusionDataCollator
from dlmtune.memory import LiveTensorBytes, tensor_bytes
from dlmtune.models.loading import PRESET_PREFIX
from dlmtune.objectives.registry import Objective, get_objective
from dlmtune.train import TrainConfig, apply_lora_section, load_config, training_arguments
from dlmtune.trainer import DiffusionTrainer, step_seed

# LLaDA-8B-Instruct's config.json values (its official field names), read by dlmtune's LLaDAConfig.
LLADA_8B_CONFIG = {"d_model": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 32, "mlp_hidden_size": 12288,
                   "vocab_size": 126464, "embedding_size": 126464, "max_sequence_length": 4096,
                   "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "activation_type": "silu", "block_type": "llama",
                   "weight_tying": False, "mask_token_id": 126336, "eos_token_id": 126081, "pad_token_id": 126081}
LLADA_8B_PRESET = "llada-8b-shape"

# The bench's run, under the user's overrides: the data section only sets the rows' length (every row
# is exactly `data.max_length` random tokens); nothing is saved or logged.
BENCH_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("model", f"{PRESET_PREFIX}tiny"), ("model.dtype", "float32"), ("data", "random"),
    ("data.pad_to", "max_length"), ("data.max_length", 256), ("per_device_train_batch_size", 8),
    ("learning_rate", 1e-5), ("lr_scheduler_type", "constant"), ("save_strategy", "no"),
    ("logging_strategy", "no"), ("report_to", "none"), ("disable_tqdm", True), ("dataloader_pin_memory", False),
    ("seed", 0),
)


def bench_config(overrides: Sequence[tuple[str, Any]] = ()) -> TrainConfig:
    """The bench's `TrainConfig`: `BENCH_DEFAULTS` under `overrides` (`--key value` pairs as in `dlmtune
    train`). Without an output_dir the run uses a temporary folder, removed afterwards."""
    return load_config(None, [*BENCH_DEFAULTS, ("output_dir", None), *overrides])


def build_model(name: str, *, dtype: str = "float32", vocab_size: int | None = None, seed: int = 0,
                device: str | torch.device | None = None, layers: int | None = None) -> tuple[torch.nn.Module, int]:
    """A bench model with random weights and its mask id: `preset:NAME` (`dlmtune.models.presets`, with an
    optional larger vocabulary: the LM head's cost grows with it) or `preset:llada-8b-shape`, dlmtune's LLaDA
    model at LLaDA-8B's config, created directly on the device in its dtype (no float32 copy of 8B weights).
    `layers` overrides the depth: a cheap stand-in with the real layer shape."""
    if not name.startswith(PRESET_PREFIX):
        raise ConfigError(f"model: the bench builds random-weight presets (preset:micro, preset:tiny, "
                          f"preset:small, preset:{LLADA_8B_PRESET}), got {name!r}")
    preset = name[len(PRESET_PREFIX):]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if preset == LLADA_8B_PRESET:
        from dlmtune.models.llada import LLaDAConfig, LLaDAForDiffusionLM

        fields = dict(LLADA_8B_CONFIG, n_layers=layers or LLADA_8B_CONFIG["n_layers"])
        if vocab_size:
            fields.update(vocab_size=vocab_size, embedding_size=vocab_size, mask_token_id=vocab_size - 1,
                          eos_token_id=0, pad_token_id=0)
        llada = LLaDAConfig(**fields)
        with torch.device(device):
            torch.manual_seed(seed)
            model = LLaDAForDiffusionLM._from_config(llada, dtype=getattr(torch, dtype))
        return model, llada.mask_token_id
    from dlmtune.models.presets import build_preset_model
    from dlmtune.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    model = build_preset_model(preset, tokenizer, seed=seed, vocab_size=vocab_size, layers=layers)
    return model.to(getattr(torch, dtype)).to(device), tokenizer.mask_token_id


def bench_model(config: TrainConfig, *, vocab_size: int | None = None, device: str | torch.device | None = None,
                layers: int | None = None) -> tuple[torch.nn.Module, int]:
    """The config's model (`build_model`, seeded by its `seed`) with its LoRA section and, when the training
    arguments ask for it, activation checkpointing; and its mask id."""
    model, mask_id = build_model(config.model.name_or_path, dtype=config.model.dtype or "float32",
                                 vocab_size=vocab_size, seed=config.training.get("seed", 42), device=device,
                                 layers=layers)
    if config.training.get("activation_checkpointing") or config.training.get("gradient_checkpointing"):
        model.activation_checkpointing_enable()
    return apply_lora_section(model, config), mask_id


def random_rows(rows: int, seq_len: int, vocab_size: int, mask_id: int, *, prompt_fraction: float = 0.25,
                seed: int = 0) -> list[dict[str, Any]]:
    """`rows` features as `build_sft_dataset` makes them: random tokens (never the mask id), the first
    `prompt_fraction` of each row its prompt."""
    ids = torch.randint(0, vocab_size, (rows, seq_len), generator=torch.Generator().manual_seed(seed))
    ids[ids == mask_id] = 0
    prompt_length = int(prompt_fraction * seq_len)
    return [{"input_ids": row.tolist(), "prompt_length": prompt_length, "example_id": i} for i, row in enumerate(ids)]


def collator_for(config: TrainConfig) -> DiffusionDataCollator:
    """The data section's collator, padding with id 0 like `random_rows` (with `pad_to: max_length` every
    answer ends at the row's end)."""
    return DiffusionDataCollator.from_config(config.data, pad_token_id=0)


def flop_floor(model_config, *, batch: int, seq_len: int, prompt_fraction: float, lora: bool) -> float:
    """Lower bound of weft's step cost over sft's from matmul FLOPs: pass 1 adds one no-grad forward
    (LM head at answer rows only) to sft's forward + backward (head at masked rows, half the answer on
    average). Full fine-tuning's backward costs ~2 forwards; LoRA's ~1 (no weight gradients)."""
    c = model_config
    tokens = batch * seq_len
    answer = tokens * (1 - prompt_fraction)
    layer = 4 * c.hidden_size**2 + 3 * c.hidden_size * c.intermediate_size
    body = 2 * tokens * c.num_hidden_layers * layer + 4 * batch * seq_len**2 * c.hidden_size * c.num_hidden_layers
    head = 2 * c.hidden_size * c.vocab_size
    backward = 1.0 if lora else 2.0
    sft = (1 + backward) * (body + head * answer * 0.5)
    return (sft + body + head * answer) / sft


class RoundTrainer(DiffusionTrainer):
    """`DiffusionTrainer` whose masks are drawn per round instead of per step: every objective of a round
    draws from the same seed (the same t and, for the same masking rule, the same masks), so the costs
    within a round differ by the objective alone."""

    def __init__(self, *args, per_round: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.per_round = per_round

    def next_generator(self) -> torch.Generator:
        seed = step_seed(self.args.seed, self.state.global_step // self.per_round, 0, self.args.process_index)
        return torch.Generator().manual_seed(seed)


class Rounds(TrainerCallback):
    """Gives the trainer objective `step % n` before each optimizer step and records what each step cost:
    on a GPU the peak of `max_memory_allocated` (synchronising around the step, so `StepTimer`, which runs
    after this callback, times the device's work), on the CPU in the memory round the live tensor bytes."""

    def __init__(self, objectives: dict[str, Objective], timed: range, memory_round: int | None, on_gpu: bool):
        self.trainer: DiffusionTrainer | None = None
        self.objectives = objectives
        self.names = list(objectives)
        self.timed, self.memory_round = timed, memory_round
        self.on_gpu = on_gpu
        self.peaks: dict[str, int] = dict.fromkeys(objectives, 0)
        self.step_peaks: dict[str, int] = {}
        self._index = 0
        self._counting: ExitStack | None = None
        self._counter: LiveTensorBytes | None = None

    def name_of(self, index: int) -> str:
        return self.names[index % len(self.names)]

    def on_step_begin(self, args, state, control, **kwargs):
        self._index = state.global_step
        self.trainer.objective = self.objectives[self.name_of(self._index)]
        if self.on_gpu:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        elif self._index // len(self.names) == self.memory_round:
            self._counting = ExitStack()
            self._counter = self._counting.enter_context(LiveTensorBytes())

    def on_step_end(self, args, state, control, **kwargs):
        name, round_index = self.name_of(self._index), self._index // len(self.names)
        if self.on_gpu:
            torch.cuda.synchronize()
            if round_index in self.timed:
                self.peaks[name] = max(self.peaks[name], torch.cuda.max_memory_allocated())
        elif self._counting is not None:
            self._counting.close()
            self.step_peaks[name] = self._counter.peak
            self._counting = self._counter = None


def bench_train(config: TrainConfig, objectives: Sequence[str] = ("sft", "weft"), *, steps: int = 10, warmup: int = 2,
                vocab_size: int | None = None, prompt_fraction: float = 0.25, measure_memory: bool = True,
                layers: int | None = None) -> dict:
    """Train `steps` measured rounds after `warmup` rounds, each round one optimizer step per objective, and
    return the JSON-able result: per objective the median step time, tokens/s, peak memory and the ratios
    to `sft` (see the module docstring)."""
    if steps < 1 or warmup < 0 or not objectives:
        raise ConfigError(f"bench: need steps >= 1, warmup >= 0 and an objective, got {steps}, {warmup}, {objectives}")
    on_gpu = torch.cuda.is_available() and not config.training.get("use_cpu")  # the Trainer's own device choice
    memory_round = warmup + steps if measure_memory and not on_gpu else None
    rounds = warmup + steps + (memory_round is not None)
    with tempfile.TemporaryDirectory(prefix="dlmtune-bench-") as scratch:
        output_dir = config.training.get("output_dir") or scratch
        config = dataclasses.replace(config, training={**config.training, "max_steps": rounds * len(objectives),
                                                       "output_dir": output_dir})
        return _bench(config, list(objectives), steps, warmup, vocab_size, prompt_fraction, memory_round, layers, on_gpu)


def _bench(config: TrainConfig, objectives: list[str], steps: int, warmup: int, vocab_size: int | None,
           prompt_fraction: float, memory_round: int | None, layers: int | None, on_gpu: bool) -> dict:
    args = training_arguments(config)
    batch, seq_len = args.per_device_train_batch_size, config.data.max_length
    model, mask_id = bench_model(config, vocab_size=vocab_size, device=args.device, layers=layers)
    rows = random_rows(batch, seq_len, model.config.vocab_size, mask_id, prompt_fraction=prompt_fraction, seed=args.seed)
    collator = collator_for(config)
    built = {name: get_objective(name, config.objective, mask_id=mask_id) for name in objectives}
    callback = Rounds(built, range(warmup, warmup + steps), memory_round, on_gpu)
    trainer = RoundTrainer(model=model, args=args, train_dataset=rows, data_collator=collator,
                           objective=built[objectives[0]], callbacks=[callback], per_round=len(built))
    callback.trainer = trainer
    trainer.remove_callback(PrinterCallback)  # the bench prints its own table, not the trainer's logs
    held_batch = {k: v.to(args.device) for k, v in collator(rows).items()}
    for objective in built.values():
        if objective.precompute_before_training:
            objective.precompute(trainer.model, [held_batch])
    trainer.train()
    times: dict[str, list[float]] = {name: [] for name in built}
    for index, seconds in enumerate(trainer.step_timer.times):
        if index // len(built) in callback.timed:
            times[callback.name_of(index)].append(seconds)
    peaks = dict(callback.peaks)
    if callback.step_peaks:
        state = [v for s in trainer.optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
        resident = tensor_bytes([*trainer.model.parameters(), *trainer.model.buffers(), *state, *held_batch.values()])
        peaks = {name: resident + callback.step_peaks[name] for name in built}
    results = {}
    for name in built:
        median = statistics.median(times[name])
        results[name] = {"step_time_s": median, "peak_mem_bytes": peaks[name], "tokens_per_s": batch * seq_len / median}
        if name in callback.step_peaks:
            results[name]["step_peak_bytes"] = callback.step_peaks[name]
    base = results.get("sft")
    for entry in results.values():
        entry["ratio_to_sft"] = entry["step_time_s"] / base["step_time_s"] if base else None
        entry["mem_ratio_to_sft"] = entry["peak_mem_bytes"] / base["peak_mem_bytes"] if base and base["peak_mem_bytes"] else None
    floor = flop_floor(model.config, batch=batch, seq_len=seq_len, prompt_fraction=prompt_fraction,
                       lora=config.lora is not None)
    return {"config": config.raw, "objectives_order": list(built), "steps": steps, "warmup": warmup,
            "vocab_size": model.config.vocab_size,
            "prompt_fraction": prompt_fraction, **environment(model, on_gpu),
            "peak_mem_kind": "cuda.max_memory_allocated" if on_gpu else "CPU: weights + optimizer state + batch, plus the "
            "peak of live tensor bytes above them during one extra step (step_peak_bytes, dlmtune.memory)",
            "flop_floor_weft_over_sft": floor, "objectives": results}


def environment(model, on_gpu: bool) -> dict:
    """What the figures depend on: device, library versions, the attention kernel the model used."""
    import transformers

    return {"device": torch.cuda.get_device_name() if on_gpu else f"cpu ({torch.get_num_threads()} threads)",
            "torch": torch.__version__, "transformers": transformers.__version__,
            "attn_implementation": getattr(model.config, "_attn_implementation", None),
            "parameters": sum(p.numel() for p in model.parameters())}
