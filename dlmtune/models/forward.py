"""Run a dLLM and read its output head only where an objective needs it.

An SFT step needs logits only at masked answer positions, and WeFT's first pass only the entropy at
answer positions. At LLaDA scale the full [B, L, 126464] logits tensor is the largest activation of the
step, so we tap the model's output head with a forward pre-hook: inside the model's own forward (so
DDP, FSDP and DeepSpeed see an ordinary call with their parameters gathered), the head's input is
replaced by the selected rows of the final hidden states. In "logits" mode the model then returns
logits [1, N, V] for just those rows; in "stat" mode the hook reduces the rows to one float each, a
chunk at a time, and the head runs on nothing. Models whose head cannot be tapped (no output-embedding
module, or a tied head called as a function) fall back to full logits, then select.

Logits are aligned: row i predicts token i. For Dream-style models (`shift=True`) the prediction for
position i comes from hidden state i-1 (position 0 from itself), as in Dream's training and sampling.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from accelerate.utils import extract_model_from_parallel
from torch import nn

Tensor = torch.Tensor


def output_head(model: nn.Module) -> nn.Module | None:
    """The output-embedding (LM head) module, or None when the model does not expose one."""
    getter = getattr(extract_model_from_parallel(model), "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    return head if isinstance(head, nn.Module) and not isinstance(head, nn.Embedding) else None


def shift_logits(logits: Tensor) -> Tensor:
    """Align Dream-style logits: the prediction for position i is read from position i-1 (0 from 0)."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


def source_rows(positions: Tensor, shift: bool) -> tuple[Tensor, Tensor]:
    """(batch, hidden-row) indices whose head output gives the aligned logits at `positions` [B, L] bool,
    in row-major order of `positions`."""
    b_idx, i_idx = positions.nonzero(as_tuple=True)
    if shift:
        i_idx = (i_idx - 1).clamp_min(0)
    return b_idx, i_idx


class _HeadTap:
    """Forward pre-hook on the output head that swaps its input for selected hidden rows."""

    def __init__(self, rows: tuple[Tensor, Tensor], stat: Callable[[Tensor], Tensor] | None, chunk_size: int):
        self.rows, self.stat, self.chunk_size = rows, stat, chunk_size
        self.fired = False
        self.stat_values: Tensor | None = None
        self._busy = False

    def __call__(self, module: nn.Module, args: tuple):
        hidden = args[0] if args else None
        if self._busy or self.fired or hidden is None or not torch.is_floating_point(hidden) or hidden.dim() != 3:
            return None
        self.fired = True
        selected = hidden[self.rows]  # [N, D]
        if self.stat is None:
            return (selected.unsqueeze(0), *args[1:])
        self._busy = True
        try:
            values = [self.stat(module(chunk)) for chunk in selected.split(max(self.chunk_size, 1))]
        finally:
            self._busy = False
        self.stat_values = torch.cat(values) if values else selected.new_zeros(0, dtype=torch.float32)
        return (hidden[:, :0], *args[1:])


def _forward_tapped(model, input_ids, attention_mask, positions, shift, stat, chunk_size, tap_head=True):
    head = output_head(model) if tap_head else None
    rows = source_rows(positions, shift)
    tap = _HeadTap(rows, stat, chunk_size)
    handle = head.register_forward_pre_hook(tap) if head is not None else None
    try:
        out = model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        if handle is not None:
            handle.remove()
    if tap.fired:
        return tap.stat_values if stat is not None else out.logits[0]
    logits = shift_logits(out.logits) if shift else out.logits
    selected = logits[positions]
    if stat is None:
        return selected
    return torch.cat([stat(chunk) for chunk in selected.split(max(chunk_size, 1))])


def logits_at(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    positions: Tensor,
    shift: bool = False,
    tap_head: bool = True,
) -> Tensor:
    """Aligned logits [N, V] at the True entries of `positions` [B, L], row-major order.
    `tap_head=False` takes the straightforward route (full logits, then select): the reference."""
    return _forward_tapped(model, input_ids, attention_mask, positions.bool(), shift, None, 0, tap_head)


def stat_at(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    positions: Tensor,
    stat: Callable[[Tensor], Tensor],
    shift: bool = False,
    chunk_size: int = 256,
    tap_head: bool = True,
) -> Tensor:
    """`stat` ([n, V] logits -> [n]) of the aligned logits at `positions`, at most `chunk_size` rows of
    logits alive at once. Returns float32 [N] in row-major order of `positions`."""
    return _forward_tapped(model, input_ids, attention_mask, positions.bool(), shift, stat, chunk_size, tap_head)
