"""A tiny bidirectional denoiser shipped as remote code, the way LLaDA and Dream ship theirs.

Test fixture: copied next to a config.json whose `auto_map` points here, so loading it exercises
transformers' trust_remote_code path without the Hub. Layer names follow LLaDA's remote code
(q_proj/k_proj/v_proj, attn_out, ff_proj, ff_out).
"""

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput


class TinyDLMConfig(PretrainedConfig):
    model_type = "tinydlm"

    def __init__(self, vocab_size=128, hidden_size=32, num_layers=2, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        super().__init__(**kwargs)


class TinyDLMBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        width = config.hidden_size
        self.attn_norm = nn.LayerNorm(width)
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.attn_out = nn.Linear(width, width, bias=False)
        self.ff_norm = nn.LayerNorm(width)
        self.ff_proj = nn.Linear(width, 2 * width, bias=False)
        self.ff_out = nn.Linear(2 * width, width, bias=False)

    def forward(self, x, keys):
        h = self.attn_norm(x)
        q, k, v = (proj(h).unsqueeze(1) for proj in (self.q_proj, self.k_proj, self.v_proj))
        attention = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keys[:, None, None, :])
        x = x + self.attn_out(attention.squeeze(1))
        return x + self.ff_out(nn.functional.gelu(self.ff_proj(self.ff_norm(x))))


class TinyDLMModel(PreTrainedModel):
    config_class = TinyDLMConfig
    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(TinyDLMBlock(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.hidden_size)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed

    def forward(self, input_ids, attention_mask=None, **kwargs):
        keys = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x, keys)
        return MaskedLMOutput(logits=self.lm_head(self.norm(x)))
