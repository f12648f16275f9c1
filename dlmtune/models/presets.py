"""Built-in bidirectional transformers for the embedded default.

They are plain transformers Llama models with `is_causal=False`, so peft, accelerate, gradient
checkpointing, KV caches and `save_pretrained` all work natively, with no remote code.

Weights start at std 1/sqrt(hidden_size) instead of Llama's 0.02, which is tuned for widths in the
thousands. At width 128 it leaves attention almost uniform: trained with the SFT loss to copy numbers
from the prompt, the tiny preset learned the copy at 1/sqrt(128) = 0.088 and not at 0.02 in twice the
steps (found while building the demo).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase


@dataclass(frozen=True)
class Preset:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 1024


PRESETS: dict[str, Preset] = {
    "micro": Preset(64, 2, 4, 128, 512),  # ~0.1M parameters, for tests
    "tiny": Preset(128, 4, 4, 384),  # ~0.8M, the embedded demo model
    "small": Preset(256, 6, 8, 768),  # ~5M
}


def preset_config(name: str, tokenizer: PreTrainedTokenizerBase, vocab_size: int | None = None,
                  layers: int | None = None) -> LlamaConfig:
    """A bidirectional Llama config of preset `name` sized for `tokenizer` (or an explicit `vocab_size`,
    which benchmarks use to price a large LM head; `layers` overrides the depth likewise)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}")
    p = PRESETS[name]
    return LlamaConfig(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=layers or p.num_hidden_layers,
        num_attention_heads=p.num_attention_heads,
        num_key_value_heads=p.num_attention_heads,
        max_position_embeddings=p.max_position_embeddings,
        rope_theta=10000.0,
        initializer_range=p.hidden_size**-0.5,
        is_causal=False,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
    )


def build_preset_model(
    name: str, tokenizer: PreTrainedTokenizerBase, seed: int = 0, vocab_size: int | None = None,
    layers: int | None = None,
) -> LlamaForCausalLM:
    """A freshly initialised preset model; the same seed gives the same weights."""
    config = preset_config(name, tokenizer, vocab_size, layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)
