"""Stop (or skip) a training step whose gradient is not finite, and never save non-finite weights.

A NaN or infinite loss makes the gradient non-finite, and clipping then spreads the NaN to every
parameter; the Trainer would step anyway, log `loss 0.0` (its NaN filter) and save NaN weights as the
final model. `NonFiniteGuard` looks at the gradient norm just before each optimizer step:

- `nonfinite: stop` (the default) raises `NonFiniteError` naming the step, before the update, so the
  weights in memory and every checkpoint already written stay finite;
- `nonfinite: skip` drops that step's gradients (the optimizer leaves parameters without a gradient
  untouched) and counts the step in `skipped_steps`.

Before each checkpoint and the final save it also checks the weights themselves (a finite gradient
times an infinite learning rate is not finite) and stops instead of writing them.
"""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

MODES = ("stop", "skip")


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss, gradient or weight; the message names the step and what to try."""


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every tensor is finite on every rank (ranks holding shards decide together)."""
    if not tensors:
        return True
    flag = torch.stack([t.detach().isfinite().all() for t in tensors]).all().float()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


def _hint(args) -> str:
    return (f"Lower the learning rate (now {args.learning_rate:g}), keep gradient clipping on (max_grad_norm, "
            f"now {args.max_grad_norm}), or train in float32; --nonfinite skip skips such steps instead.")


class NonFiniteGuard(TrainerCallback):
    """See the module doc; `mode` is "stop" or "skip"."""

    def __init__(self, mode: str = "stop") -> None:
        if mode not in MODES:
            raise ValueError(f"nonfinite must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.skipped_steps: list[int] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if _all_finite(grads):
            return
        step = state.global_step + 1
        if self.mode == "stop":
            raise NonFiniteError(
                f"step {step}: the loss or its gradient is not finite (NaN or inf); training stopped before "
                f"this update and no model was saved (checkpoints written so far are finite). {_hint(args)}")
        for param in model.parameters():
            param.grad = None
        self.skipped_steps.append(step)
        logger.warning("step %d: non-finite gradient, update skipped (%d so far)", step, len(self.skipped_steps))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if control.should_save or state.global_step >= state.max_steps:
            check_finite_weights(model, state.global_step, args)


def check_finite_weights(model: torch.nn.Module, step: int, args) -> None:
    """Raise NonFiniteError instead of letting non-finite trainable weights be saved."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not _all_finite(params):
        raise NonFiniteError(f"step {step}: the weights are no longer finite (NaN or inf); training stopped "
                             f"without saving them. {_hint(args)}")
