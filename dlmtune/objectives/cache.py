"""Amortised importance: per-example answer entropies kept across steps (beyond the papers).

WeFT's first pass costs one no-grad forward per step. The entropies it measures change slowly while
fine-tuning, so `beta_refresh_every: K` reuses each example's entropies for K visits (one visit per
epoch) before measuring again. GIFT* (arXiv 2509.20863, the GIFT version's App. H) measures with a frozen reference, so its
entropies never go stale: they can be measured once, before training, and stored on disk keyed by the
data set's fingerprint.

Entries are the entropies of an example's answer tokens in order, on the CPU. An example's answer (EOS
padding included) has the same length in every batch (`dlmtune.data.collator`), so an entry always fits.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from dlmtune.io import write_bytes_atomic

Tensor = torch.Tensor
VISITS_KEY = "__visits__"


class EntropyCache:
    """Answer entropies per example id, each reused for `refresh_every` visits (0 = forever)."""

    def __init__(self, refresh_every: int = 0):
        if refresh_every < 0:
            raise ValueError(f"beta_refresh_every must be >= 0, got {refresh_every}")
        self.refresh_every = refresh_every
        self.entries: dict[int, Tensor] = {}
        self.visits: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def stale_rows(self, example_ids: Tensor) -> Tensor:
        """[B] bool: rows whose entry is missing or has been used `refresh_every` times; counts a visit."""
        stale = []
        for example_id in example_ids.tolist():
            visits = self.visits.get(example_id, 0)
            expired = self.refresh_every > 0 and visits >= self.refresh_every
            stale.append(example_id not in self.entries or expired)
            self.visits[example_id] = 1 if stale[-1] else visits + 1
        return torch.tensor(stale, dtype=torch.bool)

    def store(self, example_ids: Tensor, entropy: Tensor, answer_mask: Tensor) -> None:
        """Keep each row's entropies at its answer positions ([B, L] inputs)."""
        for example_id, row, answer in zip(example_ids.tolist(), entropy, answer_mask.bool(), strict=True):
            self.entries[example_id] = row[answer].detach().float().cpu()

    def assemble(self, example_ids: Tensor, answer_mask: Tensor) -> Tensor:
        """Entropy [B, L] on `answer_mask`'s device from the stored entries (see module doc for padding)."""
        answer = answer_mask.bool()
        out = torch.zeros(answer.shape, dtype=torch.float32)
        for b, example_id in enumerate(example_ids.tolist()):
            entry, needed = self.entries[example_id], int(answer[b].sum())
            if needed != entry.numel():
                raise ValueError(f"example {example_id}: its cached entropies cover {entry.numel()} answer tokens, the "
                                 f"batch has {needed}: the data's padding changed since they were measured; delete "
                                 "the entropy cache file and run again")
            out[b, answer[b].cpu()] = entry
        return out.to(answer.device)

    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> None:
        """Write entries and visit counts as safetensors (atomically: temporary file, then rename), so a
        resumed run reuses exactly the entropies the interrupted one would have."""
        tensors = {str(k): v.contiguous() for k, v in self.entries.items()}
        tensors[VISITS_KEY] = torch.tensor(sorted(self.visits.items()), dtype=torch.int64).reshape(-1, 2)
        write_bytes_atomic(path, save(tensors, metadata=metadata))

    def load(self, path: str | Path) -> None:
        tensors = load_file(str(path))
        visits = tensors.pop(VISITS_KEY, torch.zeros(0, 2, dtype=torch.int64))
        self.entries.update({int(k): v for k, v in tensors.items()})
        self.visits.update({int(k): int(v) for k, v in visits.tolist()})


def cache_metadata(path: str | Path) -> dict[str, str]:
    """The metadata a cache file was saved with (e.g. the data set fingerprint it belongs to)."""
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})
