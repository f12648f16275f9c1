"""Dream (Dream 7B: Diffusion Large Language Models, arXiv 2508.15487) as a native transformers model.

Dream is Qwen2 (q/k/v biases, grouped-query attention, RMSNorm, rotary embeddings with the checkpoint's
rope_theta) with bidirectional attention, initialised from Qwen2.5 and trained to predict the token at
position i from hidden state i-1 (facts from the official modeling_dream.py). The model here is
transformers' own `Qwen2ForCausalLM` with `is_causal=False`; its logits are returned unshifted, exactly
as the official DreamModel returns them, and the shift lives in `DLMSpec.shift_logits` (set for the Dream
family), which every objective and the sampler apply.

The official checkpoints already use Qwen2's parameter names (`model.layers.N.self_attn.q_proj`, ...,
`lm_head`) and config fields, so they load directly, with no key mapping; the config class registers the
official `model_type` ("Dream"), so `AutoConfig.from_pretrained(folder)` needs no remote code. The
`auto_map` of an official config is dropped, so saved folders never point at remote code.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

# Official fields with no counterpart in the Qwen2 config (the Hub's generation settings).
DROPPED_FIELDS = ("auto_map",)


class DreamConfig(Qwen2Config):
    """A bidirectional Qwen2 config under Dream's official model_type."""

    model_type = "Dream"

    def __post_init__(self, **kwargs):
        for key in DROPPED_FIELDS:
            kwargs.pop(key, None)
        kwargs["is_causal"] = False
        super().__post_init__(**kwargs)


class DreamForDiffusionLM(Qwen2ForCausalLM):
    """Dream's denoiser: the Qwen2 stack without the causal mask; logits unshifted (see the module doc)."""

    config_class = DreamConfig


AutoConfig.register(DreamConfig.model_type, DreamConfig)
AutoModel.register(DreamConfig, DreamForDiffusionLM)  # the official auto_map's AutoModel has the LM head
AutoModelForCausalLM.register(DreamConfig, DreamForDiffusionLM)
