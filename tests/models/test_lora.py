"""apply_lora and merge_adapter: trainable set, target-name errors, exact merges, the `merge` command."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from dlmtune.cli import app
from dlmtune.models.loading import load_model
from dlmtune.models.lora import apply_lora, merge_adapter

from .conftest import write_remote_code_model

IDS = torch.tensor([[5, 40, 41, 42, 1, 1, 43, 0], [6, 50, 1, 1, 1, 52, 0, 0]])


def _logits(model):
    with torch.no_grad():
        return model(input_ids=IDS, attention_mask=torch.ones_like(IDS)).logits


def _lora_with_nonzero_b(model, seed=0, **kwargs):
    """Fresh LoRA B matrices are zero (the adapter is a no-op); random ones make merging observable."""
    lora = apply_lora(model, r=4, alpha=8, dropout=0.0, **kwargs)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    return lora.eval()


def test_only_lora_parameters_train_and_their_count_matches_r():
    model, _, _ = load_model("preset:micro")
    frozen = {name: p.detach().clone() for name, p in model.named_parameters()}
    lora = apply_lora(model, r=4, alpha=8)
    trainable = {name: p.numel() for name, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all("lora_A" in name or "lora_B" in name for name in trainable)
    hidden, layers = model.config.hidden_size, model.config.num_hidden_layers
    assert sum(trainable.values()) == layers * 3 * 4 * (hidden + hidden)  # q, k, v: r x (in + out) each
    assert {name.split(".")[-4] for name in trainable} == {"q_proj", "k_proj", "v_proj"}
    assert lora.peft_config["default"].task_type is None and lora.peft_config["default"].lora_dropout == 0.05
    assert all(torch.equal(p, frozen[n]) for n, p in lora.get_base_model().named_parameters() if n in frozen)


def test_paper_defaults():
    config = apply_lora(load_model("preset:micro")[0]).peft_config["default"]
    assert (config.r, config.lora_alpha, config.lora_dropout) == (128, 256, 0.05)
    assert config.target_modules == {"q_proj", "k_proj", "v_proj"}


def test_unknown_target_modules_list_the_linear_layers():
    model, _, _ = load_model("preset:micro")
    with pytest.raises(ValueError, match=r"\['att_proj'\] are not in the model.*down_proj, gate_proj, k_proj, lm_head, "
                                         r"o_proj, q_proj, up_proj, v_proj"):
        apply_lora(model, target_modules=("q_proj", "att_proj"))


def test_modules_to_save_train_in_full():
    lora = apply_lora(load_model("preset:micro")[0], r=4, modules_to_save=["lm_head"])
    names = [name for name, p in lora.named_parameters() if p.requires_grad]
    assert any("lm_head.modules_to_save" in name for name in names)


def test_lora_on_remote_code_model_names_its_own_layers(remote_code_folder):
    model, _, _ = load_model(str(remote_code_folder), trust_remote_code=True)
    lora = apply_lora(model, r=4, target_modules=["q_proj", "ff_proj"])
    assert {name.split(".")[-4] for name, p in lora.named_parameters() if p.requires_grad} == {"q_proj", "ff_proj"}


@pytest.fixture
def micro_adapter(tmp_path):
    """A micro-preset LoRA adapter with non-zero B, saved; and the adapted model's logits."""
    lora = _lora_with_nonzero_b(load_model("preset:micro")[0])
    lora.save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter", _logits(lora)


def test_adapter_loads_on_its_base(micro_adapter, tmp_path):
    adapter, expected = micro_adapter
    base, _, _ = load_model("preset:micro")
    assert not torch.allclose(_logits(base), expected, atol=1e-3)  # the adapter matters
    with_adapter, _, _ = load_model("preset:micro", adapter=str(adapter))
    assert torch.allclose(_logits(with_adapter), expected, atol=1e-6)
    alone, _, spec = load_model(str(adapter))  # an adapter folder alone: its recorded base under it
    assert torch.allclose(_logits(alone), expected, atol=1e-6) and spec.family == "generic"


def test_merged_model_matches_the_adapted_model(micro_adapter, tmp_path):
    adapter, expected = micro_adapter
    out = merge_adapter(None, str(adapter), tmp_path / "merged")  # base read from adapter_config.json
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert torch.allclose(_logits(merged), expected, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "merged"]  # no staging folder left


def test_merge_refuses_a_non_empty_out(micro_adapter, tmp_path):
    adapter, _ = micro_adapter
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="taken already exists"):
        merge_adapter("preset:micro", str(adapter), tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


def test_merge_of_trusted_remote_code_model_keeps_its_code(tmp_path):
    folder = write_remote_code_model(tmp_path / "tinydlm")
    model = load_model(str(folder), trust_remote_code=True)[0]
    lora = _lora_with_nonzero_b(model, target_modules=["q_proj", "v_proj", "ff_out"])
    lora.save_pretrained(tmp_path / "adapter")
    with pytest.raises(ValueError, match="--trust-remote-code"):  # the base an adapter names: same rule
        merge_adapter(None, str(tmp_path / "adapter"), tmp_path / "refused")
    out = merge_adapter(None, str(tmp_path / "adapter"), tmp_path / "merged", trust_remote_code=True)
    assert (out / "modeling_tinydlm.py").exists()
    merged, _, _ = load_model(str(out), trust_remote_code=True)
    assert torch.allclose(_logits(merged), _logits(lora), atol=1e-5)


def test_merge_command(micro_adapter, tmp_path):
    adapter, expected = micro_adapter
    out = tmp_path / "cli-merged"
    result = CliRunner().invoke(app, ["merge", "--adapter", str(adapter), "--out", str(out), "--base", "preset:micro",
                                      "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    assert f"merged model written to {out}" in result.output
    merged, tokenizer, _ = load_model(str(out))
    assert torch.allclose(_logits(merged), expected, atol=1e-5) and tokenizer.mask_token_id is not None
