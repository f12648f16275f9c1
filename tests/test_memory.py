"""dlmtune.memory: live tensor bytes counted exactly, and the same count on the meta device."""

from __future__ import annotations

import pytest
import torch

from dlmtune.bench import bench_config, bench_model, collator_for, random_rows
from dlmtune.memory import peak_bytes, tensor_bytes
from dlmtune.objectives.registry import get_objective


def test_peak_counts_live_tensors_above_what_was_held():
    held = torch.zeros(250_000)  # 1 MB alive before and after: not counted

    def step():
        a = torch.ones(1_000_000)  # +4 MB
        b = a * 2  # +4 MB: the peak, 8 MB above what was held
        view = b[10:]  # a view: no new storage
        b.add_(1)  # in place: no new storage
        del a
        return view.sum()  # +4 bytes, while a is gone

    assert peak_bytes(step) == 8_000_000
    assert held.sum() == 0
    assert tensor_bytes([held, held[5:], torch.ones(3, dtype=torch.bfloat16)]) == 1_000_000 + 6


def _config(seq_len: int, lora_r: int | None = None, checkpointing: bool = False):
    lora = [("lora.r", lora_r), ("lora.alpha", 2 * lora_r)] if lora_r else []
    return bench_config([("model", "preset:micro"), ("data.max_length", seq_len), ("per_device_train_batch_size", 2),
                         ("activation_checkpointing", checkpointing), *lora])


def _sft_step(config, device: str):
    torch.manual_seed(0)
    model, mask_id = bench_model(config, device=device)
    rows = random_rows(2, config.data.max_length, model.config.vocab_size, mask_id)
    batch = collator_for(config)(rows)
    objective = get_objective("sft", mask_id=mask_id)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, foreach=False)

    def step():
        objective(model, batch, torch.Generator().manual_seed(0)).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


@pytest.mark.parametrize(("lora", "checkpointing"), [(False, False), (False, True), (True, True)])
def test_meta_device_count_equals_the_real_count(lora, checkpointing):
    """The meta-device step (weights as shapes only, batch and masking real) must allocate what the real
    step allocates, attention included (fused on both), so an 8B model can be priced without its memory."""
    config = _config(64, lora_r=4 if lora else None, checkpointing=checkpointing)
    real, meta = _sft_step(config, "cpu"), _sft_step(config, "meta")
    peak_bytes(real), peak_bytes(meta, meta=True)  # warm-up: the optimizer's state
    counted = peak_bytes(real)
    assert counted > 0 and peak_bytes(meta, meta=True) == counted


def test_checkpointing_lowers_the_counted_peak():
    plain, checkpointed = (_sft_step(_config(128, checkpointing=c), "meta") for c in (False, True))
    peaks = [peak_bytes(s, meta=True) for s in (plain, plain, checkpointed, checkpointed)]
    assert peaks[3] < 0.8 * peaks[1]
