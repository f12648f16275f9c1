"""Models: what a dLLM is (DLMSpec), how to load one, built-in presets, LoRA and merging."""

from dlmtune.models.loading import adapter_base, load_model
from dlmtune.models.lora import apply_lora, linear_module_names, merge_adapter
from dlmtune.models.presets import PRESETS, build_preset_model
from dlmtune.models.spec import DLMSpec, describe

__all__ = [
    "PRESETS",
    "DLMSpec",
    "adapter_base",
    "apply_lora",
    "build_preset_model",
    "describe",
    "linear_module_names",
    "load_model",
    "merge_adapter",
]
