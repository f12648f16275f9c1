"""Batches of SFT examples for the diffusion objectives: EOS right-padding and the answer mask.

An example's input does not depend on its batch neighbours: its answer is padded with EOS to a length set by
the example alone (a multiple of `answer_pad_multiple`, or `max_length` as d1 pads), and the rest of the
batch's width is padding that is neither attended nor part of the answer. So an example's first-pass
entropies, its beta_ref and its cached GIFT* entropies are the same in any batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from dlmtune.data.config import DataConfig


@dataclass
class DiffusionDataCollator:
    """Pads features from `build_sft_dataset` into `input_ids`, `attention_mask`, `answer_mask`, `example_id`.

    With `train_on_padding` (LLaDA's convention) each answer is padded with EOS to its own padded length
    (`padded_length`) and those EOS are answer tokens: attended, maskable and trained, which teaches the
    model to fill the rest of its canvas with EOS. Without it an example ends at its own EOS. Beyond an
    example's end the batch's padding is neither attended nor trained. The prompt is never answer."""

    pad_token_id: int
    pad_to: str = "longest"  # or "max_length": every answer padded to max_length (d1)
    max_length: int | None = None  # needed for pad_to="max_length"
    pad_to_multiple_of: int | None = None  # the batch's width (attention-masked beyond each example)
    train_on_padding: bool = True
    answer_pad_multiple: int = 32  # with pad_to="longest": answers padded to a multiple of this many tokens

    def __post_init__(self) -> None:
        if self.pad_to not in ("longest", "max_length"):
            raise ValueError(f"pad_to: expected 'longest' or 'max_length', got {self.pad_to!r}")
        if self.pad_to == "max_length" and self.max_length is None:
            raise ValueError("max_length: needed when pad_to='max_length'")
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of: must be >= 1, got {self.pad_to_multiple_of}")
        if self.answer_pad_multiple < 1:
            raise ValueError(f"answer_pad_multiple: must be >= 1, got {self.answer_pad_multiple}")

    @classmethod
    def from_config(cls, config: DataConfig, pad_token_id: int, pad_to_multiple_of: int | None = None) -> DiffusionDataCollator:
        """The collator matching a data config, padding with `pad_token_id` (the tokenizer's EOS, as LLaDA does)."""
        return cls(
            pad_token_id=pad_token_id,
            pad_to=config.pad_to,
            max_length=config.max_length,
            pad_to_multiple_of=pad_to_multiple_of,
            train_on_padding=config.train_on_padding,
            answer_pad_multiple=config.answer_pad_multiple,
        )

    def padded_length(self, length: int, prompt_length: int) -> int:
        """Where an example ends once its answer is EOS-padded: fixed by the example alone."""
        if not self.train_on_padding:
            return length
        if self.pad_to == "max_length":
            return self.max_length
        answer = length - prompt_length
        padded = prompt_length + -(-answer // self.answer_pad_multiple) * self.answer_pad_multiple
        return max(length, min(padded, self.max_length or padded))

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        if self.pad_to == "max_length" and max(lengths) > self.max_length:
            raise ValueError(f"an example has {max(lengths)} tokens, more than max_length={self.max_length}")
        ends = [self.padded_length(n, int(f["prompt_length"])) for n, f in zip(lengths, features, strict=True)]
        width = self.max_length if self.pad_to == "max_length" else max(ends)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros(len(features), width, dtype=torch.long)
        answer_mask = torch.zeros(len(features), width, dtype=torch.bool)
        for row, (feature, length, end) in enumerate(zip(features, lengths, ends, strict=True)):
            input_ids[row, :length] = torch.as_tensor(feature["input_ids"], dtype=torch.long)
            attention_mask[row, :end] = 1
            answer_mask[row, int(feature["prompt_length"]) : end] = True
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "answer_mask": answer_mask}
        if all("example_id" in f for f in features):
            batch["example_id"] = torch.tensor([int(f["example_id"]) for f in features], dtype=torch.long)
        return batch
