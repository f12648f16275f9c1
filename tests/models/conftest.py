"""Model folders written on the fly: a remote-code dLLM of an unknown family, and tiny LLaDA / Dream
folders in the official layout (official_layout.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dlmtune.tokenizer import build_tokenizer

from .official_layout import write_official_dream, write_official_llada
from .remote_code import modeling_tinydlm

REMOTE_CODE = Path(modeling_tinydlm.__file__)


def write_remote_code_model(folder: Path, *, causal_lm_entry: bool = False, tokenizer=None) -> Path:
    """A save_pretrained folder whose config.json `auto_map` points at its own modeling_tinydlm.py.

    `causal_lm_entry` adds an AutoModelForCausalLM entry, as LLaDA's config has; without it the folder
    looks like Dream's (AutoModel only)."""
    tokenizer = tokenizer or build_tokenizer()
    model_class = modeling_tinydlm.TinyDLMModel
    config = model_class.config_class(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id)
    config.auto_map = {"AutoConfig": f"modeling_tinydlm.{model_class.config_class.__name__}",
                       "AutoModel": f"modeling_tinydlm.{model_class.__name__}"}
    if causal_lm_entry:
        config.auto_map["AutoModelForCausalLM"] = config.auto_map["AutoModel"]
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    shutil.copy(REMOTE_CODE, folder / REMOTE_CODE.name)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True, scope="package")
def _one_intra_op_thread():
    """Tiny tensors: one thread avoids waiting on a descheduled pool thread on the 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def remote_code_folder(tmp_path):
    return write_remote_code_model(tmp_path / "tinydlm")



OFFICIAL_WRITERS = {"llada": write_official_llada, "dream": write_official_dream}


@pytest.fixture(params=sorted(OFFICIAL_WRITERS))
def official_folder(request, tmp_path):
    """A tiny LLaDA or Dream folder in the official layout (auto_map, official names, marker modules)."""
    return OFFICIAL_WRITERS[request.param](tmp_path / request.param)
