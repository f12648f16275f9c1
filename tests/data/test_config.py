from __future__ import annotations

import pytest

from dlmtune.data import DATASET_PRESETS, DataConfig, DataError
from dlmtune.data.sft import example_parts
from dlmtune.data.sources import Record
from dlmtune.tasks import SYSTEM_PROMPT


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("source", " "),
        ("overflow", "cut"),
        ("pad_to", "max"),
        ("max_length", 1),
        ("max_length", "512"),
        ("limit", 0),
        ("synthetic_size", 0),
        ("shuffle_seed", 1.5),
        ("system_prompt_mode", "assistant"),
        ("response_template", "{attempt"),
        ("response_template", "<answer>{}</answer>"),
        ("prompt_column", ""),
    ],
)
def test_invalid_field_is_named(field, value):
    kwargs = {"source": "data.jsonl", field: value}
    with pytest.raises(ValueError, match=rf"^{field}: "):
        DataConfig(**kwargs)


def test_synthetic_source_needs_tasks():
    with pytest.raises(ValueError, match="source: 'synthetic:' needs task names"):
        DataConfig("synthetic:")


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


def test_preset_fills_defaults_and_keeps_overrides():
    config = DataConfig("preset:mot-3k", limit=10, shuffle_seed=7)
    assert config.source == "open-r1/Mixture-of-Thoughts"
    assert config.subset == "all"
    assert (config.max_length, config.overflow) == (2500, "drop")
    assert (config.limit, config.shuffle_seed) == (10, 7)


def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError, match="source: unknown preset 'nope'; presets: s1k, s1k-1.1"):
        DataConfig("preset:nope")


def test_every_preset_is_a_valid_config():
    for name, fields in DATASET_PRESETS.items():
        config = DataConfig(f"preset:{name}")
        assert config.source == fields["source"]
        assert not config.source.startswith("preset:")


def test_s1k_preset_formats_like_d1():
    config = DataConfig("preset:s1k")
    record = Record(5, "s1K: index 5", {
        "question": "What is 6*7?",
        "thinking_trajectories": ["6*7 = 42"],
        "attempt": "\\boxed{42}",
        "solution": "42",
    })
    messages, response = example_parts(record, config)
    assert messages == [{"role": "user", "content": f"{SYSTEM_PROMPT}\n\nWhat is 6*7?"}]
    assert response == "<reasoning>6*7 = 42</reasoning>\n<answer>\\boxed{42}</answer>"


def test_s1k_11_preset_uses_deepseek_columns():
    config = DataConfig("preset:s1k-1.1")
    record = Record(0, "x", {"question": "Q", "deepseek_thinking_trajectory": "T", "deepseek_attempt": "A"})
    assert example_parts(record, config)[1] == "<reasoning>T</reasoning>\n<answer>A</answer>"
