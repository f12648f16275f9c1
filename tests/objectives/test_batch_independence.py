"""An example's training input, and so its first-pass entropies, beta_ref and cached GIFT* entropies, does not
depend on the examples that share its batch."""

from __future__ import annotations

import torch

from dlmtune.data import DataConfig, DiffusionDataCollator, build_sft_dataset
from dlmtune.objectives import beta_reference, entropy_beta, get_objective


def _examples(tokenizer):
    config = DataConfig("synthetic:sudoku,countdown", synthetic_size=4, synthetic_seed=1)
    dataset, _ = build_sft_dataset(tokenizer, config)
    return [dataset[i] for i in range(len(dataset))], DiffusionDataCollator.from_config(config, tokenizer.eos_token_id)


def test_first_pass_is_the_same_alone_and_in_a_mixed_batch(micro_model, tokenizer):
    rows, collate = _examples(tokenizer)
    assert len({row["length"] for row in rows}) > 1, "the batch must mix lengths (Sudoku and Countdown)"
    weft = get_objective("weft", mask_id=tokenizer.mask_token_id)
    mixed = collate(rows)
    entropy = weft.measure_entropy(micro_model, mixed)
    beta_ref = beta_reference(entropy_beta(entropy, 0.5), mixed["answer_mask"])
    for i, row in enumerate(rows):
        alone = collate([row])
        answer = alone["answer_mask"][0]
        assert torch.equal(mixed["answer_mask"][i, answer.shape[0]:], torch.zeros_like(mixed["answer_mask"][i, answer.shape[0]:]))
        assert torch.equal(mixed["answer_mask"][i, : answer.shape[0]], answer)
        single = weft.measure_entropy(micro_model, alone)
        torch.testing.assert_close(entropy[i, : answer.shape[0]][answer], single[0][answer], rtol=0, atol=1e-5)
        single_ref = beta_reference(entropy_beta(single, 0.5), alone["answer_mask"])[0]
        torch.testing.assert_close(beta_ref[i], single_ref, rtol=0, atol=1e-5)


def test_gift_star_cache_does_not_depend_on_the_batching(micro_model, tokenizer):
    rows, collate = _examples(tokenizer)
    together = get_objective("gift-star", mask_id=tokenizer.mask_token_id)
    together.precompute(micro_model, [collate(rows)])
    one_by_one = get_objective("gift-star", mask_id=tokenizer.mask_token_id)
    one_by_one.precompute(micro_model, [collate([row]) for row in rows])
    for row in rows:
        a, b = together.cache.entries[row["example_id"]], one_by_one.cache.entries[row["example_id"]]
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
