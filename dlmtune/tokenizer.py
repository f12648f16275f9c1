"""The embedded default's tokenizer: character-level, built offline with `tokenizers`.

Characters keep the vocabulary tiny (~120 ids), which is what makes the embedded dLLM fast on two CPU
cores (the output head dominates cost at small widths). The reasoning-format tags and the prompts' fixed
phrases are single tokens so sequences stay short, but they are ordinary (non-special) tokens: they
survive decoding. Like LLaDA it has a dedicated mask token, EOS doubles as padding, and a chat template
marks the roles.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

MASK_TOKEN = "<|mask|>"
EOS_TOKEN = "<|endoftext|>"
EOT_TOKEN = "<|eot|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (EOS_TOKEN, MASK_TOKEN, EOT_TOKEN, *ROLE_TOKENS)
WORD_TOKENS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>", "\\boxed{")
# The fixed phrases of the tasks' prompts and the pretraining corpus's, one token each as a BPE vocabulary
# would merge them: prompts are never masked, so this only shortens every sequence (a Sudoku example by
# about 30%), and with it the cost of every training step and sampler call.
PHRASE_TOKENS = ("Solve the following Sudoku puzzle:", "Numbers:", "Target:", "Evaluate:", "Fill in the grid",
                 "Which digits fit the empty cells of the grid")
CHARACTERS = "".join(sorted(set(string.printable) - set("\t\r\x0b\x0c")))

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|eot|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh character-level tokenizer; deterministic, so every build gives the same ids."""
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *CHARACTERS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        mask_token=MASK_TOKEN,
        additional_special_tokens=[EOT_TOKEN, *ROLE_TOKENS],
        padding_side="right",
        model_max_length=4096,
    )
    tokenizer.add_tokens([*WORD_TOKENS, *PHRASE_TOKENS])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
