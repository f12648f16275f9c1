"""Token ranking by hand, and the picture files from a real (micro) model."""

from __future__ import annotations

import json

import pytest

from dlmtune.entropy_picture import AnswerEntropy, picture_for_examples, rank_tokens
from dlmtune.models.spec import describe


def test_rank_tokens_by_hand():
    records = [AnswerEntropy([1, 2, 2], [0.5, 1.0, 2.0]), AnswerEntropy([3, 2, 1], [9.0, 3.0, 0.1])]
    # token 2: 3 times, mean 2.0; token 1: twice, mean 0.3; token 3: once (cut by top=2)
    assert rank_tokens(records, top=2) == [(2, 3, pytest.approx(2.0)), (1, 2, pytest.approx(0.3))]


def test_picture_files(tmp_path, tokenizer, micro_model):
    spec = describe(micro_model.config, tokenizer)
    examples = [{"prompt": "Numbers: [1, 2, 3]\nTarget: 6", "response": "<reasoning>\n1+2=3\n3+3=6\n</reasoning>"
                 "\n<answer>\n\\boxed{1+2+3}\n</answer>"}] * 2
    ranking = picture_for_examples(micro_model, tokenizer, spec, examples, tmp_path / "e.png", title="micro")
    assert (tmp_path / "e.png").stat().st_size > 0
    assert "nats" in (tmp_path / "e.html").read_text()
    assert ranking and all(mean >= 0 for _, _, mean in ranking)


def test_entropy_command_reads_files_as_training_does(tmp_path, tokenizer, micro_model):
    """A file source gives the same picture as the same pairs passed in directly; a bad record is named by
    file and line before the model loads."""
    from dlmtune.data import DataError
    from dlmtune.entropy_picture import entropy_command

    micro_model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    examples = [{"prompt": f"Numbers: [{i}, 2, 3]", "response": f"{i}+2={i + 2}"} for i in range(3)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(ex) + "\n" for ex in examples))
    from_file = entropy_command(str(tmp_path / "model"), str(data), tmp_path / "file.png")
    spec = describe(micro_model.config, tokenizer)
    direct = picture_for_examples(micro_model, tokenizer, spec, examples, tmp_path / "direct.png", title="micro")
    assert from_file == direct
    data.write_text(json.dumps(examples[0]) + "\n" + json.dumps({"prompt": "no answer"}) + "\n")
    with pytest.raises(DataError, match=r"pairs\.jsonl:2 .*missing field 'response'"):
        entropy_command(str(tmp_path / "missing-model"), str(data), tmp_path / "bad.png")
