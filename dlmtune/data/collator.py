"""Batches of SFT examples for the diffusion objectives: EOS right-padding and the answer mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from dlmtune.data.config import DataConfig


@dataclass
class DiffusionDataCollator:
    """Pads features from `build_sft_dataset` into `input_ids`, `attention_mask`, `answer_mask`, `example_id`.

    With `train_on_padding` (LLaDA's convention) the padded EOS are answer tokens: attended, maskable
    and trained, which teaches the model to fill the rest of its canvas with EOS. Without it they are
    neither attended nor trained. The prompt is never part of the answer."""

    pad_token_id: int
    pad_to: str = "longest"  # or "max_length"
    max_length: int | None = None  # needed for pad_to="max_length"
    pad_to_multiple_of: int | None = None
    train_on_padding: bool = True

    def __post_init__(self) -> None:
        if self.pad_to not in ("longest", "max_length"):
            raise ValueError(f"pad_to: expected 'longest' or 'max_length', got {self.pad_to!r}")
        if self.pad_to == "max_length" and self.max_length is None:
            raise ValueError("max_length: needed when pad_to='max_length'")
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of: must be >= 1, got {self.pad_to_multiple_of}")

    @classmethod
    def from_config(cls, tokenizer: Any, config: DataConfig, pad_to_multiple_of: int | None = None) -> DiffusionDataCollator:
        """The collator matching a data config; pads with the tokenizer's EOS (as LLaDA does)."""
        return cls(
            pad_token_id=tokenizer.eos_token_id,
            pad_to=config.pad_to,
            max_length=config.max_length,
            pad_to_multiple_of=pad_to_multiple_of,
            train_on_padding=config.train_on_padding,
        )

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        width = self.max_length if self.pad_to == "max_length" else max(lengths)
        if max(lengths) > width:
            raise ValueError(f"an example has {max(lengths)} tokens, more than max_length={width}")
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros(len(features), width, dtype=torch.long)
        answer_mask = torch.zeros(len(features), width, dtype=torch.bool)
        for row, (feature, length) in enumerate(zip(features, lengths, strict=True)):
            input_ids[row, :length] = torch.as_tensor(feature["input_ids"], dtype=torch.long)
            end = width if self.train_on_padding else length
            attention_mask[row, :end] = 1
            answer_mask[row, int(feature["prompt_length"]) : end] = True
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "answer_mask": answer_mask}
        if all("example_id" in f for f in features):
            batch["example_id"] = torch.tensor([int(f["example_id"]) for f in features], dtype=torch.long)
        return batch
