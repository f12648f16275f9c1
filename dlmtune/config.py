"""YAML run configs: flat keys are `TrainingArguments` fields, plus named sections (model, data, ...).

A config is read once, overridden from the command line, and checked against the dataclasses it feeds
before anything heavy starts, so a typo fails in a second with the key, the file and a suggestion.
Overrides follow the YAML: `--max_steps 20`, `--objective.beta_power 1.0`, and a section's shorthand
(`--objective weft` sets `objective.name`, `--model PATH` sets `model.name_or_path`, `--lora null`
turns LoRA off). Values are parsed as YAML scalars (`1e-5`, `true`, `null`, `[q_proj, v_proj]`).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config that cannot run: names the file or flag, the key, and what to do."""


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file; syntax errors name the line and column."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(error, 'problem', error)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values, got {type(data).__name__}")
    return data


def parse_overrides(args: Sequence[str]) -> list[tuple[str, Any]]:
    """`["--a", "1", "--b.c=x", "--flag"]` -> `[("a", 1), ("b.c", "x"), ("flag", True)]`."""
    pairs: list[tuple[str, Any]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"command line: expected --key value, got {arg!r}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            else:
                value = "true"
        pairs.append((key.replace("-", "_"), yaml.safe_load(value) if value != "" else ""))
        i += 1
    return pairs


def section_value(value: Any, shorthand: str) -> dict[str, Any] | None:
    """A section as a mapping: `weft` -> {shorthand: weft}, true -> {} (defaults), null/false -> None (off)."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    return dict(value) if isinstance(value, Mapping) else {shorthand: value}


def apply_overrides(config: dict[str, Any], overrides: Sequence[tuple[str, Any]],
                    shorthands: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `config` with its sections normalised by `section_value` and each (dotted) override
    applied; a plain value given for a section merges into it through the section's shorthand field."""
    config = {k: section_value(v, shorthands[k]) if k in shorthands else v for k, v in config.items()}
    for key, value in overrides:
        section, dot, field = key.partition(".")
        if section in shorthands:
            current = config.get(section) or {}
            if dot:
                config[section] = {**current, field: value}
            else:
                update = section_value(value, shorthands[section])
                config[section] = None if update is None else {**current, **update}
        elif dot:
            raise ConfigError(f"command line: --{key}: {section!r} is not a section ({', '.join(shorthands)})")
        else:
            config[key] = value
    return config


def build_dataclass(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    """`cls(**values)` with unknown keys reported by name (with the closest known key) instead of a
    TypeError, and the dataclass's own validation errors prefixed by `where`."""
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    check_keys(values, known, where)
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from None


def check_keys(values: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def to_yaml(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False)
