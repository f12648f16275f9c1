"""One entry point that turns a name into (model, tokenizer, DLMSpec).

A name is `preset:NAME` (a fresh built-in bidirectional Llama, seed 0), `embedded:base-tiny` (the shipped
pretrained embedded default), a `save_pretrained` folder, or a Hub id.

No code from a model folder runs unless asked. LLaDA and Dream ship their modeling code with the weights
(`auto_map` in config.json); here they load into dlmtune's native classes (models/llada.py,
models/dream.py, registered under the official model_type), so their folders and Hub ids work with no
remote code at all. `trust_remote_code=True` (config key `model.trust_remote_code`, CLI
`--trust-remote-code`) is the only way to run a model's own code, as in transformers, TRL and lm-eval; a
folder whose `auto_map` names a model type with no native class is refused without it, naming the module
that would run. The same flag governs the base an adapter names.

The model class follows the config: `AutoModelForCausalLM` when the model offers one (the native classes,
LLaDA's `auto_map`, Llama/Qwen), otherwise `AutoModel` (Dream's `auto_map` has only AutoModel, whose
DreamModel carries the LM head).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import transformers
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

from dlmtune.models import dream, llada  # noqa: F401  (registers the native LLaDA and Dream classes)
from dlmtune.models.embedded import EMBEDDED_BASE, embedded_base_folder
from dlmtune.models.presets import PRESETS, build_preset_model
from dlmtune.models.spec import MODEL_TYPES, DLMSpec, describe

logger = logging.getLogger(__name__)

PRESET_PREFIX = "preset:"
DTYPES = ("auto", "float32", "bfloat16", "float16")


def load_model(
    name_or_path: str,
    *,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
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
        model = apply_adapter(model, adapter)
    return model.eval(), tokenizer, spec


def apply_adapter(model: PreTrainedModel, adapter: str):
    """`model` with the PEFT adapter `adapter` on top. Adapters trained on LLaDA's official code load on the
    native class: PEFT renames their weights with the class's `_checkpoint_conversion_mapping`; the module
    names they target must exist here too (q_proj/k_proj/v_proj/up_proj do; attn_out, ff_proj, ff_out do not)."""
    from peft import PeftConfig, PeftModel

    targets = PeftConfig.from_pretrained(adapter).target_modules
    if targets is not None and not isinstance(targets, str):
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = sorted(set(targets) - names)
        if missing:
            raise ValueError(
                f"adapter {adapter} targets modules {missing} that {type(model).__name__} does not have (its "
                f"layers: {', '.join(sorted(names - {''}))}). Adapters on LLaDA's official code load natively "
                "when they target q_proj/k_proj/v_proj/up_proj; for others load the base with trust_remote_code"
            )
    return PeftModel.from_pretrained(model, adapter)


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


def _load_pretrained(name_or_path: str, dtype, trust_remote_code: bool, attn_implementation, device_map):
    try:
        config_dict, _ = PretrainedConfig.get_config_dict(name_or_path)
    except OSError as error:
        raise OSError(f"cannot load {name_or_path!r} (not a local folder; the Hub said: {error}); {_EXPECTED}") from error
    auto_map = config_dict.get("auto_map") or {}
    model_type = config_dict.get("model_type")
    if auto_map and not trust_remote_code:
        if model_type not in CONFIG_MAPPING:
            raise ValueError(
                f"{name_or_path}: model type {model_type!r} exists only as the model's own code "
                f"({', '.join(_remote_modules(auto_map))}, named by auto_map in its config.json), and dlmtune runs "
                "a model's code only when asked. If you trust it, pass --trust-remote-code (config key "
                "model.trust_remote_code: true)"
            )
        logger.info("%s: loading %s natively; its own code (%s) is not run", name_or_path, model_type,
                    ", ".join(_remote_modules(auto_map)))
    kwargs: dict[str, Any] = {"output_loading_info": True}
    for key, value in (("dtype", _torch_dtype(dtype)), ("attn_implementation", attn_implementation),
                       ("device_map", device_map)):
        if value is not None:
            kwargs[key] = value
    try:
        if trust_remote_code and auto_map:
            config, model_class = _remote_classes(name_or_path, auto_map)
        else:
            config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
            model_class = _model_class(config)
        model, info = model_class.from_pretrained(name_or_path, config=config, **kwargs)
        tokenizer = _load_tokenizer(name_or_path, trust_remote_code)
    except Exception as error:
        if trust_remote_code and auto_map:
            raise RuntimeError(_remote_code_failure(name_or_path, config_dict, error)) from error
        raise
    if info["missing_keys"]:
        raise ValueError(f"{name_or_path}: the checkpoint lacks weights {sorted(info['missing_keys'])[:8]} "
                         f"of {type(model).__name__}; refusing to start from randomly initialised layers")
    return model, tokenizer


# The remote tokenizer classes of known families and the transformers class that reads the same files.
NATIVE_TOKENIZERS = {"DreamTokenizer": "Qwen2Tokenizer"}
# Transformers versions under which a family's own code was checked to work (see the project's notes).
REMOTE_CODE_TRANSFORMERS = {"llada": "4.57"}


def _load_tokenizer(name_or_path: str, trust_remote_code: bool) -> PreTrainedTokenizerBase:
    """The tokenizer; without trust, a known family's remote tokenizer class is replaced by transformers'
    equivalent (Dream's DreamTokenizer is Qwen2's byte-level BPE over the same vocab.json/merges.txt)."""
    if not trust_remote_code:
        from transformers.models.auto.tokenization_auto import get_tokenizer_config

        declared = get_tokenizer_config(name_or_path).get("tokenizer_class")
        if declared in NATIVE_TOKENIZERS:
            return getattr(transformers, NATIVE_TOKENIZERS[declared]).from_pretrained(name_or_path)
    return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)


def _remote_modules(auto_map: dict[str, Any]) -> list[str]:
    """The module files an auto_map would import (`modeling_llada.LLaDAModelLM` -> modeling_llada.py)."""
    refs = [ref for value in auto_map.values() for ref in (value if isinstance(value, list | tuple) else [value])]
    return sorted({ref.split("--")[-1].rsplit(".", 1)[0] + ".py" for ref in refs if ref})


def _remote_code_failure(name_or_path: str, config_dict: dict[str, Any], error: Exception) -> str:
    works = REMOTE_CODE_TRANSFORMERS.get(MODEL_TYPES.get(str(config_dict.get("model_type")).lower(), ""))
    need = (f"it is known to work with transformers {works}" if works else
            f"it was written for transformers {config_dict.get('transformers_version', '(version not recorded)')}")
    native = " or drop trust_remote_code to load dlmtune's native class" if config_dict.get("model_type") in CONFIG_MAPPING else ""
    return (f"{name_or_path}: the model's own code failed under the installed transformers "
            f"{transformers.__version__} ({type(error).__name__}: {error}); {need}: install that version{native}")


def _model_class(config: PretrainedConfig):
    return AutoModelForCausalLM if type(config) in MODEL_FOR_CAUSAL_LM_MAPPING else AutoModel


def _remote_classes(name_or_path: str, auto_map: dict[str, Any]) -> tuple[PretrainedConfig, type]:
    """The config and model class named by `auto_map`, imported from the model's own code. Looked up
    directly: the Auto classes would prefer dlmtune's native class registered under the same model_type.
    Registered for their auto classes, so a saved copy carries the code it needs (as transformers does)."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    if "AutoConfig" in auto_map:
        config_class = get_class_from_dynamic_module(auto_map["AutoConfig"], name_or_path)
        config_class.register_for_auto_class()
        config = config_class.from_pretrained(name_or_path)
    else:
        config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=True)
    auto_class = next((name for name in ("AutoModelForCausalLM", "AutoModel") if name in auto_map), None)
    if auto_class is None:
        return config, _model_class(config)
    model_class = get_class_from_dynamic_module(auto_map[auto_class], name_or_path)
    model_class.register_for_auto_class(auto_class)
    return config, model_class
