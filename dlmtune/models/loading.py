"""One entry point that turns a name into (model, tokenizer, DLMSpec).

A name is `preset:NAME` (a fresh built-in bidirectional Llama, seed 0), `embedded:base-tiny` (the shipped
pretrained embedded default), a `save_pretrained` folder, or a Hub id. LLaDA and Dream ship their modeling code with the weights (`auto_map` in config.json), so
`trust_remote_code=None` trusts a model's own code exactly when its config.json declares an `auto_map`:
naming the model is the consent. Pass `trust_remote_code=False` to refuse it; transformers then loads
the model only if it has a native class for it.

The model class follows the config: `AutoModelForCausalLM` when the model offers one (LLaDA's `auto_map`
maps both AutoModel and AutoModelForCausalLM to LLaDAModelLM; native Llama/Qwen classes), otherwise
`AutoModel` (Dream's `auto_map` has only AutoModel, whose DreamModel carries the LM head).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

from dlmtune.models.embedded import EMBEDDED_BASE, embedded_base_folder
from dlmtune.models.presets import PRESETS, build_preset_model
from dlmtune.models.spec import DLMSpec, describe

logger = logging.getLogger(__name__)

PRESET_PREFIX = "preset:"
DTYPES = ("auto", "float32", "bfloat16", "float16")


def load_model(
    name_or_path: str,
    *,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool | None = None,
    adapter: str | None = None,
    spec_overrides: dict[str, Any] | None = None,
    attn_implementation: str | None = None,
    device_map: Any = None,
) -> tuple[Any, PreTrainedTokenizerBase, DLMSpec]:
    """Load a dLLM with its tokenizer and DLMSpec; `adapter` (a PEFT folder or Hub id) is applied on top.

    A folder holding only a PEFT adapter is loaded as its recorded base plus that adapter. Models
    without a mask token that are not a known family are refused (see `describe`).
    """
    name_or_path = str(name_or_path)
    if name_or_path == EMBEDDED_BASE:
        name_or_path = str(embedded_base_folder())
    if name_or_path.startswith(PRESET_PREFIX):
        model, tokenizer = _load_preset(name_or_path, dtype, attn_implementation, device_map)
    else:
        local = _local_folder(name_or_path)
        if local is not None and not (local / "config.json").exists():
            if adapter is None and (local / "adapter_config.json").exists():
                base = adapter_base(name_or_path)
                logger.info("%s is a PEFT adapter; loading its base %s under it", name_or_path, base)
                return load_model(base, dtype=dtype, trust_remote_code=trust_remote_code, adapter=name_or_path,
                                  spec_overrides=spec_overrides, attn_implementation=attn_implementation,
                                  device_map=device_map)
            raise FileNotFoundError(f"{name_or_path} has no config.json; {_EXPECTED}")
        # An absolute path, so adapters trained on this model record a base that resolves from anywhere.
        source = str(local.resolve()) if local is not None else name_or_path
        model, tokenizer = _load_pretrained(source, dtype, trust_remote_code, attn_implementation, device_map)
    spec = describe(model.config, tokenizer, spec_overrides, source=name_or_path)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model.eval(), tokenizer, spec


def adapter_base(adapter: str) -> str:
    """The base model a PEFT adapter records (`base_model_name_or_path` of its adapter_config.json)."""
    from peft import PeftConfig

    base = PeftConfig.from_pretrained(adapter).base_model_name_or_path
    if not base:
        raise ValueError(f"adapter {adapter} does not record its base model; name the base explicitly")
    return base


_EXPECTED = (
    "expected a save_pretrained folder (config.json + weights + tokenizer), a Hub id such as "
    f"GSAI-ML/LLaDA-8B-Instruct, or {PRESET_PREFIX}NAME with NAME in {', '.join(PRESETS)}"
)


def _local_folder(name_or_path: str) -> Path | None:
    """The local folder a name refers to, None for a Hub id; a missing path that cannot be a Hub id is an
    error here, so a typo is not sent to the Hub."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise FileNotFoundError(f"{name_or_path} is a file, not a model folder; {_EXPECTED}")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        raise FileNotFoundError(f"no such model folder: {name_or_path}; {_EXPECTED}") from None
    if name_or_path.startswith((".", "~")) or path.is_absolute():
        raise FileNotFoundError(f"no such model folder: {name_or_path}; {_EXPECTED}")
    return None


def _torch_dtype(dtype: str | torch.dtype | None) -> str | torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    return dtype if dtype == "auto" else getattr(torch, dtype)


def _load_preset(name: str, dtype, attn_implementation, device_map) -> tuple[PreTrainedModel, Any]:
    from dlmtune.tokenizer import build_tokenizer

    preset = name[len(PRESET_PREFIX):]
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; known presets: {', '.join(PRESETS)}")
    tokenizer = build_tokenizer()
    model = build_preset_model(preset, tokenizer, seed=0)
    model.name_or_path = name  # recorded by PEFT as an adapter's base, so `merge` can rebuild it
    if attn_implementation is not None:
        model.set_attn_implementation(attn_implementation)
    torch_dtype = _torch_dtype(dtype)
    if isinstance(torch_dtype, torch.dtype):
        model = model.to(torch_dtype)
    if device_map is not None:
        if isinstance(device_map, dict):
            raise ValueError("presets are small: pass one device (or 'auto') as device_map, not a mapping")
        if device_map == "auto":
            device_map = "cuda" if torch.cuda.is_available() else "cpu"
        model = model.to(device_map)
    return model, tokenizer


def _load_pretrained(name_or_path: str, dtype, trust_remote_code, attn_implementation, device_map):
    try:
        config_dict, _ = PretrainedConfig.get_config_dict(name_or_path)
    except OSError as error:
        raise OSError(f"cannot load {name_or_path!r} (not a local folder; the Hub said: {error}); {_EXPECTED}") from error
    auto_map = config_dict.get("auto_map") or {}
    if trust_remote_code is None:
        trust_remote_code = bool(auto_map)
        if trust_remote_code:
            logger.info("%s ships its own modeling code (auto_map); running it", name_or_path)
    elif not trust_remote_code and auto_map and config_dict.get("model_type") not in CONFIG_MAPPING:
        raise ValueError(
            f"{name_or_path}: model type {config_dict.get('model_type')!r} exists only as the model's own code "
            f"(auto_map {auto_map}), and trust_remote_code=False forbids running it; "
            "pass trust_remote_code=True (or leave it unset) to load it"
        )
    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    kwargs: dict[str, Any] = {"config": config, "trust_remote_code": trust_remote_code}
    for key, value in (("dtype", _torch_dtype(dtype)), ("attn_implementation", attn_implementation),
                       ("device_map", device_map)):
        if value is not None:
            kwargs[key] = value
    model = _model_class(config, trust_remote_code).from_pretrained(name_or_path, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    return model, tokenizer


def _model_class(config: PretrainedConfig, trust_remote_code: bool):
    auto_map = (getattr(config, "auto_map", None) or {}) if trust_remote_code else {}
    if "AutoModelForCausalLM" in auto_map or type(config) in MODEL_FOR_CAUSAL_LM_MAPPING:
        return AutoModelForCausalLM
    return AutoModel
