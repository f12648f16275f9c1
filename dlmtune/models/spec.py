"""What the method needs to know about a dLLM, beyond its weights.

Known families are recognised from `config.model_type` (facts from ML-GSAI/LLaDA and HKUNLP/Dream):
LLaDA's logits are aligned, Dream predicts position i from hidden state i-1, so its logits are shifted.
Special ids come first from explicit overrides, then from the checkpoint (its config.json's
mask/eos/pad ids, then its tokenizer), and only then from the family's constants (LLaDA: mask 126336, EOS
126081, EoT 126348; Dream: mask 151666, EOS/pad 151643), so a small test copy with its own vocabulary
is described by its own ids. A model with no mask id anywhere is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class DLMSpec:
    family: str
    mask_token_id: int
    eos_token_id: int
    pad_token_id: int
    shift_logits: bool = False
    stop_token_ids: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.stop_token_ids:
            object.__setattr__(self, "stop_token_ids", (self.eos_token_id,))


FAMILIES: dict[str, dict[str, Any]] = {
    "llada": {"mask_token_id": 126336, "eos_token_id": 126081, "pad_token_id": 126081,
              "stop_token_ids": (126081, 126348), "shift_logits": False},
    "llada_moe": {"shift_logits": False},  # special ids come from its tokenizer
    "dream": {"mask_token_id": 151666, "eos_token_id": 151643, "pad_token_id": 151643,
              "stop_token_ids": (151643,), "shift_logits": True},
}
MODEL_TYPES = {"llada": "llada", "lladamoe": "llada_moe", "llada_moe": "llada_moe", "dream": "dream"}


def family_of(config: Any) -> str:
    """Family name from a transformers config (`generic` when unknown). LLaDA-MoE is told apart from
    LLaDA by its architecture name, since its config may reuse LLaDA's model_type."""
    model_type = str(getattr(config, "model_type", "") or "").lower().replace("-", "_")
    family = MODEL_TYPES.get(model_type, "generic")
    architectures = " ".join(getattr(config, "architectures", None) or []).lower()
    return "llada_moe" if family == "llada" and "moe" in architectures else family


def describe(config: Any, tokenizer: Any, overrides: dict[str, Any] | None = None, source: str = "model") -> DLMSpec:
    """The DLMSpec of a model from its config, its tokenizer and explicit overrides (highest priority)."""
    family = family_of(config)
    constants = FAMILIES.get(family, {})
    values: dict[str, Any] = {"shift_logits": constants.get("shift_logits", False)}
    for key in ("mask_token_id", "eos_token_id", "pad_token_id"):
        found = [_single_id(getattr(holder, key, None)) for holder in (config, tokenizer)]
        values[key] = next((i for i in found if i is not None), constants.get(key))
    if values["eos_token_id"] == constants.get("eos_token_id"):
        values["stop_token_ids"] = constants.get("stop_token_ids")  # e.g. LLaDA's EoT, in LLaDA's vocabulary
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if values.get("mask_token_id") is None:
        raise ValueError(
            f"{source}: cannot find a mask token. The tokenizer defines no mask_token and the model type "
            f"{getattr(config, 'model_type', None)!r} is not a known dLLM family ({', '.join(FAMILIES)}). "
            "A diffusion LM needs one: set `model.mask_token_id` in the config file, or add a mask token "
            "to the tokenizer."
        )
    if values.get("eos_token_id") is None:
        raise ValueError(f"{source}: no EOS token id; set `model.eos_token_id` in the config file.")
    if values.get("pad_token_id") is None:
        values["pad_token_id"] = values["eos_token_id"]
    values["stop_token_ids"] = tuple(values.get("stop_token_ids") or (values["eos_token_id"],))
    return DLMSpec(family=family, **values)


def _single_id(value: Any) -> int | None:
    """A token id from a config or tokenizer attribute (configs may list several EOS ids: the first)."""
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return None if value is None else int(value)


def with_overrides(spec: DLMSpec, **overrides: Any) -> DLMSpec:
    return replace(spec, **{k: v for k, v in overrides.items() if v is not None})
