"""The one-step log-probability estimate equals the straightforward computation (full logits, gather)."""

from __future__ import annotations

import pytest
import torch

from dlmtune.models.forward import shift_logits
from dlmtune.rl.logprobs import completion_logprobs, prompt_mask

MASK_ID = 63


def _batch():
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, 60, (3, 7), generator=gen)
    attention = torch.ones_like(prompt)
    attention[1, :2] = 0  # a left-padded prompt
    completion = torch.randint(0, 60, (3, 5), generator=gen)
    return prompt, attention, completion


def _reference(model, prompt, attention, completion, p, seed, shift):
    """Full logits, log_softmax, gather: the estimate written the plain way, with the same draws."""
    draws = torch.rand(prompt.shape, generator=torch.Generator().manual_seed(seed))
    masked_prompt = torch.where((draws < p) & attention.bool(), MASK_ID, prompt)
    noisy = torch.cat([masked_prompt, torch.full_like(completion, MASK_ID)], dim=1)
    full_attention = torch.cat([attention, torch.ones_like(completion)], dim=1)
    logits = model(input_ids=noisy, attention_mask=full_attention).logits
    if shift:
        logits = shift_logits(logits)
    logps = torch.log_softmax(logits.float(), dim=-1)[:, prompt.shape[1]:]
    return logps.gather(-1, completion.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("shift", [False, True])
def test_estimate_equals_full_logits_gather(tiny_bidir_model, shift):
    prompt, attention, completion = _batch()
    with torch.no_grad():
        got = completion_logprobs(tiny_bidir_model, prompt, attention, completion, mask_id=MASK_ID,
                                  p_mask_prompt=0.4, generator=torch.Generator().manual_seed(7), shift=shift)
        want = _reference(tiny_bidir_model, prompt, attention, completion, 0.4, 7, shift)
    assert got.shape == completion.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_prompt_mask_depends_on_the_generator_and_spares_padding():
    _, attention, _ = _batch()
    a = prompt_mask(attention, 0.5, torch.Generator().manual_seed(3))
    b = prompt_mask(attention, 0.5, torch.Generator().manual_seed(3))
    c = prompt_mask(attention, 0.5, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not a[1, :2].any()
    assert not prompt_mask(attention, 0.0, torch.Generator()).any()
    assert torch.equal(prompt_mask(attention, 1.0, torch.Generator()), attention.bool())


def test_a_different_prompt_mask_changes_the_estimate(tiny_bidir_model):
    prompt, attention, completion = _batch()

    def estimate(seed):
        return completion_logprobs(tiny_bidir_model, prompt, attention, completion, mask_id=MASK_ID,
                                   p_mask_prompt=0.5, generator=torch.Generator().manual_seed(seed))

    with torch.no_grad():
        assert not torch.allclose(estimate(1), estimate(2))
