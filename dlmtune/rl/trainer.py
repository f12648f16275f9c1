"""RLTrainer: a `transformers.Trainer` whose batches are rollouts and whose loss is diffu-GRPO or wd1.

Why not TRL's GRPOTrainer (trl 1.16.0, checked for this module): its log-probabilities come from a
causal forward with shifted labels (`_get_per_token_logps_and_entropies` passes `labels` and reads
`outputs.log_probs` from a fused LM head), its ~600-line `_generate_and_score_completions` is
interleaved with vLLM, tool calls, environments and images, and on resume it regenerates the buffered
rollouts, so a resumed run differs from an uninterrupted one. d1 subclassed an older GRPOTrainer by
overriding generation, log-probabilities, input preparation, scoring and the loss, i.e. nearly all of
it, against private methods that have since changed. So this is a `Trainer` subclass beside
`DiffusionTrainer`, sharing its seeding, log file and checkpoint conventions.

One optimizer step is one inner update. The Trainer's data loader yields only slot numbers
(`RolloutSlots`): slot j is micro-batch m of optimizer step s on rank k, and everything random in it is
drawn from generators seeded by (seed, s, m, k). At every `num_iterations`-th step each rank samples
completions for its share of the prompt schedule (`PromptSet.schedule`), scores them, and estimates the
rollout policy's (and the reference model's) log-probabilities once for each of the coming inner
updates, each with its own prompt mask (d1's "fresh mask per inner update"). Each inner update then
re-estimates the current policy's log-probabilities with that update's mask and takes a gradient step
on the algorithm's loss. Rollouts are kept per micro-batch and saved with every checkpoint, so a run
resumed between two rollout steps trains on exactly the completions the uninterrupted run had.

Reference model: with LoRA, the base with the adapters disabled (d1, and GIFT*'s reference); with full
fine-tuning, a frozen copy of the starting model. It is needed only when `beta` > 0.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainerCallback

from dlmtune.models.spec import DLMSpec
from dlmtune.rl.config import RLConfig
from dlmtune.rl.logprobs import completion_logprobs
from dlmtune.rl.losses import LossOutput, diffu_grpo_loss, wd1_loss
from dlmtune.rl.prompts import PromptSet
from dlmtune.rl.rewards import RewardSet
from dlmtune.rl.rollouts import Rollout, roll_out
from dlmtune.trainer import JsonlLogger, last_complete_checkpoint, step_seed

ROLLOUT_FILE = "rollouts-rank{rank}.safetensors"


class RolloutSlots(Dataset):
    """Slot numbers 0 .. n-1; the sharded loader hands rank k the slots k, k + W, ..."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"slot": torch.tensor(index)}


def _single(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return batch[0]


class StepClock(TrainerCallback):
    """Wall time of each optimizer step, handed to the trainer's metrics."""

    def __init__(self, trainer: RLTrainer):
        self.trainer, self.start = trainer, 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        seconds = time.perf_counter() - self.start
        self.trainer.step_seconds.append(seconds)
        self.trainer.record({"step_seconds": seconds, "rollout_seconds": self.trainer.rollout_seconds_this_step})
        self.trainer.rollout_seconds_this_step = 0.0


def diffu_grpo(logps: torch.Tensor, rollout: Rollout, iteration: int, rl: RLConfig) -> LossOutput:
    old = rollout.old_logps[iteration] if rollout.old_logps is not None else logps.detach()
    ref = rollout.ref_logps[iteration] if rollout.ref_logps is not None else None
    return diffu_grpo_loss(logps, old, rollout.advantages, rollout.completion_mask, epsilon=rl.epsilon,
                           beta=rl.beta, ref_logps=ref)


def wd1(logps: torch.Tensor, rollout: Rollout, iteration: int, rl: RLConfig) -> LossOutput:
    return wd1_loss(logps, rollout.advantages, rollout.completion_mask, num_generations=rl.num_generations)


# name -> (loss, whether it reads the rollout policy's log-probabilities)
ALGORITHM_LOSSES = {"diffu-grpo": (diffu_grpo, True), "wd1": (wd1, False)}


class RLTrainer(Trainer):
    """Pass the policy `model` (PEFT-wrapped for LoRA), `args`, `processing_class`, and the RL pieces."""

    def __init__(self, *, model, args, processing_class, spec: DLMSpec, rl: RLConfig, prompts: PromptSet,
                 rewards: RewardSet, callbacks: list | None = None):
        self.rl, self.spec, self.prompts, self.rewards = rl, spec, prompts, rewards
        self.loss_fn, self.needs_old = ALGORITHM_LOSSES[rl.algorithm]
        self.prompts_per_device = args.per_device_train_batch_size // rl.num_generations
        uses_lora = hasattr(model, "disable_adapter")
        self.ref_model = None
        if rl.beta > 0 and not uses_lora:
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False).to(args.device)
        if args.max_steps <= 0:
            raise ValueError("max_steps must be set (> 0) for RL: steps are inner updates, not passes over data")
        slots = RolloutSlots(args.max_steps * args.gradient_accumulation_steps * args.world_size)
        callbacks = [*(callbacks or []), JsonlLogger(), StepClock(self)]
        super().__init__(model=model, args=args, train_dataset=slots, data_collator=_single,
                         processing_class=processing_class, callbacks=callbacks)
        self.loss_is_scaled_for_ga = False  # the loss is a mean over the micro-batch; the Trainer divides by GA
        self.buffer: dict[int, Rollout] = {}  # micro-batch -> the rollout its inner updates train on
        self.buffer_step = -1  # the rollout step the buffer was sampled at
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self.step_seconds: list[float] = []
        self.rollout_seconds: list[float] = []
        self.rollout_seconds_this_step = 0.0

    # --- data: slots, not examples -----------------------------------------------------------------------
    def get_train_dataloader(self) -> DataLoader:
        loader = DataLoader(self.train_dataset, batch_size=1, shuffle=False, collate_fn=_single)
        return self.accelerator.prepare(loader)

    def _locate(self, slot: int) -> tuple[int, int]:
        """(optimizer step, micro-batch) of a slot number."""
        world, accumulation = self.args.world_size, self.args.gradient_accumulation_steps
        return slot // (world * accumulation), (slot // world) % accumulation

    def generator(self, purpose: str, step: int, micro: int) -> torch.Generator:
        """A generator for one use (`sample` or `mask`) at one step and micro-batch of this rank."""
        seed = step_seed(self.args.seed, step, micro, self.args.process_index)
        return torch.Generator().manual_seed(seed ^ (1 if purpose == "mask" else 0))

    def _prepare_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        step, micro = self._locate(int(inputs["slot"]))
        first = step - step % self.rl.num_iterations
        if step == first and (self.buffer_step != first or micro not in self.buffer):
            if self.buffer_step != first:
                self.buffer, self.buffer_step = {}, first
            self.buffer[micro] = self._rollout(first, micro)
        if self.buffer_step != first or micro not in self.buffer:
            raise RuntimeError(f"no rollout for step {step} micro-batch {micro}: resume from a checkpoint saved by "
                               "this trainer (it stores the rollouts), or start at a rollout step")
        rollout = self.buffer[micro]
        self.record(self.rollout_metrics(rollout))
        return {"rollout": rollout, "step": step, "micro": micro, "iteration": step - first}

    @torch.no_grad()
    def _rollout(self, step: int, micro: int) -> Rollout:
        start = time.perf_counter()
        world, accumulation = self.args.world_size, self.args.gradient_accumulation_steps
        rollout_index = step // self.rl.num_iterations
        first = ((rollout_index * accumulation + micro) * world + self.args.process_index) * self.prompts_per_device
        indices = self.prompts.schedule(self.args.seed, first, self.prompts_per_device)
        policy = self.accelerator.unwrap_model(self.model)
        was_training = policy.training
        policy.eval()  # sampling and the no-grad estimates without dropout
        try:
            rollout = roll_out(policy, self.processing_class, self.spec, self.prompts, indices, self.rl, self.rewards,
                               self.generator("sample", step, micro), self.args.device, desc=f"rollout step {step}",
                               progress=self.is_world_process_zero() and not self.args.disable_tqdm)
            masks = range(step, step + self.rl.num_iterations)
            if self.needs_old and self.rl.num_iterations > 1:
                rollout.old_logps = torch.stack([self._logps(policy, rollout, self.generator("mask", s, micro))
                                                 for s in masks])
            if self.rl.beta > 0:
                with self._reference() as reference:
                    rollout.ref_logps = torch.stack([self._logps(reference, rollout, self.generator("mask", s, micro))
                                                     for s in masks])
        finally:
            policy.train(was_training)
        seconds = time.perf_counter() - start
        self.rollout_seconds.append(seconds)
        self.rollout_seconds_this_step += seconds
        return rollout

    @contextlib.contextmanager
    def _reference(self):
        if self.ref_model is not None:
            yield self.ref_model
            return
        policy = self.accelerator.unwrap_model(self.model)
        with policy.disable_adapter():
            yield policy

    def _logps(self, model, rollout: Rollout, generator: torch.Generator) -> torch.Tensor:
        return completion_logprobs(model, rollout.prompt_ids, rollout.prompt_attention, rollout.completion_ids,
                                   mask_id=self.spec.mask_token_id, p_mask_prompt=self.rl.p_mask_prompt,
                                   generator=generator, shift=self.spec.shift_logits)

    # --- the loss ------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch=None):
        rollout, iteration = inputs["rollout"], inputs["iteration"]
        mask = self.generator("mask", inputs["step"], inputs["micro"])
        logps = self._logps(model, rollout, mask)
        output = self.loss_fn(logps, rollout, iteration, self.rl)
        self.record({name: value.item() for name, value in output.metrics.items()})
        return (output.loss, None) if return_outputs else output.loss

    # --- metrics -------------------------------------------------------------------------------------------
    def rollout_metrics(self, rollout: Rollout) -> dict[str, float]:
        """Reward of the completions this update trains on: mean, mean within-group std (d1's reward_std),
        each function's mean; completion length (counted tokens); share of groups with equal rewards."""
        grouped = rollout.rewards.view(-1, self.rl.num_generations)
        metrics = {"reward": rollout.rewards.mean().item(), "reward_std": grouped.std(dim=1).mean().item(),
                   "completion_length": rollout.completion_mask.sum(1).float().mean().item(),
                   "zero_std_fraction": (grouped.std(dim=1) == 0).float().mean().item()}
        for i, name in enumerate(self.rewards.names):
            metrics[f"rewards/{name}"] = rollout.rewards_per_function[:, i].mean().item()
        return metrics

    def record(self, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self._metrics[name].append(float(value))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._metrics:
            names = sorted(self._metrics)
            means = torch.tensor([statistics.fmean(self._metrics[n]) for n in names], device=self.args.device)
            means = self.accelerator.reduce(means, reduction="mean")
            logs.update({name: value for name, value in zip(names, means.tolist(), strict=True)})
            if "step_seconds" in logs:
                logs["update_seconds"] = logs["step_seconds"] - logs.get("rollout_seconds", 0.0)
            self._metrics.clear()
        super().log(logs, start_time)

    def timing_summary(self) -> dict[str, Any]:
        """Median seconds per step of this session, and the rollout steps' split into rollout and update."""
        if not self.step_seconds:
            return {"seconds_per_step": None}
        total = sum(self.step_seconds)
        return {"seconds_per_step": statistics.median(self.step_seconds),
                "rollout_seconds_median": statistics.median(self.rollout_seconds) if self.rollout_seconds else None,
                "rollout_share": sum(self.rollout_seconds) / total if total else None,
                "steps_timed": len(self.step_seconds)}

    # --- rollouts travel with checkpoints ------------------------------------------------------------------
    def _save_checkpoint(self, model, trial):
        """The rollout buffer is written first: trainer_state.json, written last, marks a checkpoint complete."""
        folder = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
        tensors = {f"{micro}.{name}": value.contiguous().cpu() for micro, rollout in self.buffer.items()
                   for name, value in rollout.tensors().items()}
        folder.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(folder / ROLLOUT_FILE.format(rank=self.args.process_index)),
                  metadata={"buffer_step": str(self.buffer_step)})
        super()._save_checkpoint(model, trial)

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(Path(self.args.output_dir))
        if resume_from_checkpoint:
            self._restore_rollouts(Path(resume_from_checkpoint))
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _restore_rollouts(self, checkpoint: Path) -> None:
        path = checkpoint / ROLLOUT_FILE.format(rank=self.args.process_index)
        if not path.exists():
            return
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            self.buffer_step = int(handle.metadata()["buffer_step"])
        grouped: dict[int, dict[str, torch.Tensor]] = defaultdict(dict)
        for key, value in load_file(str(path)).items():
            micro, name = key.split(".", 1)
            grouped[int(micro)][name] = value
        self.buffer = {m: Rollout.from_tensors(t).to(self.args.device) for m, t in grouped.items()}
