"""load_model: presets, saved folders, remote code (offline), family specs, and its refusals."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LlamaForCausalLM

from dlmtune.models.loading import load_model
from dlmtune.tokenizer import build_tokenizer

from .conftest import write_remote_code_model
from .official_layout import remote_code_ran, write_official_llada

IDS = torch.tensor([[5, 40, 41, 42, 1, 1, 43, 0]])


def _logits(model, ids=IDS):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def test_preset_loads_with_embedded_tokenizer_and_spec(tokenizer):
    model, loaded_tokenizer, spec = load_model("preset:micro")
    assert isinstance(model, LlamaForCausalLM) and not model.training
    assert not model.config.is_causal
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    assert (spec.family, spec.mask_token_id, spec.eos_token_id) == ("generic", tokenizer.mask_token_id,
                                                                    tokenizer.eos_token_id)
    again, _, _ = load_model("preset:micro")
    assert torch.equal(_logits(model), _logits(again))  # seed 0 every time


def test_preset_dtype_and_overrides():
    model, _, spec = load_model("preset:micro", dtype="bfloat16", spec_overrides={"mask_token_id": 7})
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert spec.mask_token_id == 7
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        load_model("preset:micro", dtype="fp8")
    with pytest.raises(ValueError, match="known presets: micro, tiny, small"):
        load_model("preset:huge")


def test_saved_folder_round_trip_gives_identical_logits(tmp_path):
    model, tokenizer, spec = load_model("preset:micro")
    model.save_pretrained(tmp_path / "saved")
    tokenizer.save_pretrained(tmp_path / "saved")
    loaded, loaded_tokenizer, loaded_spec = load_model(str(tmp_path / "saved"))
    assert type(loaded) is LlamaForCausalLM and not loaded.config.is_causal
    assert loaded_spec == spec and loaded_tokenizer.mask_token_id == tokenizer.mask_token_id
    assert torch.equal(_logits(model), _logits(loaded))


@pytest.mark.parametrize("causal_lm_entry", [True, False], ids=["llada-like-auto-map", "dream-like-auto-map"])
def test_remote_code_folder_loads_offline(tmp_path, causal_lm_entry):
    """Dream-like maps only AutoModel, so asking AutoModelForCausalLM for it would fail."""
    folder = write_remote_code_model(tmp_path / "tinydlm", causal_lm_entry=causal_lm_entry)
    model, tokenizer, spec = load_model(str(folder), trust_remote_code=True)
    assert type(model).__name__ == "TinyDLMModel" and type(model).__module__.startswith("transformers_modules")
    assert spec.family == "generic" and spec.mask_token_id == tokenizer.mask_token_id
    logits = _logits(model)
    assert logits.shape == (*IDS.shape, len(tokenizer))
    changed = IDS.clone()
    changed[0, -1] = 44
    assert not torch.allclose(_logits(model, changed)[0, 0], logits[0, 0])  # bidirectional: the end reaches 0


def test_unknown_remote_code_is_refused_unless_trusted(remote_code_folder):
    for trust in ({}, {"trust_remote_code": False}):
        with pytest.raises(ValueError, match=r"'tinydlm' exists only as the model's own code \(modeling_tinydlm.py"
                                             r".*--trust-remote-code \(config key model.trust_remote_code: true\)"):
            load_model(str(remote_code_folder), **trust)


def test_llada_without_mask_ids_falls_back_to_the_family_constants(tmp_path):
    tokenizer = build_tokenizer()
    tokenizer.mask_token = None
    folder = write_official_llada(tmp_path / "llada", tokenizer=tokenizer)
    config = json.loads((folder / "config.json").read_text())
    del config["mask_token_id"]
    (folder / "config.json").write_text(json.dumps(config))
    _, loaded_tokenizer, spec = load_model(str(folder))
    assert loaded_tokenizer.mask_token_id is None
    assert (spec.family, spec.mask_token_id) == ("llada", 126336)
    assert spec.eos_token_id == tokenizer.eos_token_id and spec.stop_token_ids == (tokenizer.eos_token_id,)


def test_model_without_mask_token_is_refused(tmp_path):
    tokenizer = build_tokenizer()
    tokenizer.mask_token = None
    folder = write_remote_code_model(tmp_path / "nomask", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="cannot find a mask token.*'tinydlm' is not a known dLLM family"):
        load_model(str(folder), trust_remote_code=True)


@pytest.mark.parametrize("name", ["./no/such/model", "/no/such/model", "runs/a/b"])
def test_missing_path_names_it_and_what_is_expected(name):
    with pytest.raises(FileNotFoundError, match=f"no such model folder: {name}.*save_pretrained.*Hub id"
                                                r".*preset:NAME with NAME in micro, tiny, small"):
        load_model(name)


def test_folder_without_config_is_refused(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_model(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="is a file, not a model folder"):
        load_model(str(tmp_path / "weights.bin"))


def test_trusting_a_known_family_runs_its_own_code_and_names_a_working_version(official_folder):
    """With the flag the checkpoint's own modules are imported (here: stand-ins that only leave a marker, so
    loading fails); the error says which transformers the family's code needs."""
    assert not remote_code_ran(official_folder)
    with pytest.raises(RuntimeError, match=r"own code failed under the installed transformers .*(4\.57|written for)"):
        load_model(str(official_folder), trust_remote_code=True)
    assert remote_code_ran(official_folder)
