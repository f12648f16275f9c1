"""The optimised step (LM head read only at needed rows, chunked first pass, entropy cache) computes
the same loss and gradients as the straightforward full-logits computation, for every objective."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model

from dlmtune.models.presets import build_preset_model
from dlmtune.objectives import OBJECTIVES, ObjectiveConfig, get_objective


def _batch(tokenizer, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, len(tokenizer), (3, 40), generator=generator)
    answer = torch.zeros_like(ids, dtype=torch.bool)
    answer[:, 12:] = True
    answer[1, 35:] = False  # a shorter answer in the batch
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "answer_mask": answer,
            "example_id": torch.tensor([0, 1, 2])}


def _loss_and_grads(model, name: str, config: ObjectiveConfig, batch, mask_id: int, shift: bool):
    model.zero_grad(set_to_none=True)
    objective = get_objective(name, config, mask_id=mask_id, shift_logits=shift)
    loss = objective(model, batch, torch.Generator().manual_seed(7)).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("shift", [False, True], ids=["aligned", "shifted"])
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_tapped_head_matches_full_logits(tokenizer, name, shift, lora):
    model = build_preset_model("micro", tokenizer, seed=1)
    if lora:
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"]))
        for module_name, param in model.named_parameters():
            if "lora_B" in module_name:  # non-zero adapters, so the adapted model differs from the base
                torch.nn.init.normal_(param, std=0.05)
    model.train()
    batch = _batch(tokenizer)
    mask_id = tokenizer.mask_token_id
    fast_loss, fast_grads = _loss_and_grads(model, name, ObjectiveConfig(chunk_size=7), batch, mask_id, shift)
    ref_loss, ref_grads = _loss_and_grads(model, name, ObjectiveConfig(tap_head=False), batch, mask_id, shift)
    torch.testing.assert_close(fast_loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert fast_grads.keys() == ref_grads.keys() and fast_grads
    for key in ref_grads:
        torch.testing.assert_close(fast_grads[key], ref_grads[key], rtol=1e-4, atol=1e-6, msg=key)


@pytest.mark.parametrize("name", ["weft", "gift-star"])
def test_entropy_cache_reproduces_fresh_measurement(tokenizer, name):
    """A cached entropy (same weights) gives exactly the loss of a freshly measured one, and a cache
    of refresh 2 measures each example on visits 1 and 3 only."""
    model = build_preset_model("micro", tokenizer, seed=2).train()
    batch = _batch(tokenizer, seed=3)
    mask_id = tokenizer.mask_token_id
    fresh = get_objective(name, ObjectiveConfig(), mask_id=mask_id)
    cached = get_objective(name, ObjectiveConfig(beta_refresh_every=2), mask_id=mask_id)
    measured_rows = []
    measure = cached.measure_entropy

    def counting(model_, batch_):
        measured_rows.append(batch_["input_ids"].shape[0])
        return measure(model_, batch_)

    cached.measure_entropy = counting
    for visit in range(3):
        generator_a, generator_b = torch.Generator().manual_seed(visit), torch.Generator().manual_seed(visit)
        expected = fresh(model, batch, generator_a).loss
        got = cached(model, batch, generator_b).loss
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    expected_rows = [3] if name == "gift-star" else [3, 3]
    assert measured_rows == expected_rows
