"""Config reading: every shipped config is valid, overrides follow the YAML, and mistakes name themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import ClusterConfig

from dlmtune.config import ConfigError, parse_overrides
from dlmtune.train import load_config, training_arguments

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TRAIN_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if not p.stem.endswith("-rl"))  # *-rl: tests/rl
ACCELERATE_CONFIGS = sorted((CONFIGS / "accelerate").glob("*.yaml"))


def test_the_shipped_configs_are_there():
    assert {p.name for p in TRAIN_CONFIGS} >= {"tiny.yaml", "llada-8b-instruct-s1k-lora.yaml",
                                                "llada-8b-base-tulu3-full.yaml", "dream-7b-base-tulu3-full.yaml"}
    assert {p.stem for p in ACCELERATE_CONFIGS} == {"ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"}


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_every_training_config_is_valid(path):
    assert path.read_text().startswith("# dlmtune train") or "-m dlmtune train" in path.read_text().splitlines()[0]
    config = load_config(path)
    args = training_arguments(load_config(path, [("bf16", False), ("use_cpu", True)]))
    assert args.output_dir and config.data.source and config.objective_name


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_every_accelerate_config_loads(path):
    cluster = ClusterConfig.from_yaml_file(str(path))
    assert cluster.num_processes == 4 and cluster.mixed_precision == "bf16"
    assert "-m dlmtune train" in path.read_text().splitlines()[0]


def test_paper_settings_in_the_lora_config():
    config = load_config(CONFIGS / "llada-8b-instruct-s1k-lora.yaml")
    assert (config.lora.r, config.lora.alpha, config.lora.dropout) == (128, 256, 0.05)
    assert config.lora.target_modules == ["q_proj", "k_proj", "v_proj"]
    assert config.training["learning_rate"] == 1e-5 and config.training["num_train_epochs"] == 20
    assert config.data.max_length == 4096


def test_overrides_reach_sections_and_trainer_arguments():
    overrides = parse_overrides(["--objective", "sft", "--objective.beta_power=1.0", "--max_steps", "20",
                                 "--lora.r", "16", "--output_dir", "runs/x", "--bf16"])
    config = load_config(CONFIGS / "tiny.yaml", overrides)
    assert config.objective_name == "sft" and config.objective.beta_power == 1.0
    assert config.training["max_steps"] == 20 and config.training["bf16"] is True
    assert config.lora.r == 16 and config.lora.alpha == 256  # the rest of the section keeps its defaults
    assert config.data.source == "synthetic:sudoku,countdown"  # untouched


def test_lora_null_turns_lora_off():
    config = load_config(CONFIGS / "llada-8b-instruct-s1k-lora.yaml", [("lora", None)])
    assert config.lora is None


@pytest.mark.parametrize(("overrides", "message"), [
    ([("learnin_rate", 1e-4)], "unknown key 'learnin_rate' (did you mean 'learning_rate'?)"),
    ([("objective", "weftt")], "unknown objective 'weftt'"),
    ([("objective.beta_powr", 1.0)], "objective: unknown key 'beta_powr' (did you mean 'beta_power'?)"),
    ([("objective.normalize", "batch")], "objective.normalize must be one of"),
    ([("lora.rank", 8)], "lora: unknown key 'rank'"),
    ([("model.path", "x")], "model: unknown key 'path'"),
    ([("data.overflow", "cut")], "overflow: expected one of"),
    ([("loss.x", 1)], "'loss' is not a section"),
])
def test_bad_keys_and_values_are_named(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(CONFIGS / "tiny.yaml", overrides)
    assert message in str(error.value)
    assert "tiny.yaml" in str(error.value) or "command line" in str(error.value)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("output_dir: x\nmodel:\n  name_or_path: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+:\d+: invalid YAML"):
        load_config(path)


def test_missing_pieces_are_reported(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {source: synthetic:countdown}\n")
    with pytest.raises(ConfigError, match="output_dir is required"):
        load_config(path)
    path.write_text("output_dir: x\n")
    with pytest.raises(ConfigError, match="data section with a source is required"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="expected --key value"):
        parse_overrides(["max_steps", "3"])
    assert parse_overrides(["--flag", "--n", "3"]) == [("flag", True), ("n", 3)]
