"""Tiny model folders in the official LLaDA / Dream layout, written offline with random weights.

Each folder looks like GSAI-ML/LLaDA-8B-Instruct or Dream-org/Dream-v0-Base-7B as far as loading can
tell: config.json with the official model_type, field names, architectures and `auto_map`; safetensors
with the official parameter names; the official module file names beside them; a tokenizer with a mask
token and a chat template (the embedded one, so sizes stay tiny). The modules only write a marker file
when imported: a test that finds no marker proves the checkpoint's own code never ran.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from dlmtune.models.dream import DreamConfig, DreamForDiffusionLM
from dlmtune.models.llada import LLaDAConfig, LLaDAForDiffusionLM
from dlmtune.tokenizer import build_tokenizer

MARKER = "REMOTE_CODE_RAN"
MARKER_MODULE = '''"""Stands in for a checkpoint's own modeling code: importing it leaves a marker file in its folder
(named absolutely: transformers imports a copy from its modules cache)."""
from pathlib import Path

Path({marker!r}).write_text(__name__)
'''

LLADA_AUTO_MAP = {"AutoConfig": "configuration_llada.LLaDAConfig",
                  "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
                  "AutoModel": "modeling_llada.LLaDAModelLM"}
DREAM_AUTO_MAP = {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"}
LLADA_MODULES = ("configuration_llada.py", "modeling_llada.py")
DREAM_MODULES = ("configuration_dream.py", "modeling_dream.py", "generation_utils.py")


def llada_official_config(tokenizer, *, d_model=32, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=48,
                          rope_theta=500000.0) -> dict:
    """A config.json as LLaDA-8B's, at toy sizes (its 8B values: 4096, 32, 32, 32, 12288)."""
    return {
        "activation_type": "silu", "alibi": False, "alibi_bias_max": 8.0, "architectures": ["LLaDAModelLM"],
        "attention_dropout": 0.0, "attention_layer_norm": False, "attention_layer_norm_with_affine": True,
        "auto_map": LLADA_AUTO_MAP, "bias_for_layer_norm": False, "block_group_size": 1, "block_type": "llama",
        "d_model": d_model, "embedding_dropout": 0.0, "embedding_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id, "flash_attention": False, "include_bias": False,
        "include_qkv_bias": False, "init_cutoff_factor": None, "init_device": "meta", "init_fn": "mitchell",
        "init_std": 0.02, "input_emb_norm": False, "layer_norm_type": "rms", "layer_norm_with_affine": True,
        "mask_token_id": tokenizer.mask_token_id, "max_sequence_length": 512, "mlp_hidden_size": mlp_hidden_size,
        "mlp_ratio": 4, "model_type": "llada", "multi_query_attention": None, "n_heads": n_heads,
        "n_kv_heads": n_kv_heads, "n_layers": n_layers, "pad_token_id": tokenizer.pad_token_id,
        "precision": "amp_bf16", "residual_dropout": 0.0, "rms_norm_eps": 1e-05, "rope": True,
        "rope_full_precision": True, "rope_theta": rope_theta, "scale_logits": False,
        "transformers_version": "4.46.3", "use_cache": False, "vocab_size": len(tokenizer), "weight_tying": False,
    }


def dream_official_config(tokenizer, *, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                          num_hidden_layers=2, intermediate_size=48, rope_theta=1000000.0) -> dict:
    """A config.json as Dream-v0-Base-7B's, at toy sizes (its 7B values: 3584, 28, 4, 28, 18944)."""
    return {
        "architectures": ["DreamModel"], "attention_dropout": 0.0, "auto_map": DREAM_AUTO_MAP,
        "bos_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id, "hidden_act": "silu",
        "hidden_size": hidden_size, "initializer_range": 0.02, "intermediate_size": intermediate_size,
        "mask_token_id": tokenizer.mask_token_id, "max_position_embeddings": 512, "max_window_layers": 28,
        "model_type": "Dream", "num_attention_heads": num_attention_heads, "num_hidden_layers": num_hidden_layers,
        "num_key_value_heads": num_key_value_heads, "pad_token_id": tokenizer.pad_token_id, "rms_norm_eps": 1e-06,
        "rope_scaling": None, "rope_theta": rope_theta, "sliding_window": 512, "tie_word_embeddings": False,
        "torch_dtype": "float32", "transformers_version": "4.46.2", "use_cache": True, "use_sliding_window": False,
        "vocab_size": len(tokenizer),
    }


# Native name -> official name, written out by hand from the official modeling_llada.py (independent of
# dlmtune's OFFICIAL_KEYS, so the tests check one against the other).
LLADA_TOP_NAMES = {"model.embed_tokens": "model.transformer.wte", "model.norm": "model.transformer.ln_f",
                   "lm_head": "model.transformer.ff_out"}
LLADA_BLOCK_NAMES = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ff_norm",
                     "self_attn.q_proj": "q_proj", "self_attn.k_proj": "k_proj", "self_attn.v_proj": "v_proj",
                     "self_attn.o_proj": "attn_out", "mlp.gate_proj": "ff_proj", "mlp.up_proj": "up_proj",
                     "mlp.down_proj": "ff_out"}


def official_llada_name(native: str) -> str:
    module, param = native.rsplit(".", 1)
    if module in LLADA_TOP_NAMES:
        return f"{LLADA_TOP_NAMES[module]}.{param}"
    layer, name = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", module).groups()
    return f"model.transformer.blocks.{layer}.{LLADA_BLOCK_NAMES[name]}.{param}"


def _write(folder: Path, config: dict, state: dict[str, torch.Tensor], modules: tuple[str, ...], tokenizer) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    if config["model_type"] == "Dream":  # Dream's own from_pretrained requires it
        ids = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id", "mask_token_id")}
        (folder / "generation_config.json").write_text(json.dumps({**ids, "transformers_version": "4.46.2"}))
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors", metadata={"format": "pt"})
    for module in modules:
        (folder / module).write_text(MARKER_MODULE.format(marker=str((folder / MARKER).resolve())))
    tokenizer.save_pretrained(folder)
    return folder


def write_official_llada(folder: Path, *, seed: int = 0, tokenizer=None, **sizes) -> Path:
    """A random tiny LLaDA in the official layout (weights drawn through the native class)."""
    tokenizer = tokenizer or build_tokenizer()
    config = llada_official_config(tokenizer, **sizes)
    torch.manual_seed(seed)
    model = LLaDAForDiffusionLM(LLaDAConfig(**config))
    return _write(folder, config, {official_llada_name(k): v for k, v in model.state_dict().items()}, LLADA_MODULES, tokenizer)


def write_official_dream(folder: Path, *, seed: int = 0, tokenizer=None, **sizes) -> Path:
    """A random tiny Dream in the official layout (its parameter names are Qwen2's)."""
    tokenizer = tokenizer or build_tokenizer()
    config = dream_official_config(tokenizer, **sizes)
    torch.manual_seed(seed)
    model = DreamForDiffusionLM(DreamConfig(**config))
    return _write(folder, config, model.state_dict(), DREAM_MODULES, tokenizer)


def remote_code_ran(folder: Path) -> bool:
    return (Path(folder) / MARKER).exists()
