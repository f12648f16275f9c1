"""`token_entropy` and `token_nll` against float64 references; the chunked path equals the unchunked one."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlmtune.objectives import token_entropy, token_nll


def entropy_f64(logits: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits.double(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("scale", [0.1, 1.0, 30.0])
def test_entropy_matches_float64_reference(scale):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 17, generator=g, dtype=torch.float64) * scale
    got = token_entropy(logits.float())
    assert got.dtype == torch.float32 and got.shape == (3, 5)
    # H <= log 17 = 2.83; float32 log-softmax and a 17-term sum: error ~ 17 * 2.8 * 6e-8 < 1e-5
    torch.testing.assert_close(got.double(), entropy_f64(logits.float()), rtol=0, atol=1e-5)
    assert (got >= -1e-6).all() and (got <= math.log(17) + 1e-5).all()


def test_entropy_large_logits_and_uniform():
    big = 1e4
    logits = torch.tensor(
        [
            [big, -big, 0.0, 0.0],  # one certain token: H = 0
            [big, big, -big, -big],  # two equal winners: H = log 2
            [big, big, big, big],  # uniform at +1e4: H = log 4
            [-big, -big, -big, -big],  # uniform at -1e4: H = log 4
            [big, big - math.log(3.0), -big, -big],  # probabilities 3/4, 1/4
        ]
    )
    expected = torch.tensor([0.0, math.log(2), math.log(4), math.log(4), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))])
    got = token_entropy(logits)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected.float(), rtol=0, atol=2e-3)  # 1e4 - log 3 in float32: 1e-3 abs
    torch.testing.assert_close(got[:4], expected[:4].float(), rtol=0, atol=1e-6)
    for vocab in (2, 7, 1000):
        uniform = token_entropy(torch.zeros(2, 3, vocab))
        torch.testing.assert_close(uniform, torch.full((2, 3), math.log(vocab)), rtol=1e-6, atol=0)


def test_entropy_dtype_and_shape():
    g = torch.Generator().manual_seed(1)
    for dtype in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
        logits = torch.randn(2, 3, 4, 11, generator=g).to(dtype)
        got = token_entropy(logits)
        assert got.dtype == torch.float32 and got.shape == (2, 3, 4)
        torch.testing.assert_close(got.double(), entropy_f64(logits.float()), rtol=0, atol=1e-5)
    assert token_entropy(torch.zeros(0, 5)).shape == (0,)


@pytest.mark.parametrize("chunk_size", [None, 0, -1, 1, 2, 7, 15, 16, 1000])
def test_chunked_equals_unchunked(chunk_size):
    """15 rows: chunk sizes 1, 2, 7 (uneven last chunk), exactly N, and > N all give identical bits."""
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 5, 23, generator=g) * 4
    targets = torch.randint(0, 23, (3, 5), generator=g)
    assert torch.equal(token_entropy(logits, chunk_size), token_entropy(logits))
    assert torch.equal(token_nll(logits, targets, chunk_size), token_nll(logits, targets))


def test_token_nll_matches_cross_entropy():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, 13, generator=g, dtype=torch.float64) * 3
    targets = torch.randint(0, 13, (2, 6), generator=g)
    got = token_nll(logits.float(), targets, chunk_size=5)
    assert got.dtype == torch.float32 and got.shape == targets.shape
    expected = F.cross_entropy(logits.reshape(-1, 13), targets.reshape(-1), reduction="none").reshape(2, 6)
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-5)
    # hand value: logits [0, log 3], target 0 -> p = 1/4, NLL = log 4; target 1 -> log(4/3)
    two = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    torch.testing.assert_close(token_nll(two, torch.tensor([0, 1])), torch.tensor([math.log(4), math.log(4 / 3)]))
