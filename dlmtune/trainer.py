"""DiffusionTrainer: a `transformers.Trainer` whose loss is a dLLM objective, and nothing else changed.

Everything the Trainer gives (gradient accumulation, bf16, schedules, checkpoints and
`resume_from_checkpoint`, logging, DDP / FSDP / DeepSpeed through accelerate) is used as is. What this
module adds, following TRL's `XConfig` + `XTrainer.compute_loss` pattern:

- the loss is `objective(model, batch, generator)` from `dlmtune.objectives` (the math lives there);
- the generator that draws t and the masks is seeded from (seed, optimizer step, micro-batch, rank), so
  a run (and a run resumed from a checkpoint) draws the same masks whatever the hardware;
- the objective's metrics (mean entropy, beta_ref, fraction masked) are averaged over the logging
  window and over ranks; the gradient norm of every optimizer step is kept for the papers' Table 5
  statistics (max / median / mean) and survives a resume;
- per-example entropy caches (`beta_refresh_every`, `gift-star`) are saved with each checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainerState, TrainingArguments
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_callback import ExportableState

from dlmtune.data.sampler import ShuffledLengthGroupedSampler
from dlmtune.io import write_text_atomic
from dlmtune.nonfinite import MODES, NonFiniteGuard
from dlmtune.objectives import Objective
from dlmtune.objectives.cache import EntropyCache

CACHE_FILE = "entropy_cache.safetensors"
LOG_FILE = "log.jsonl"


@dataclass
class DiffusionTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the defaults a dLLM SFT run needs."""

    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: the collator needs answer masks and example ids."})
    expected_world_size: int | None = field(
        default=None,
        metadata={"help": "Number of processes the run must have; it stops with an error otherwise. "
                  "`accelerate launch --cpu --num_processes 2` silently starts one."})
    nonfinite: str = field(
        default="stop",
        metadata={"help": "On a non-finite loss or gradient: 'stop' (exit 2, nothing non-finite saved) or "
                  "'skip' (drop that step's update). See dlmtune.nonfinite."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start over in an output_dir that holds another run (its checkpoints and log are "
                  "deleted); without it such a folder is refused unless resuming. See dlmtune.guards."})
    allow_config_change: bool = field(
        default=False,
        metadata={"help": "Resume even when the config differs from the checkpoints' in a way that changes "
                  "the result (the differences are listed either way)."})

    shuffle_length_groups: bool = field(
        default=True,
        metadata={"help": "With train_sampling_strategy group_by_length: batches of similar length in random "
                  "order (dlmtune.data.sampler). False: transformers' LengthGroupedSampler, whose batches run "
                  "longest to shortest within each megabatch of up to 50, so data whose kinds differ in "
                  "length is trained one kind after another."})
    torch_compile_regional: bool = field(
        default=True,
        metadata={"help": "With torch_compile: compile the repeated transformer blocks once and reuse the "
                  "result for every block (accelerate's regional compilation), not the whole model: a "
                  "fraction of the compile time (the blocks hold the element-wise ops compiling fuses)."})
    torch_compile_dynamic: bool = field(
        default=True,
        metadata={"help": "With torch_compile: compile for dynamic shapes. dLLM batches differ in length "
                  "(group_by_length, the masked first pass), and static shapes recompile for each one."})

    def __post_init__(self) -> None:
        check_training_ranges(self)
        super().__post_init__()
        if self.expected_world_size is not None and self.expected_world_size != self.world_size:
            raise ValueError(
                f"expected_world_size is {self.expected_world_size} but this run has {self.world_size} "
                "process(es). Launch with `torchrun --nproc_per_node N` (on CPU: ACCELERATE_USE_CPU=1) or "
                "`accelerate launch --config_file configs/accelerate/ddp.yaml`, or change expected_world_size.")


def check_training_ranges(args: TrainingArguments) -> None:
    """Values the Trainer would accept and then misuse (max_steps -5 trains by epochs, a negative learning
    rate ascends the loss): refused with the field's name."""
    if args.max_steps == 0 or args.max_steps < -1:
        raise ValueError(f"max_steps must be a positive number of optimizer steps (or -1: train "
                         f"num_train_epochs epochs), got {args.max_steps}")
    if not (isinstance(args.learning_rate, (int, float)) and 0 <= args.learning_rate < float("inf")):
        raise ValueError(f"learning_rate must be a finite number >= 0, got {args.learning_rate!r}")
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(args, name)}")
    if args.num_train_epochs <= 0 and args.max_steps == -1:
        raise ValueError(f"num_train_epochs must be > 0 when max_steps is not set, got {args.num_train_epochs}")
    nonfinite = getattr(args, "nonfinite", "stop")
    if nonfinite not in MODES:
        raise ValueError(f"nonfinite must be one of {', '.join(MODES)}, got {nonfinite!r}")


def step_seed(seed: int, step: int, micro_step: int, rank: int) -> int:
    """A 63-bit seed unique to one micro-batch of one rank at one optimizer step."""
    digest = hashlib.blake2b(f"{seed}/{step}/{micro_step}/{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class GradNormRecorder(TrainerCallback, ExportableState):
    """Keeps every optimizer step's gradient norm; stored in trainer_state.json so a resume keeps them."""

    def __init__(self, grad_norms: list[float] | None = None):
        self.grad_norms = list(grad_norms or [])

    def state(self) -> dict[str, Any]:
        return {"args": {"grad_norms": self.grad_norms}, "attributes": {}}

    def record(self, step: int, grad_norm: float) -> None:
        del self.grad_norms[step - 1:]  # a resumed run re-records from its checkpoint's step
        self.grad_norms.append(grad_norm)


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step of this session (the first, with its warm-up, kept apart)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


class JsonlLogger(TrainerCallback):
    """OUTPUT_DIR/log.jsonl: the Trainer's `state.log_history` (every log record with its step), rewritten
    atomically after each log on the main process. A resumed run's history is the checkpoint's, so the
    records an interrupted run logged after its last checkpoint disappear with it."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            lines = "".join(json.dumps(record) + "\n" for record in state.log_history)
            write_text_atomic(Path(args.output_dir) / LOG_FILE, lines)


class DiffusionTrainer(Trainer):
    """`Trainer` with `compute_loss` = the objective. Pass `objective=get_objective(...)`."""

    def __init__(self, *args, objective: Objective, **kwargs):
        self.objective = objective
        self.grad_norm_recorder = GradNormRecorder()
        self.step_timer = StepTimer()
        self.nonfinite_guard = NonFiniteGuard(getattr(kwargs.get("args"), "nonfinite", "stop"))
        callbacks = [*(kwargs.pop("callbacks", None) or []), self.grad_norm_recorder, self.step_timer, JsonlLogger(),
                     self.nonfinite_guard]
        super().__init__(*args, callbacks=callbacks, **kwargs)
        self.loss_is_scaled_for_ga = False  # the objective returns a mean; the Trainer divides by accumulation
        self._metrics: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._micro = (-1, 0)  # (global step, micro-batches seen in it)

    def _build_accelerator_args(self, **kwargs) -> dict[str, Any]:
        """The Trainer's accelerator arguments, with torch_compile made regional and dynamic as configured
        (the Trainer's own plugin leaves both off)."""
        args = super()._build_accelerator_args(**kwargs)
        plugin = args.get("dynamo_plugin")
        if plugin is not None and self.args.torch_compile:
            plugin.use_regional_compilation = getattr(self.args, "torch_compile_regional", True)
            plugin.dynamic = getattr(self.args, "torch_compile_dynamic", True)
        return args

    def _get_train_sampler(self, train_dataset=None):
        """Length-grouped batches in random order for group_by_length (see `shuffle_length_groups`)."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        column = self.args.length_column_name
        grouped = (self.args.train_sampling_strategy == "group_by_length"
                   and getattr(self.args, "shuffle_length_groups", True))
        if not grouped or dataset is None or column not in getattr(dataset, "column_names", ()):
            return super()._get_train_sampler(train_dataset)
        return ShuffledLengthGroupedSampler(dataset[column], self._train_batch_size, seed=self.args.seed)

    # --- the loss ------------------------------------------------------------------------------------
    def next_generator(self) -> torch.Generator:
        step, micro = self._micro
        micro = micro + 1 if step == self.state.global_step else 0
        self._micro = (self.state.global_step, micro)
        seed = step_seed(self.args.seed, self.state.global_step, micro, self.args.process_index)
        return torch.Generator().manual_seed(seed)

    def compute_loss(self, model: nn.Module, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None):
        output = self.objective(model, inputs, self.next_generator())
        if model.training:
            for name, value in output.metrics.items():
                self._metrics[name].append(value.float())
        return (output.loss, None) if return_outputs else output.loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation loss: the same objective with masks from a fixed per-batch seed."""
        inputs = self._prepare_inputs(inputs)
        seed = step_seed(self.args.seed, -1, int(inputs["example_id"][0]), self.args.process_index)
        with torch.no_grad():
            loss = self.objective(model, inputs, torch.Generator().manual_seed(seed)).loss
        return loss.detach(), None, None

    # --- logging -------------------------------------------------------------------------------------
    def _maybe_log_save_evaluate(self, tr_loss, grad_norm, *args, **kwargs):
        if grad_norm is not None:
            value = grad_norm.item() if isinstance(grad_norm, torch.Tensor) else float(grad_norm)
            self.grad_norm_recorder.record(self.state.global_step, value)
        return super()._maybe_log_save_evaluate(tr_loss, grad_norm, *args, **kwargs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._metrics and "loss" in logs:
            for name, values in self._metrics.items():
                mean = torch.stack(values).mean().to(self.args.device)
                logs[name] = self.accelerator.reduce(mean, reduction="mean").item()
            self._metrics.clear()
        super().log(logs, start_time)

    def training_summary(self) -> dict[str, Any]:
        """Table 5's gradient-norm statistics and the time per step (median of this session's steps)."""
        norms = self.grad_norm_recorder.grad_norms
        times = self.step_timer.times[1:] or self.step_timer.times
        return {
            "global_step": self.state.global_step,
            "grad_norm": {"max": max(norms), "median": statistics.median(norms), "mean": statistics.fmean(norms),
                          "steps": len(norms)} if norms else None,
            "seconds_per_step": statistics.median(times) if times else None,
            "world_size": self.args.world_size,
            "skipped_steps": self.nonfinite_guard.skipped_steps,
        }

    # --- entropy caches travel with checkpoints ----------------------------------------------------------
    def _save_checkpoint(self, model, trial):
        """The entropy cache is written first: the Trainer writes trainer_state.json last, and a checkpoint
        without it is incomplete (see `last_complete_checkpoint`)."""
        cache = self.entropy_cache()
        if cache is not None and len(cache):
            folder = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
            cache.save(folder / cache_file_name(self.args.process_index))
        super()._save_checkpoint(model, trial)

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        """`Trainer.train`, first restoring what the Trainer does not know about: the entropy cache and the
        gradient norms of the steps before the checkpoint."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(Path(self.args.output_dir))
        if resume_from_checkpoint:
            self._restore_extras(Path(resume_from_checkpoint))
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def restore_finished(self, checkpoint: Path) -> float | None:
        """A run killed after its checkpoint at max_steps, before its final save: that checkpoint's weights
        and state instead of training (the Trainer would run a step past max_steps); the last logged loss."""
        self._load_from_checkpoint(str(checkpoint))
        self.state = TrainerState.load_from_json(str(checkpoint / TRAINER_STATE_NAME))
        self._restore_extras(checkpoint)
        losses = [record["loss"] for record in self.state.log_history if "loss" in record]
        return losses[-1] if losses else None

    def _restore_extras(self, checkpoint: Path) -> None:
        state = json.loads((checkpoint / TRAINER_STATE_NAME).read_text())
        recorded = state.get("stateful_callbacks", {}).get(GradNormRecorder.__name__, {})
        self.grad_norm_recorder.grad_norms = list(recorded.get("args", {}).get("grad_norms", []))
        path = checkpoint / cache_file_name(self.args.process_index)
        if self.entropy_cache() is not None and path.exists():
            self.entropy_cache().load(path)

    def entropy_cache(self) -> EntropyCache | None:
        """The objective's per-example entropy cache, when it keeps one."""
        return self.objective.cache


def last_complete_checkpoint(output_dir: Path) -> Path:
    """The newest checkpoint-N folder whose trainer_state.json (written last) exists: a run killed while
    saving leaves a newer, incomplete folder that must not be resumed from."""
    complete = [(int(m.group(1)), p) for p in output_dir.glob("checkpoint-*")
                if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and (p / TRAINER_STATE_NAME).exists()]
    if not complete:
        raise ValueError(f"resume_from_checkpoint: no complete checkpoint-* folder in {output_dir}")
    return max(complete)[1]


def cache_file_name(rank: int) -> str:
    """Each rank caches the examples it saw, so each rank saves its own file."""
    return CACHE_FILE if rank == 0 else f"entropy_cache-rank{rank}.safetensors"
