from __future__ import annotations

import pytest
import torch

from dlmtune.data import DataConfig, DiffusionDataCollator, build_sft_dataset

FEATURES = [
    {"input_ids": [5, 6, 7, 8, 9], "prompt_length": 2, "example_id": 11, "length": 5},
    {"input_ids": [5, 6, 7], "prompt_length": 1, "example_id": 3, "length": 3},
]
PAD = 0


def test_shapes_and_dtypes():
    batch = DiffusionDataCollator(pad_token_id=PAD, answer_pad_multiple=1)(FEATURES)
    assert set(batch) == {"input_ids", "attention_mask", "answer_mask", "example_id"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["answer_mask"].shape == (2, 5)
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == torch.long
    assert batch["answer_mask"].dtype == torch.bool
    assert batch["example_id"].tolist() == [11, 3] and batch["example_id"].dtype == torch.long
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [5, 6, 7, PAD, PAD]]


def test_answers_padded_to_their_own_length_and_batch_padding_left_out():
    """Answers of 3 and 2 tokens padded to 4 each (LLaDA's EOS padding, trained); the second row's last
    position is batch padding: neither attended nor answer."""
    batch = DiffusionDataCollator(pad_token_id=PAD, answer_pad_multiple=4)(FEATURES)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, PAD], [5, 6, 7, PAD, PAD, PAD]]
    assert batch["attention_mask"].tolist() == [[1] * 6, [1] * 5 + [0]]
    assert batch["answer_mask"].tolist() == [
        [False, False, True, True, True, True],
        [False, True, True, True, True, False],
    ]


def test_an_example_is_padded_the_same_in_any_batch():
    collate = DiffusionDataCollator(pad_token_id=PAD, answer_pad_multiple=4)
    long = {"input_ids": list(range(1, 12)), "prompt_length": 1}
    for feature in FEATURES:
        alone, mixed = collate([feature]), collate([feature, long])
        end = alone["input_ids"].shape[1]
        assert mixed["input_ids"].shape[1] > end
        for key in ("input_ids", "attention_mask", "answer_mask"):
            assert torch.equal(mixed[key][0, :end], alone[key][0])
        assert not mixed["attention_mask"][0, end:].any() and not mixed["answer_mask"][0, end:].any()


def test_padding_excluded():
    batch = DiffusionDataCollator(pad_token_id=PAD, train_on_padding=False)(FEATURES)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["answer_mask"].tolist() == [
        [False, False, True, True, True],
        [False, True, True, False, False],
    ]


def test_pad_to_max_length_and_multiple():
    batch = DiffusionDataCollator(pad_token_id=PAD, pad_to="max_length", max_length=8)(FEATURES)
    assert batch["input_ids"].shape == (2, 8) and bool(batch["answer_mask"][:, 5:].all())
    batch = DiffusionDataCollator(pad_token_id=PAD, pad_to_multiple_of=4, answer_pad_multiple=1)(FEATURES)
    assert batch["input_ids"].shape == (2, 8) and not batch["attention_mask"][:, 5:].any()


def test_invalid_settings_and_overlong_example():
    with pytest.raises(ValueError, match="max_length"):
        DiffusionDataCollator(pad_token_id=PAD, pad_to="max_length")
    with pytest.raises(ValueError, match="pad_to"):
        DiffusionDataCollator(pad_token_id=PAD, pad_to="batch")
    with pytest.raises(ValueError, match="answer_pad_multiple"):
        DiffusionDataCollator(pad_token_id=PAD, answer_pad_multiple=0)
    with pytest.raises(ValueError, match="more than max_length=4"):
        DiffusionDataCollator(pad_token_id=PAD, pad_to="max_length", max_length=4)(FEATURES)


def test_example_id_optional():
    batch = DiffusionDataCollator(pad_token_id=PAD)([{"input_ids": [1, 2], "prompt_length": 1}])
    assert "example_id" not in batch


def test_from_config_on_built_dataset(tokenizer):
    config = DataConfig("synthetic:countdown", synthetic_size=6, pad_to="max_length", max_length=256,
                        train_on_padding=False)
    dataset, _ = build_sft_dataset(tokenizer, config)
    rows = [dataset[i] for i in range(4)]
    batch = DiffusionDataCollator.from_config(config, tokenizer.eos_token_id)(rows)
    assert batch["input_ids"].shape == (4, 256)
    for row, ids, answer, attention in zip(rows, batch["input_ids"], batch["answer_mask"], batch["attention_mask"],
                                          strict=True):
        assert not answer[: row["prompt_length"]].any()  # the prompt is never maskable
        assert answer[row["prompt_length"] : row["length"]].all()
        assert not answer[row["length"] :].any() and not attention[row["length"] :].any()
        assert (ids[row["length"] :] == tokenizer.eos_token_id).all()
