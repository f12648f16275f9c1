"""Masked-diffusion loss of base models on fresh pretraining-corpus documents: the same documents, masks
and objective for every model, so bases built by different runs compare.

    OMP_NUM_THREADS=1 python benchmarks/corpus_loss.py MODEL [MODEL ...]

The documents are the first 1024 of the corpus drawn with seed 5 (the recipe trains on seed 0's); the
loss is the recipe's objective (`sft`, stratified t) with masks from a fixed generator, in batches of 32.
"""

from __future__ import annotations

import statistics
import sys

import torch

from dlmtune.data import DiffusionDataCollator, build_sft_dataset
from dlmtune.models.loading import load_model
from dlmtune.objectives import get_objective
from dlmtune.train import embedded_config, load_config

DOCUMENTS, SEED, BATCH = 1024, 5, 32


def corpus_loss(name: str) -> float:
    model, tokenizer, spec = load_model(name)
    model.eval()
    config = load_config(embedded_config("pretrain-tiny"), [("output_dir", "unused"),
                                                            ("data.synthetic_size", DOCUMENTS),
                                                            ("data.synthetic_seed", SEED)])
    dataset, _ = build_sft_dataset(tokenizer, config.data)
    collate = DiffusionDataCollator.from_config(config.data, tokenizer.eos_token_id)
    objective = get_objective("sft", config.objective, mask_id=spec.mask_token_id, shift_logits=spec.shift_logits)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        losses = [objective(model, collate([dataset[j] for j in range(i, i + BATCH)]), generator).loss.item()
                  for i in range(0, DOCUMENTS, BATCH)]
    return statistics.fmean(losses)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["embedded:base-tiny"]:
        print(f"{name}: {corpus_loss(name):.3f}")
