from __future__ import annotations

import json
import logging

import pytest

from dlmtune.data import DataConfig, DataError, build_sft_dataset, encode_example
from dlmtune.data.sft import example_parts
from dlmtune.data.sources import Record


def render_prompt(tokenizer, messages):
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_sequence_is_prompt_then_response_then_eos(tokenizer, pairs, write_jsonl):
    dataset, report = build_sft_dataset(tokenizer, DataConfig(str(write_jsonl(pairs))))
    row = dataset[0]
    prompt = render_prompt(tokenizer, [{"role": "user", "content": "What is 2+3?"}])
    assert row["prompt_length"] == len(prompt)
    assert row["input_ids"][: len(prompt)] == prompt
    assert tokenizer.decode(row["input_ids"][len(prompt) :]) == "5" + tokenizer.eos_token
    assert row["input_ids"][-1] == tokenizer.eos_token_id
    assert row["length"] == len(row["input_ids"])
    assert report["examples"] == 3 and report["tokens"] == sum(dataset["length"])
    assert report["max_length_seen"] == max(dataset["length"])


def test_missing_field_names_field_example_line_and_columns(tokenizer, pairs, write_jsonl):
    path = write_jsonl([*pairs, {"prompt": "Why?", "answer": "Because."}])
    with pytest.raises(DataError, match=rf"^{path}:4 \(example 3\): missing field 'response'; columns present: prompt, answer"):
        build_sft_dataset(tokenizer, DataConfig(str(path)))


def test_record_in_neither_form(tokenizer, write_jsonl):
    path = write_jsonl([{"question": "Why?"}])
    with pytest.raises(DataError, match="expected 'prompt' and 'response', or 'messages'; columns present: question"):
        build_sft_dataset(tokenizer, DataConfig(str(path)))


@pytest.mark.parametrize(("record", "message"), [
    ({"prompt": "Q", "response": "  "}, "empty response"),
    ({"prompt": "Q", "response": 5}, "field 'response': expected a string, got int"),
    ({"prompt": None, "response": "A"}, "field 'prompt': expected a string, got NoneType"),
    ({"messages": "hi"}, "field 'messages': expected a non-empty list of messages"),
    ({"messages": [{"role": "user"}]}, r"messages\[0\]: expected \{'role': str, 'content': str\}"),
    ({"messages": [{"role": "user", "content": "Q"}]}, "no assistant message"),
])
def test_unusable_records(tokenizer, write_jsonl, record, message):
    with pytest.raises(DataError, match=message):
        build_sft_dataset(tokenizer, DataConfig(str(write_jsonl([record]))))


def test_custom_columns(tokenizer, write_jsonl):
    path = write_jsonl([{"q": "Q", "a": "A"}])
    dataset, _ = build_sft_dataset(tokenizer, DataConfig(str(path), prompt_column="q", response_column="a"))
    assert tokenizer.decode(dataset[0]["input_ids"]).endswith("<|user|>Q<|eot|><|assistant|>A<|endoftext|>")


def test_response_template(tokenizer, write_jsonl):
    path = write_jsonl([{"prompt": "Q", "steps": ["s1", "s2"], "final": "42"}])
    config = DataConfig(str(path), response_template="<reasoning>{steps[1]}</reasoning><answer>{final}</answer>")
    dataset, _ = build_sft_dataset(tokenizer, config)
    answer = dataset[0]["input_ids"][dataset[0]["prompt_length"] :]
    assert tokenizer.decode(answer) == "<reasoning>s2</reasoning><answer>42</answer><|endoftext|>"


def test_response_template_missing_column(tokenizer, write_jsonl):
    path = write_jsonl([{"prompt": "Q", "final": "42"}])
    config = DataConfig(str(path), response_template="{steps}{final}")
    with pytest.raises(DataError, match=r"\(example 0\): missing field 'steps' \(used by response_template\)"):
        build_sft_dataset(tokenizer, config)


def test_messages_form_trains_on_last_assistant_turn(tokenizer, write_jsonl):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    dataset, _ = build_sft_dataset(tokenizer, DataConfig(str(write_jsonl([{"messages": messages}]))))
    row = dataset[0]
    assert row["input_ids"][: row["prompt_length"]] == render_prompt(tokenizer, messages[:3])
    assert tokenizer.decode(row["input_ids"][row["prompt_length"] :]) == "4<|endoftext|>"


def test_system_prompt_as_system_message(tokenizer, pairs, write_jsonl):
    config = DataConfig(str(write_jsonl(pairs)), system_prompt="Be brief.", system_prompt_mode="system")
    dataset, _ = build_sft_dataset(tokenizer, config)
    prompt = tokenizer.decode(dataset[0]["input_ids"][: dataset[0]["prompt_length"]])
    assert prompt == "<|system|>Be brief.<|eot|><|user|>What is 2+3?<|eot|><|assistant|>"


def test_system_prompt_in_user_turn_matches_evaluation():
    config = DataConfig("d.jsonl", system_prompt="Be brief.")
    messages, _ = example_parts(Record(0, "d.jsonl:1", {"prompt": "Q", "response": "A"}), config)
    assert messages == [{"role": "user", "content": "Be brief.\n\nQ"}]


def test_record_system_message_wins(tokenizer):
    config = DataConfig("d.jsonl", system_prompt="Be brief.")
    own = [{"role": "system", "content": "Own."}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    messages, response = example_parts(Record(0, "d.jsonl:1", {"messages": own}), config)
    assert (messages, response) == (own[:2], "A")


def test_double_newline_prompt_encodes(tokenizer):
    assert encode_example(tokenizer, [{"role": "user", "content": "Be brief.\n\nQ"}], "A", 64) is not None


def test_truncation_keeps_prompt_and_final_eos(tokenizer, write_jsonl):
    path = write_jsonl([{"prompt": "Q", "response": "x" * 50}, {"prompt": "Q", "response": "short"}])
    prompt_length = len(render_prompt(tokenizer, [{"role": "user", "content": "Q"}]))
    dataset, report = build_sft_dataset(tokenizer, DataConfig(str(path), max_length=prompt_length + 10))
    row = dataset[0]
    assert row["length"] == prompt_length + 10 == len(row["input_ids"])
    assert tokenizer.decode(row["input_ids"][prompt_length:]) == "x" * 9 + "<|endoftext|>"
    assert (report["truncated"], report["dropped"], report["examples"]) == (1, 0, 2)
    assert report["max_length_seen"] == prompt_length + 51


def test_drop_leaves_long_examples_out(tokenizer, write_jsonl):
    path = write_jsonl([{"prompt": "Q", "response": "x" * 50}, {"prompt": "Q", "response": "short"}])
    dataset, report = build_sft_dataset(tokenizer, DataConfig(str(path), max_length=30, overflow="drop"))
    assert dataset["example_id"] == [1]
    assert (report["truncated"], report["dropped"], report["examples"]) == (0, 1, 1)


def test_prompt_too_long_is_reported(tokenizer, write_jsonl, caplog):
    path = write_jsonl([{"prompt": "q" * 40, "response": "A"}, {"prompt": "Q", "response": "A"}])
    with caplog.at_level(logging.WARNING, logger="dlmtune.data.sft"):
        dataset, report = build_sft_dataset(tokenizer, DataConfig(str(path), max_length=30))
    assert dataset["example_id"] == [1]
    assert (report["prompt_too_long"], report["truncated"], report["dropped"]) == (1, 0, 0)
    assert "1 examples left out: their prompt alone fills max_length=30" in caplog.text


def test_no_usable_example_is_an_error(tokenizer, write_jsonl):
    path = write_jsonl([{"prompt": "q" * 40, "response": "A"}])
    with pytest.raises(DataError, match="no usable example within max_length=30 .*prompt_too_long: 1"):
        build_sft_dataset(tokenizer, DataConfig(str(path), max_length=30))


def test_encode_example(tokenizer):
    messages = [{"role": "user", "content": "Q"}]
    prompt = render_prompt(tokenizer, messages)
    ids, prompt_length = encode_example(tokenizer, messages, "AB", max_length=100)
    assert prompt_length == len(prompt) and ids == prompt + tokenizer.encode("AB") + [tokenizer.eos_token_id]
    cut, _ = encode_example(tokenizer, messages, "ABCD", max_length=len(prompt) + 2)
    assert cut == prompt + tokenizer.encode("A") + [tokenizer.eos_token_id]
    assert encode_example(tokenizer, messages, "ABCD", max_length=len(prompt) + 2, overflow="drop") is None
    assert encode_example(tokenizer, messages, "ABCD", max_length=len(prompt) + 1) is None


def test_example_ids_and_fingerprint_are_stable(tokenizer, tmp_path):
    records = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(30)]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = DataConfig(str(path), limit=8, shuffle_seed=3)
    first, report = build_sft_dataset(tokenizer, config)
    second, again = build_sft_dataset(tokenizer, config)
    assert first["example_id"] == second["example_id"]
    for row in first:
        assert tokenizer.decode(row["input_ids"]).endswith(f"a{row['example_id']}<|endoftext|>")
    assert report["fingerprint"] == again["fingerprint"] == first._fingerprint
    other, changed = build_sft_dataset(tokenizer, DataConfig(str(path), limit=8, shuffle_seed=4))
    assert changed["fingerprint"] != report["fingerprint"]


def test_synthetic_source_builds(tokenizer):
    dataset, report = build_sft_dataset(tokenizer, DataConfig("synthetic:sudoku,countdown", synthetic_size=4))
    assert report["examples"] == 8 and dataset["example_id"] == list(range(8))
    for row in dataset:
        assert "<answer>" in tokenizer.decode(row["input_ids"][row["prompt_length"] :])
        assert row["input_ids"][-1] == tokenizer.eos_token_id


def test_turns_after_the_last_assistant_message_are_dropped():
    turns = [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "Thanks!"},
    ]
    messages, response = example_parts(Record(0, "d.jsonl:1", {"messages": turns}), DataConfig("d.jsonl"))
    assert (messages, response) == (turns[:1], "A")


def test_plain_text_documents_are_all_answer(tokenizer, write_jsonl):
    path = write_jsonl([{"text": "1+2=3"}, {"text": "row 1: 1234"}])
    dataset, _ = build_sft_dataset(tokenizer, DataConfig(source=str(path), text_column="text"))
    first = dataset[0]
    assert first["prompt_length"] == 0
    assert first["input_ids"] == tokenizer("1+2=3", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with pytest.raises(DataError, match=r"d.jsonl:1 .*'text'"):
        build_sft_dataset(tokenizer, DataConfig(source=str(write_jsonl([{"body": "x"}])), text_column="text"))
