"""Per-token uncertainty of a model's predictions: entropy and target NLL.

WeFT/GIFT (WeFT, arXiv 2509.20863 v1, §3.3, eq. 12-13) measures each answer token's predictive entropy with the answer
fully masked. At LLaDA scale (126k vocabulary, 4096 tokens) a float32 copy of the logits alone is ~2 GB,
so both functions can work through the positions in chunks and never materialise more than
`chunk_size x vocab` float32 values at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _chunks(n: int, chunk_size: int | None) -> Iterator[slice]:
    step = n if not chunk_size or chunk_size <= 0 else chunk_size
    for start in range(0, n, max(step, 1)):
        yield slice(start, min(start + step, n))


def _entropy_rows(logits: Tensor) -> Tensor:
    logp = F.log_softmax(logits.float(), dim=-1)
    return -logp.exp().mul_(logp).sum(-1)  # in place: one [n, V] temporary fewer


def token_entropy(logits: Tensor, chunk_size: int | None = None) -> Tensor:
    """Entropy in nats of softmax(logits) over the last dimension.

    Computed from log-softmax, so it is stable for logits of any magnitude. Returns float32 of shape
    `logits.shape[:-1]`. `chunk_size` bounds peak memory to that many positions' float32 probabilities.
    """
    flat = logits.reshape(-1, logits.shape[-1])
    out = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
    for sl in _chunks(flat.shape[0], chunk_size):
        out[sl] = _entropy_rows(flat[sl])
    return out.reshape(logits.shape[:-1])


def token_nll(logits: Tensor, targets: Tensor, chunk_size: int | None = None) -> Tensor:
    """Negative log-likelihood (nats) of `targets` under softmax(logits); float32, shape `targets.shape`.

    This is the uncertainty measure of the papers' NLL ablation (beta_i = -log p(x0_i)).
    """
    flat = logits.reshape(-1, logits.shape[-1])
    flat_targets = targets.reshape(-1)
    out = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
    for sl in _chunks(flat.shape[0], chunk_size):
        out[sl] = F.cross_entropy(flat[sl].float(), flat_targets[sl], reduction="none")
    return out.reshape(targets.shape)
