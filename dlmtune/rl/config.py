"""The RL config: `dlmtune train`'s conventions (flat TrainingArguments keys, model / lora sections) plus a
`data` section (which task, which prompts) and an `rl` section (the algorithm and its rollouts).

Defaults are the published ones. diffu-GRPO: d1 (arXiv 2504.12216), its diffu-grpo/slurm_scripts/
train.yaml and run.sh. wd1 (arXiv 2507.08838): its wd1/train.yaml and run/wll_*.sh, which differ from
d1 in the inner updates (8) and in using neither the ratio clip nor a reference model. Where a number
comes from is said next to it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlmtune.config import ConfigError, apply_overrides, build_dataclass, check_keys, read_yaml
from dlmtune.sampling import REMASKING
from dlmtune.train import LoraConfig, ModelConfig
from dlmtune.trainer import DiffusionTrainingArguments

ALGORITHMS = ("diffu-grpo", "wd1")

# d1 train.yaml's optimiser and schedule (wd1's train.yaml has the same values)
TRAINING_DEFAULTS: dict[str, Any] = {
    "learning_rate": 3e-6,
    "lr_scheduler_type": "constant_with_warmup",
    "warmup_steps": 0.0001,  # warmup_ratio in d1; a fraction < 1 is a ratio in transformers 5
    "adam_beta1": 0.9,
    "adam_beta2": 0.99,
    "weight_decay": 0.1,
    "max_grad_norm": 0.2,
    "per_device_train_batch_size": 6,  # completions per device per micro-step: one group of 6
    "gradient_accumulation_steps": 2,
    "logging_steps": 1,
    "save_steps": 100,
    "seed": 42,
    "report_to": "none",
}
LORA_DEFAULTS: dict[str, Any] = {"r": 128, "alpha": 64, "dropout": 0.05}  # d1 train.yaml (lora_r, lora_alpha)
PER_ALGORITHM: dict[str, dict[str, Any]] = {
    "diffu-grpo": {"num_iterations": 12, "beta": 0.04},  # d1 train.yaml; run.sh NUM_ITER=12
    "wd1": {"num_iterations": 8, "beta": 0.0},  # wd1 run/wll_*.sh NUM_ITER=8; its loss has no KL term
}


@dataclass
class RLDataConfig:
    """Where the prompts come from. `source: generated` draws `size` items from the task's offline
    generator (the train split, disjoint from the test items `dlmtune eval` generates); otherwise a task
    file (JSONL / JSON / CSV / Parquet) or Hub id, read by the task's loader."""

    task: str = "sudoku"
    source: str = "generated"
    size: int = 256
    seed: int = 0  # of the generated items
    generator: dict[str, Any] = field(default_factory=dict)  # e.g. {min_empty: 1, max_empty: 2} for Sudoku
    system_prompt: str | None = None  # None: the task's (d1's); "": the bare question
    max_prompt_length: int = 200  # d1 train.yaml; a longer prompt is an error, not silently cut

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if self.max_prompt_length < 1:
            raise ValueError(f"max_prompt_length must be >= 1, got {self.max_prompt_length}")


@dataclass
class RLConfig:
    """The `rl` section. None means the algorithm's own default (PER_ALGORITHM)."""

    algorithm: str = "diffu-grpo"
    num_generations: int = 6  # d1 train.yaml
    num_iterations: int | None = None  # inner updates per batch of rollouts (mu)
    p_mask_prompt: float = 0.15  # d1 train.yaml
    beta: float | None = None  # KL coefficient (diffu-grpo)
    epsilon: float = 0.5  # ratio clip (diffu-grpo), d1 train.yaml
    scale_rewards: bool = False  # d1 and wd1: advantage = reward - group mean, not divided by the std
    max_completion_length: int = 256  # d1 train.yaml
    block_length: int = 32  # d1 train.yaml
    diffusion_steps: int = 128  # d1 train.yaml
    temperature: float = 0.9  # d1 GRPOConfig default, kept by train.yaml
    remasking: str = "low_confidence"  # d1 train.yaml
    generation_batch_size: int = 6  # d1 train.yaml: completions sampled together
    rewards: dict[str, float] = field(default_factory=lambda: {"correctness": 1.0})  # d1 Sudoku: cell accuracy only

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        for key, value in PER_ALGORITHM[self.algorithm].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2: advantages are relative to the other completions "
                             f"of the same prompt, undefined for a group of {self.num_generations}")
        if self.num_iterations < 1:
            raise ValueError(f"num_iterations must be >= 1, got {self.num_iterations}")
        if not 0 <= self.p_mask_prompt < 1:
            raise ValueError(f"p_mask_prompt must be in [0, 1), got {self.p_mask_prompt}")
        if self.beta < 0 or self.epsilon <= 0:
            raise ValueError(f"beta must be >= 0 and epsilon > 0, got beta={self.beta}, epsilon={self.epsilon}")
        if self.algorithm == "wd1" and self.beta > 0:
            raise ValueError("wd1's objective has no KL term: leave beta unset (or 0) with algorithm wd1")
        if self.remasking not in REMASKING:
            raise ValueError(f"remasking must be one of {REMASKING}, got {self.remasking!r}")
        if self.max_completion_length % self.block_length or self.diffusion_steps % (
                self.max_completion_length // self.block_length):
            raise ValueError(f"max_completion_length ({self.max_completion_length}) must be a multiple of "
                             f"block_length ({self.block_length}), and diffusion_steps ({self.diffusion_steps}) "
                             "a multiple of the number of blocks")
        if self.generation_batch_size < 1:
            raise ValueError(f"generation_batch_size must be >= 1, got {self.generation_batch_size}")


@dataclass
class RLRunConfig:
    model: ModelConfig
    data: RLDataConfig
    rl: RLConfig
    lora: LoraConfig | None
    training: dict[str, Any]  # DiffusionTrainingArguments fields, d1's defaults under the config's
    raw: dict[str, Any] = field(repr=False)


SECTIONS = ("model", "data", "rl", "lora")
SHORTHANDS = {"model": "name_or_path", "data": "task", "rl": "algorithm", "lora": "r"}


def load_rl_config(path: str | Path | None, overrides: list[tuple[str, Any]] = ()) -> RLRunConfig:
    """Read, override and check an RL config; every mistake is reported before any loading."""
    where = str(path) if path else "config"
    raw = apply_overrides(read_yaml(path) if path else {}, overrides, SHORTHANDS)
    flat = {k: v for k, v in raw.items() if k not in SECTIONS}
    check_keys(flat, {f.name for f in dataclasses.fields(DiffusionTrainingArguments) if f.init}, where)
    if "output_dir" not in flat:
        raise ConfigError(f"{where}: output_dir is required (e.g. --output_dir runs/my-rl-run)")
    lora = raw.get("lora")
    config = RLRunConfig(
        model=build_dataclass(ModelConfig, raw.get("model"), f"{where}: model"),
        data=build_dataclass(RLDataConfig, raw.get("data"), f"{where}: data"),
        rl=build_dataclass(RLConfig, raw.get("rl"), f"{where}: rl"),
        lora=None if lora is None else build_dataclass(LoraConfig, {**LORA_DEFAULTS, **lora}, f"{where}: lora"),
        training={**TRAINING_DEFAULTS, **flat},
        raw=raw,
    )
    batch = config.training["per_device_train_batch_size"]
    if batch % config.rl.num_generations:
        raise ConfigError(f"{where}: per_device_train_batch_size ({batch}) must be a multiple of rl.num_generations "
                          f"({config.rl.num_generations}): each device holds whole groups of completions")
    try:
        from dlmtune.rl.rewards import build_rewards
        from dlmtune.tasks import get_task

        build_rewards(get_task(config.data.task), config.rl.rewards)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    return config


def training_arguments(config: RLRunConfig) -> DiffusionTrainingArguments:
    try:
        return DiffusionTrainingArguments(**config.training)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"training arguments: {error}") from None
