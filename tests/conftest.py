"""Shared fixtures: the embedded tokenizer and tiny bidirectional models with fixed seeds."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from dlmtune.models.presets import build_preset_model
from dlmtune.tokenizer import build_tokenizer


def pytest_configure(config):
    """Under pytest-xdist (scripts/run-tests.sh) each worker takes one torch thread: as many threads as cores,
    not workers x cores fighting over them."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


@pytest.fixture
def micro_model(tokenizer):
    """The `micro` preset (~0.1M parameters), bidirectional, seed 0."""
    return build_preset_model("micro", tokenizer, seed=0)


@pytest.fixture
def tiny_bidir_model():
    """A random bidirectional Llama over a 64-token vocabulary (mask id 63), seed 0, eval mode."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        is_causal=False,
    )
    return LlamaForCausalLM(config).eval()
