"""What an SFT data set is made of, checked up front so that a typo fails before any loading."""

from __future__ import annotations

import string
from dataclasses import dataclass, fields
from typing import Literal

from dlmtune.data.presets import DATASET_PRESETS

PRESET_PREFIX = "preset:"
SYNTHETIC_PREFIX = "synthetic:"


class DataError(ValueError):
    """The data cannot be used as given; the message says where (file, line, example) and why."""


@dataclass
class DataConfig:
    """Where SFT pairs come from and how they become token sequences.

    `source: preset:NAME` takes the fields of `DATASET_PRESETS[NAME]` for every field left at its
    default here; fields set to anything else override the preset."""

    # .jsonl / .json / .parquet file, a `save_to_disk` folder, a Hub dataset id,
    # "synthetic:sudoku,countdown" (offline generators) or "preset:NAME"
    source: str
    split: str = "train"
    subset: str | None = None  # the Hub dataset's configuration name, e.g. "all"
    synthetic_size: int = 1000  # examples per synthetic task
    synthetic_seed: int = 0
    prompt_column: str = "prompt"
    response_column: str = "response"
    messages_column: str = "messages"  # used when a record has neither prompt nor response column
    # plain documents (pretraining): this column's text is the whole sequence, all of it maskable
    text_column: str | None = None
    # a str.format template over a record's columns, used instead of response_column when set,
    # e.g. "<reasoning>{thinking_trajectories[0]}</reasoning>\n<answer>{attempt}</answer>"
    response_template: str | None = None
    # added unless the record already has a system message; "" turns a preset's system prompt off
    system_prompt: str | None = None
    # "user": system_prompt + "\n\n" + first user turn, as evaluation builds its prompts (d1);
    # "system": a separate system message in front
    system_prompt_mode: Literal["user", "system"] = "user"
    max_length: int = 4096  # tokens of prompt + response + EOS
    overflow: Literal["truncate", "drop"] = "truncate"  # truncate cuts the response, keeping a final EOS
    pad_to: Literal["longest", "max_length"] = "longest"
    # LLaDA's convention: each answer is padded with EOS, and those EOS are answer tokens (attended, masked,
    # trained); False ends each example at its own EOS
    train_on_padding: bool = True
    # with pad_to "longest": the answer (response + EOS) is padded to a multiple of this many tokens, a length
    # set by the example alone (never by its batch); with "max_length": to max_length, as d1 does
    answer_pad_multiple: int = 32
    limit: int | None = None  # keep at most this many examples (the first ones, or a sample, see below)
    shuffle_seed: int | None = None  # with limit: sample the kept examples with this seed

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError("source: expected a file, folder, Hub id, 'synthetic:TASKS' or 'preset:NAME'")
        if self.source.startswith(PRESET_PREFIX):
            self._apply_preset(self.source[len(PRESET_PREFIX) :])
        for name in ("split", "prompt_column", "response_column", "messages_column"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name}: expected a non-empty string, got {getattr(self, name)!r}")
        _check_choice("system_prompt_mode", self.system_prompt_mode, ("user", "system"))
        _check_choice("overflow", self.overflow, ("truncate", "drop"))
        _check_choice("pad_to", self.pad_to, ("longest", "max_length"))
        _check_int("max_length", self.max_length, minimum=2)
        _check_int("synthetic_size", self.synthetic_size, minimum=1)
        _check_int("answer_pad_multiple", self.answer_pad_multiple, minimum=1)
        _check_int("synthetic_seed", self.synthetic_seed)
        if self.limit is not None:
            _check_int("limit", self.limit, minimum=1)
        if self.shuffle_seed is not None:
            _check_int("shuffle_seed", self.shuffle_seed)
        if self.response_template is not None:
            try:
                columns = [f for _, f, _, _ in string.Formatter().parse(self.response_template) if f is not None]
            except ValueError as error:
                raise ValueError(f"response_template: not a valid format string ({error})") from None
            if not all(columns):
                raise ValueError("response_template: every {} needs a column name, e.g. {attempt}")
        if self.source.startswith(SYNTHETIC_PREFIX) and not self.source[len(SYNTHETIC_PREFIX) :].strip(", "):
            raise ValueError("source: 'synthetic:' needs task names, e.g. synthetic:sudoku,countdown")

    def _apply_preset(self, name: str) -> None:
        if name not in DATASET_PRESETS:
            raise ValueError(f"source: unknown preset {name!r}; presets: {', '.join(DATASET_PRESETS)}")
        defaults = {f.name: f.default for f in fields(self) if f.name != "source"}
        for key, value in DATASET_PRESETS[name].items():
            if key == "source" or getattr(self, key) == defaults[key]:
                setattr(self, key, value)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_int(name: str, value: object, minimum: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
