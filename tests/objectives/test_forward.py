"""Logit alignment (`shift_logits`) and the head tap (`logits_at`, `stat_at`) against the plain full-logits path."""

from __future__ import annotations

import pytest
import torch
from accelerate.utils import extract_model_from_parallel
from torch import nn

from dlmtune.models.forward import logits_at, output_head, shift_logits, source_rows, stat_at


def test_shift_logits_hand_example():
    """Row i of the result is row i-1 of the input, row 0 stays row 0 (Dream)."""
    logits = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)  # [[0,1,2,3],[4,5,6,7]]
    expected = torch.tensor([[0.0, 0.0, 1.0, 2.0], [4.0, 4.0, 5.0, 6.0]])[..., None]
    assert torch.equal(shift_logits(logits), expected)
    assert shift_logits(torch.ones(3, 1, 5)).shape == (3, 1, 5)


def test_source_rows_hand_example():
    positions = torch.tensor([[False, True, False, True], [True, False, False, False]])
    b, i = source_rows(positions, shift=False)
    assert b.tolist() == [0, 0, 1] and i.tolist() == [1, 3, 0]
    b, i = source_rows(positions, shift=True)  # 1 -> 0, 3 -> 2, 0 -> 0
    assert b.tolist() == [0, 0, 1] and i.tolist() == [0, 2, 0]


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 63, (3, 12), generator=g)
    attention = torch.ones(3, 12, dtype=torch.long)
    positions = torch.rand(3, 12, generator=g) < 0.4
    positions[0, 0] = positions[2, 11] = True  # position 0 (shift reads itself) and the last one
    return ids, attention, positions


def _reference(model, ids, attention, positions, shift):
    """The straightforward path: full logits [B, L, V], shifted for Dream-style models, then selected."""
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=attention).logits
    return (shift_logits(full) if shift else full)[positions]


@pytest.mark.parametrize("shift", [False, True])
def test_logits_at_equals_full_logits(tiny_bidir_model, shift):
    ids, attention, positions = _inputs()
    head_inputs = []
    hook = tiny_bidir_model.lm_head.register_forward_hook(lambda m, a, o: head_inputs.append(tuple(a[0].shape)))
    with torch.no_grad():
        tapped = logits_at(tiny_bidir_model, ids, attention, positions, shift)
        plain = logits_at(tiny_bidir_model, ids, attention, positions, shift, tap_head=False)
    hook.remove()
    n = int(positions.sum())
    assert tapped.shape == (n, 64) and plain.shape == (n, 64)
    assert head_inputs == [(1, n, 32), (3, 12, 32)]  # the tap really ran the head on the N rows only
    ref = _reference(tiny_bidir_model, ids, attention, positions, shift)
    torch.testing.assert_close(tapped, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(plain, ref)


def test_shifted_rows_come_from_previous_position(tiny_bidir_model):
    ids, attention, _ = _inputs()
    with torch.no_grad():
        full = tiny_bidir_model(input_ids=ids, attention_mask=attention).logits
        positions = torch.zeros(3, 12, dtype=torch.bool)
        positions[0, 0] = positions[0, 5] = positions[2, 11] = True
        got = logits_at(tiny_bidir_model, ids, attention, positions, shift=True)
    torch.testing.assert_close(got, torch.stack([full[0, 0], full[0, 4], full[2, 10]]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_stat_at_equals_stat_of_full_logits(tiny_bidir_model, shift, chunk_size):
    ids, attention, positions = _inputs(1)
    attention[1, 9:] = 0  # an attention mask is passed through to the model
    calls = []

    def stat(logits):
        calls.append(logits.shape[0])
        return torch.logsumexp(logits.float(), -1) + logits[:, 0]

    with torch.no_grad():
        got = stat_at(tiny_bidir_model, ids, attention, positions, stat, shift, chunk_size)
    n = int(positions.sum())
    assert got.shape == (n,) and got.dtype == torch.float32
    assert max(calls) <= chunk_size and sum(calls) == n  # at most chunk_size rows of logits at once
    ref_rows = _reference(tiny_bidir_model, ids, attention, positions, shift)
    torch.testing.assert_close(got, stat(ref_rows), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        plain = stat_at(tiny_bidir_model, ids, attention, positions, stat, shift, chunk_size, tap_head=False)
    torch.testing.assert_close(plain, stat(ref_rows), rtol=1e-6, atol=1e-6)


def test_gradients_through_tapped_head(tiny_bidir_model):
    """The tapped and the full path give the same parameter gradients for a loss on the selected rows."""
    ids, attention, positions = _inputs(2)
    grads = []
    for tap in (True, False):
        tiny_bidir_model.zero_grad(set_to_none=True)
        logits_at(tiny_bidir_model, ids, attention, positions, True, tap).pow(2).mean().backward()
        grads.append({k: p.grad.clone() for k, p in tiny_bidir_model.named_parameters()})
    for key in grads[1]:
        torch.testing.assert_close(grads[0][key], grads[1][key], rtol=1e-4, atol=1e-6, msg=key)


def test_empty_positions(tiny_bidir_model):
    ids, attention, _ = _inputs()
    none = torch.zeros(3, 12, dtype=torch.bool)
    with torch.no_grad():
        assert logits_at(tiny_bidir_model, ids, attention, none).shape == (0, 64)
        assert stat_at(tiny_bidir_model, ids, attention, none, lambda x: x.sum(-1), chunk_size=4).shape == (0,)


class _NoHead(nn.Module):
    """A model whose head cannot be tapped: no get_output_embeddings, so the full-logits fallback runs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, **kwargs):
        return self.model(**kwargs)


def test_unwrap_and_fallback(tiny_bidir_model):
    wrapped = nn.DataParallel(tiny_bidir_model)  # a wrapper that hides `get_output_embeddings`, as DDP does
    assert extract_model_from_parallel(wrapped) is tiny_bidir_model
    assert output_head(wrapped) is tiny_bidir_model.lm_head
    assert output_head(_NoHead(tiny_bidir_model)) is None
    ids, attention, positions = _inputs()
    ref = _reference(tiny_bidir_model, ids, attention, positions, True)
    with torch.no_grad():
        torch.testing.assert_close(logits_at(wrapped, ids, attention, positions, True), ref, rtol=1e-5, atol=1e-5)
        assert torch.equal(logits_at(_NoHead(tiny_bidir_model), ids, attention, positions, True), ref)
        got = stat_at(_NoHead(tiny_bidir_model), ids, attention, positions, lambda x: x.amax(-1), True, 2)
    assert torch.equal(got, ref.amax(-1))
