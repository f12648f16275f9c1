"""The native LLaDA and Dream classes against hand-checked facts: config translation, the official key
names, saving, bidirectionality, Dream's shift, the tiny Llama preset, checkpointing, the KV cache, adapters
trained on the official code. (Equality with the official modeling code itself is shown outside the
repository, with the official files under the transformers they need; see the models issue's report.)"""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import DynamicCache

from dlmtune.models.dream import DreamConfig, DreamForDiffusionLM
from dlmtune.models.forward import logits_at
from dlmtune.models.llada import LLaDAConfig, LLaDAForDiffusionLM
from dlmtune.models.loading import load_model

from .official_layout import (
    llada_official_config,
    official_llada_name,
    remote_code_ran,
    write_official_dream,
    write_official_llada,
)

IDS = torch.tensor([[5, 40, 41, 42, 1, 1, 43, 0], [6, 50, 1, 1, 1, 52, 9, 10]])


def _logits(model, ids=IDS, **kwargs):
    with torch.no_grad():
        return model(input_ids=ids, **kwargs).logits


def test_llada_config_reads_the_official_fields(tokenizer):
    official = llada_official_config(tokenizer, d_model=64, n_heads=8, n_kv_heads=2, n_layers=3,
                                     mlp_hidden_size=96, rope_theta=500000.0)
    official["embedding_size"] = len(tokenizer) + 21  # a padded table: logits are that wide, as officially
    config = LLaDAConfig(**official)
    assert (config.hidden_size, config.num_attention_heads, config.num_key_value_heads, config.num_hidden_layers,
            config.intermediate_size, config.head_dim) == (64, 8, 2, 3, 96, 8)
    assert (config.vocab_size, config.max_position_embeddings) == (len(tokenizer) + 21, 512)
    assert config.rope_parameters["rope_theta"] == 500000.0 and config.rms_norm_eps == 1e-5
    assert config.is_causal is False and config.tie_word_embeddings is False and config.hidden_act == "silu"
    assert config.mask_token_id == tokenizer.mask_token_id
    saved = config.to_dict()
    assert "auto_map" not in saved and "d_model" not in saved and "init_fn" not in saved
    model = LLaDAForDiffusionLM(config)
    attention = model.model.layers[0].self_attn
    assert attention.q_proj.weight.shape == (64, 64) and attention.k_proj.weight.shape == (16, 64)
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert _logits(model).shape == (*IDS.shape, len(tokenizer) + 21)


@pytest.mark.parametrize(("field", "value"), [("block_type", "sequential"), ("include_qkv_bias", True),
                                              ("scale_logits", True), ("activation_type", "swiglu")])
def test_llada_settings_the_llama_block_cannot_reproduce_are_named(tokenizer, field, value):
    official = {**llada_official_config(tokenizer), field: value}
    with pytest.raises(ValueError, match=f"not supported by the native LLaDA model: {{'{field}'"):
        LLaDAConfig(**official)


def test_dream_config_is_qwen2_with_biases_and_gqa(tokenizer, tmp_path):
    folder = write_official_dream(tmp_path / "dream")
    model, _, spec = load_model(str(folder))
    assert type(model) is DreamForDiffusionLM and type(model.config) is DreamConfig
    assert model.config.model_type == "Dream" and model.config.rope_parameters["rope_theta"] == 1e6
    attention = model.model.layers[0].self_attn
    assert attention.q_proj.bias is not None and attention.k_proj.weight.shape == (16, 32)  # 2 kv heads x 8
    assert attention.o_proj.bias is None
    assert spec.shift_logits and spec.family == "dream"


def test_official_llada_weights_land_on_the_native_names_and_save_native(tmp_path):
    folder = write_official_llada(tmp_path / "official")
    official = load_file(str(folder / "model.safetensors"))
    assert "model.transformer.blocks.1.attn_out.weight" in official  # the official layout, as written
    model, _, spec = load_model(str(folder))
    assert type(model) is LLaDAForDiffusionLM and spec.family == "llada" and not spec.shift_logits
    native = model.state_dict()
    assert len(native) == len(official)
    for name, tensor in native.items():
        assert torch.equal(tensor, official[official_llada_name(name)]), name
    model.save_pretrained(tmp_path / "saved")
    assert set(load_file(str(tmp_path / "saved" / "model.safetensors"))) == set(native)
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["model_type"] == "llada" and "auto_map" not in config
    assert not list((tmp_path / "saved").glob("*.py"))
    reloaded = LLaDAForDiffusionLM.from_pretrained(tmp_path / "saved")
    assert torch.equal(_logits(reloaded), _logits(model))
    assert not remote_code_ran(folder)


@pytest.fixture(params=["llada", "dream"])
def native_model(request, tmp_path):
    write = write_official_llada if request.param == "llada" else write_official_dream
    return load_model(str(write(tmp_path / request.param)))[0]


def test_attention_is_bidirectional(native_model):
    changed = IDS.clone()
    changed[:, -1] = 44
    assert not torch.allclose(_logits(native_model, changed)[:, 0], _logits(native_model)[:, 0])


def test_padding_hides_the_padded_keys(native_model):
    """Left padding with attention_mask 0: the real tokens' logits do not depend on what the pads are."""
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]])
    ids = IDS[:1].clone()
    other = ids.clone()
    other[0, :2] = torch.tensor([70, 71])
    a, b = (_logits(native_model, x, attention_mask=mask)[0, 2:] for x in (ids, other))
    assert torch.allclose(a, b, atol=1e-6)


def test_dream_shift_reads_position_i_from_hidden_state_i_minus_1(tmp_path):
    model, _, spec = load_model(str(write_official_dream(tmp_path / "dream")))
    raw = _logits(model)
    positions = torch.zeros_like(IDS, dtype=torch.bool)
    positions[:, [0, 3, 7]] = True
    aligned = logits_at(model, IDS, None, positions, shift=spec.shift_logits).reshape(2, 3, -1)
    assert torch.equal(aligned[:, 0], raw[:, 0]) and torch.equal(aligned[:, 1], raw[:, 2])
    assert torch.equal(aligned[:, 2], raw[:, 6])


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_equal_to_the_tiny_llama_preset_given_the_same_weights(family, micro_model):
    """LLaDA is the bidirectional Llama block; Dream too, once its q/k/v biases are zero."""
    preset = micro_model.eval()
    c = preset.config
    sizes = dict(vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                 num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                 num_key_value_heads=c.num_key_value_heads, rms_norm_eps=c.rms_norm_eps,
                 rope_theta=c.rope_parameters["rope_theta"], max_position_embeddings=c.max_position_embeddings)
    model = (LLaDAForDiffusionLM(LLaDAConfig(**sizes)) if family == "llada" else
             DreamForDiffusionLM(DreamConfig(**sizes))).eval()
    missing, unexpected = model.load_state_dict(preset.state_dict(), strict=False)
    assert not unexpected and all(name.endswith("_proj.bias") for name in missing)
    for name in missing:
        torch.nn.init.zeros_(model.get_parameter(name))
    assert torch.allclose(_logits(model), _logits(preset), atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(native_model):
    def grads(checkpointing: bool):
        native_model.zero_grad()
        native_model.train()
        if checkpointing:
            native_model.activation_checkpointing_enable()
        else:
            native_model.activation_checkpointing_disable()
        native_model(input_ids=IDS).logits.float().logsumexp(-1).mean().backward()
        return {n: p.grad.clone() for n, p in native_model.named_parameters()}

    plain, checkpointed = grads(False), grads(True)
    assert native_model.is_activation_checkpointing
    assert all(torch.allclose(plain[n], checkpointed[n], atol=1e-6) for n in plain)


def test_cache_path_gives_the_logits_of_a_full_forward(native_model):
    positions = torch.arange(IDS.shape[1]).expand_as(IDS)
    cache = DynamicCache(config=native_model.config)
    with torch.no_grad():
        cached = native_model(input_ids=IDS, position_ids=positions, cache=cache, use_cache=True).logits
    assert cache.get_seq_length() == IDS.shape[1]
    assert torch.allclose(cached, _logits(native_model), atol=1e-6)


def test_eager_and_sdpa_attention_agree_and_bf16_runs(native_model):
    native_model.set_attn_implementation("eager")
    eager = _logits(native_model)
    native_model.set_attn_implementation("sdpa")
    assert torch.allclose(eager, _logits(native_model), atol=1e-5)
    assert _logits(native_model.to(torch.bfloat16)).dtype == torch.bfloat16
    assert native_model._no_split_modules  # what FSDP / DeepSpeed / device_map wrap as one unit


def _official_adapter_keys(folder):
    """Rewrite a native LLaDA adapter's weights under the names PEFT gives them on the official code."""
    path = folder / "adapter_model.safetensors"
    prefix = "base_model.model."
    weights = {}
    for key, tensor in load_file(str(path)).items():
        module, lora = key[len(prefix):].split(".lora_")
        weights[f"{prefix}{official_llada_name(module + '.weight').removesuffix('.weight')}.lora_{lora}"] = tensor
    save_file(weights, path)
    return weights


def test_adapter_trained_on_the_official_llada_code_loads_natively(tmp_path):
    folder = write_official_llada(tmp_path / "llada")
    base = load_model(str(folder))[0]
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj"], init_lora_weights=False))
    expected = _logits(lora)
    lora.save_pretrained(tmp_path / "adapter")
    official = _official_adapter_keys(tmp_path / "adapter")
    assert "base_model.model.model.transformer.blocks.0.q_proj.lora_A.weight" in official
    adapted, _, _ = load_model(str(folder), adapter=str(tmp_path / "adapter"))
    assert torch.allclose(_logits(adapted), expected, atol=1e-6)


def test_adapter_on_official_module_names_without_a_native_twin_is_refused(tmp_path):
    folder = write_official_llada(tmp_path / "llada")
    (tmp_path / "adapter").mkdir()
    config = LoraConfig(r=4, target_modules=["q_proj", "attn_out"])
    config.base_model_name_or_path = str(folder)
    config.save_pretrained(tmp_path / "adapter")
    with pytest.raises(ValueError, match=r"targets modules \['attn_out'\] that LLaDAForDiffusionLM does not have"):
        load_model(str(tmp_path / "adapter"))
