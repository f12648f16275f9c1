"""Tokens per training step of configs/tiny.yaml with batch-independent answer padding against the former
pad-to-longest padding (batch padding counted as answer), over the same length-grouped epoch.

    python benchmarks/padding_cost.py [CONFIG]

Former: each batch is padded with EOS to its longest example and every padded position is attended and
answer. Now: each answer is padded to a multiple of `answer_pad_multiple` by itself, and the batch's
remaining width is neither attended nor answer (`dlmtune.data.collator`).
"""

from __future__ import annotations

import statistics
import sys

from dlmtune.data import DiffusionDataCollator, build_sft_dataset
from dlmtune.data.sampler import ShuffledLengthGroupedSampler
from dlmtune.models.loading import load_model
from dlmtune.train import embedded_config, load_config


def main(path: str) -> None:
    config = load_config(path, [("output_dir", "unused")])
    _, tokenizer, _ = load_model(config.model.name_or_path)
    dataset, _ = build_sft_dataset(tokenizer, config.data)
    collate = DiffusionDataCollator.from_config(config.data, tokenizer.eos_token_id)
    batch_size, seed = config.training["per_device_train_batch_size"], config.training["seed"]
    order = list(ShuffledLengthGroupedSampler(dataset["length"], batch_size, seed=seed))
    former = {"width": [], "attended": [], "answer": []}
    now = {"width": [], "attended": [], "answer": []}
    for first in range(0, len(order) - batch_size + 1, batch_size):
        rows = [dataset[i] for i in order[first : first + batch_size]]
        longest = max(r["length"] for r in rows)
        former["width"].append(batch_size * longest)
        former["attended"].append(batch_size * longest)
        former["answer"].append(sum(longest - r["prompt_length"] for r in rows))
        batch = collate(rows)
        now["width"].append(batch["input_ids"].numel())
        now["attended"].append(int(batch["attention_mask"].sum()))
        now["answer"].append(int(batch["answer_mask"].sum()))
    print(f"{path}: {len(former['width'])} steps of {batch_size} (one length-grouped epoch, seed {seed}); "
          f"answer_pad_multiple {config.data.answer_pad_multiple}")
    print(f"{'tokens per step (mean)':<28}{'former':>10}{'now':>10}{'now/former':>12}")
    for key in ("width", "attended", "answer"):
        a, b = statistics.fmean(former[key]), statistics.fmean(now[key])
        print(f"{key:<28}{a:>10.0f}{b:>10.0f}{b / a:>12.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(embedded_config("tiny")))
