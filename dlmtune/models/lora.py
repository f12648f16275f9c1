"""LoRA adapters (the papers' setup: r=128, alpha=256, dropout 0.05 on q/k/v) and merging them back.

The LoraConfig sets no task type: PEFT's CAUSAL_LM wrapper assumes a left-to-right LM (labels shifting,
generation hooks), while a dLLM is a bidirectional denoiser called with plain input_ids. q_proj/k_proj/
v_proj are the attention projections' names in LLaDA's official code (LLaDALlamaBlock), in the native
LLaDA and Dream classes (Llama / Qwen2 layout) and in the built-in presets, so the defaults fit all.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from dlmtune.models.loading import adapter_base, load_model

logger = logging.getLogger(__name__)

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj")


def apply_lora(
    model: torch.nn.Module,
    *,
    r: int = 128,
    alpha: int = 256,
    dropout: float = 0.05,
    target_modules: Sequence[str] | str = DEFAULT_TARGETS,
    modules_to_save: Sequence[str] | None = None,
) -> PeftModel:
    """Wrap `model` with fresh LoRA adapters; only the adapters (and `modules_to_save`) stay trainable.

    `target_modules` entries match a module's name or its dotted suffix, as in PEFT; a single string is
    handed to PEFT unchanged (a regex or "all-linear"). Names that match nothing are an error listing the
    model's linear layers, since PEFT would otherwise train a different set than asked for.
    """
    if not isinstance(target_modules, str):
        target_modules = list(target_modules)
        names = [name for name, _ in model.named_modules()]
        missing = [t for t in target_modules if not any(n == t or n.endswith("." + t) for n in names)]
        if missing:
            raise ValueError(
                f"LoRA target modules {missing} are not in the model; its linear layers are named "
                f"{', '.join(linear_module_names(model))}"
            )
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                        modules_to_save=list(modules_to_save) if modules_to_save else None)
    return get_peft_model(model, config)


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """The distinct last names of the model's linear layers (what `target_modules` can name)."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear)})


def merge_adapter(base: str | None, adapter: str, out: str | os.PathLike, dtype: str | torch.dtype | None = None,
                  trust_remote_code: bool = False) -> Path:
    """Fold a LoRA adapter into its base and save a plain model + tokenizer folder at `out`.

    `base=None` uses the base the adapter records; its own code runs only with `trust_remote_code`. The folder is written under a temporary name beside
    `out` and renamed at the end, so an interrupted merge leaves no half-written model behind.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not empty; choose another --out")
    model, tokenizer, _ = load_model(base or adapter_base(adapter), dtype=dtype, adapter=adapter,
                                     trust_remote_code=trust_remote_code)
    merged = model.merge_and_unload()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("merged %s into %s", adapter, out)
    return out
