"""LLaDA (Large Language Diffusion Models, arXiv 2502.09992) as a native transformers model.

LLaDA's network is a Llama decoder without the causal mask: RMSNorm, rotary embeddings over half-split
head dimensions, a SwiGLU MLP `ff_out(silu(ff_proj(x)) * up_proj(x))` (so `ff_proj` is the gate), no
biases and an untied output head (facts from the official modeling_llada.py: LLaDALlamaBlock). The
model here is therefore transformers' own `LlamaForCausalLM` with `is_causal=False`, and gets SDPA /
flash attention, gradient checkpointing, the DynamicCache with position ids, bf16 and FSDP/DeepSpeed
wrapping (`_no_split_modules`) from transformers, with no code from the checkpoint.

Official checkpoints (GSAI-ML/LLaDA-8B-*) keep OLMo-style names, in their config.json (`d_model`,
`n_heads`, `mlp_hidden_size`, ...) and in their safetensors (`model.transformer.blocks.N.attn_out`, ...).
Both are translated when loading: `LLaDAConfig` reads the official fields, and `from_pretrained` hands
transformers' `key_mapping` (OFFICIAL_KEYS) to the loader. We chose load-time mapping over a convert
command because an official folder or Hub id then loads as it is (no second 16 GB copy, nothing to keep in
sync), and because PEFT applies the same regexes (`_checkpoint_conversion_mapping`) to adapters trained on
the official code, so those load too. Saving writes native names and a native config with no `auto_map`,
so outputs reload here (or with plain transformers after `import dlmtune`) and never carry remote code.
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

# Official field -> native field (same meaning, other name).
RENAMED_FIELDS = {
    "d_model": "hidden_size",
    "n_heads": "num_attention_heads",
    "n_kv_heads": "num_key_value_heads",
    "n_layers": "num_hidden_layers",
    "mlp_hidden_size": "intermediate_size",
    "max_sequence_length": "max_position_embeddings",
    "weight_tying": "tie_word_embeddings",
}
# Official settings the Llama block reproduces only at these values (the released checkpoints' values).
REQUIRED_VALUES = {
    "block_type": "llama",
    "layer_norm_type": "rms",
    "rope": True,
    "alibi": False,
    "attention_layer_norm": False,
    "include_bias": False,
    "include_qkv_bias": False,
    "bias_for_layer_norm": (None, False),
    "layer_norm_with_affine": True,
    "scale_logits": False,
    "input_emb_norm": False,
    "block_group_size": 1,
    "multi_query_attention": (None, False),
}
ACTIVATIONS = {"silu": "silu", "gelu": "gelu", "relu": "relu"}  # official activation_type -> hidden_act
# Official fields with no counterpart here (initialisation, training-time switches of the OLMo trainer).
DROPPED_FIELDS = ("mlp_ratio", "embedding_size", "activation_type", "alibi_bias_max", "rope_full_precision",
                  "flash_attention", "attention_layer_norm_with_affine", "residual_dropout", "embedding_dropout",
                  "init_device", "init_fn", "init_std", "init_cutoff_factor", "precision", "auto_map")

# Official checkpoint key (regex) -> native key; the head `transformer.ff_out` is matched after the blocks'.
OFFICIAL_KEYS = {
    r"^model\.transformer\.wte\.": "model.embed_tokens.",
    r"^model\.transformer\.ln_f\.": "model.norm.",
    r"^model\.transformer\.ff_out\.": "lm_head.",
    r"^model\.transformer\.blocks\.(\d+)\.attn_norm\.": r"model.layers.\1.input_layernorm.",
    r"^model\.transformer\.blocks\.(\d+)\.ff_norm\.": r"model.layers.\1.post_attention_layernorm.",
    r"^model\.transformer\.blocks\.(\d+)\.q_proj\.": r"model.layers.\1.self_attn.q_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.k_proj\.": r"model.layers.\1.self_attn.k_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.v_proj\.": r"model.layers.\1.self_attn.v_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.attn_out\.": r"model.layers.\1.self_attn.o_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.ff_proj\.": r"model.layers.\1.mlp.gate_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.up_proj\.": r"model.layers.\1.mlp.up_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.ff_out\.": r"model.layers.\1.mlp.down_proj.",
}


def native_fields(official: dict[str, Any], source: str = "config.json") -> dict[str, Any]:
    """The native config fields for an official LLaDA config (names as in its config.json); settings the
    Llama block cannot reproduce are refused, naming each."""
    values = dict(official)
    wrong = {k: values[k] for k, want in REQUIRED_VALUES.items()
             if k in values and values[k] not in (want if isinstance(want, tuple) else (want,))}
    activation = values.get("activation_type", "silu")
    if activation not in ACTIVATIONS:
        wrong["activation_type"] = activation
    if wrong:
        raise ValueError(f"{source}: LLaDA settings not supported by the native LLaDA model: {wrong} "
                         f"(supported: {REQUIRED_VALUES}, activation_type in {sorted(ACTIVATIONS)})")
    fields = {ours: values.pop(theirs) for theirs, ours in RENAMED_FIELDS.items() if theirs in values}
    if fields.get("intermediate_size") is None and "hidden_size" in fields:
        fields["intermediate_size"] = values.get("mlp_ratio", 4) * fields["hidden_size"]
    if fields.get("num_key_value_heads") is None:
        fields.pop("num_key_value_heads", None)  # the native default: as many as attention heads
    if values.get("embedding_size"):  # the embedding table (and head) may be padded beyond vocab_size
        fields["vocab_size"] = max(values["embedding_size"], values.get("vocab_size") or 0)
    fields["hidden_act"] = ACTIVATIONS[activation]
    for key in (*REQUIRED_VALUES, *DROPPED_FIELDS):
        values.pop(key, None)
    return {**values, **fields}


class LLaDAConfig(LlamaConfig):
    """A bidirectional Llama config that also reads the official LLaDA fields (`d_model`, `n_heads`, ...)."""

    model_type = "llada"

    def __post_init__(self, **kwargs):
        official = {k: kwargs.pop(k) for k in list(kwargs) if k in RENAMED_FIELDS or k in REQUIRED_VALUES
                    or k in DROPPED_FIELDS}
        if official:
            fields = native_fields(official)
            for key, value in fields.items():
                setattr(self, key, value)
            if "num_key_value_heads" not in fields:
                self.num_key_value_heads = None  # derived: as many as attention heads
            self.head_dim = None  # derived again from the translated sizes
        kwargs["is_causal"] = False
        super().__post_init__(**kwargs)


class LLaDAForDiffusionLM(LlamaForCausalLM):
    """LLaDA's mask predictor: the Llama stack without the causal mask, loading official checkpoints."""

    config_class = LLaDAConfig
    _checkpoint_conversion_mapping: ClassVar[dict[str, str]] = OFFICIAL_KEYS  # read by PEFT for adapters

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        kwargs.setdefault("key_mapping", OFFICIAL_KEYS)
        return super().from_pretrained(*args, **kwargs)

    def save_pretrained(self, *args, save_original_format: bool = False, **kwargs):
        """Native names by default (transformers would otherwise write the official names back)."""
        return super().save_pretrained(*args, save_original_format=save_original_format, **kwargs)


AutoConfig.register(LLaDAConfig.model_type, LLaDAConfig)
AutoModel.register(LLaDAConfig, LLaDAForDiffusionLM)  # the official auto_map maps both to its LM class
AutoModelForCausalLM.register(LLaDAConfig, LLaDAForDiffusionLM)
