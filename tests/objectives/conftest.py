"""Fixtures for the objective tests: a small chat batch from the embedded tokenizer."""

from __future__ import annotations

import pytest
import torch

EXAMPLES = (
    ("What is 2+3?", "<reasoning>2+3=5</reasoning><answer>\\boxed{5}</answer>"),
    ("Numbers: [1, 2, 3]\nTarget: 6", "<reasoning>1+2+3</reasoning><answer>\\boxed{1+2+3}</answer>"),
    ("Hi", "<answer>\\boxed{0}</answer>"),
)


def chat_batch_from(tokenizer, examples=EXAMPLES) -> dict[str, torch.Tensor]:
    """Prompt (chat template with generation prompt) + answer (+ <|eot|>), right-padded with EOS.

    LLaDA's convention: the padded EOS belong to the answer (maskable, trained), so `answer_mask` is True
    from the end of the prompt to the end of the row, and `attention_mask` is all ones."""
    rows, prompt_lengths = [], []
    for question, answer in examples:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                               add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer + "<|eot|>", add_special_tokens=False)["input_ids"]
        rows.append(prompt_ids + answer_ids)
        prompt_lengths.append(len(prompt_ids))
    length = max(map(len, rows))
    input_ids = torch.full((len(rows), length), tokenizer.eos_token_id, dtype=torch.long)
    answer_mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for b, (row, n_prompt) in enumerate(zip(rows, prompt_lengths, strict=True)):
        input_ids[b, : len(row)] = torch.tensor(row)
        answer_mask[b, n_prompt:] = True
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "answer_mask": answer_mask}


@pytest.fixture(autouse=True, scope="package")
def _one_intra_op_thread():
    """Every tensor in this folder is small. With torch's default two intra-op threads on a 2-core machine,
    any other busy process makes each parallel op wait for the descheduled pool thread: measured 20-60x
    slower (the Monte-Carlo tests went from <1 s to ~30 s each). One thread is as fast when idle."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def chat_batch(tokenizer):
    return chat_batch_from(tokenizer)


def spread_model_from(tokenizer, seed: int = 0):
    """The `micro` preset with every matrix redrawn from N(0, 0.3^2). At the preset's own init (std 0.02) the
    fully masked answer positions have entropies equal to ~1e-6 (beta is nearly constant, so WeFT is nearly
    SFT); here beta spans ~0.9 to ~1.9, so importance weighting visibly changes p and the masks."""
    from dlmtune.models.presets import build_preset_model

    model = build_preset_model("micro", tokenizer, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(std=0.3, generator=generator)
    return model


@pytest.fixture
def spread_model(tokenizer):
    return spread_model_from(tokenizer)
