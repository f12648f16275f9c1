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
import enum
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A config that cannot run: names the file or flag, the key, and what to do."""


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2's numbers and booleans: `2e-5` and `1E6` are floats (1.1 wants a dot),
    and only true/false are booleans (1.1 also reads yes/no/on/off, so `save_strategy: no` became False)."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file; syntax errors name the line and column."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = load_yaml(path.read_text())
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
        pairs.append((key.replace("-", "_"), load_yaml(value) if value != "" else ""))
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


def overridden_keys(overrides: Sequence[tuple[str, Any]], shorthands: Mapping[str, str]) -> set[str]:
    """The dotted keys the command line set (a section's shorthand names its field)."""
    keys = set()
    for key, value in overrides:
        if key in shorthands:
            keys |= {f"{key}.{k}" for k in value} if isinstance(value, Mapping) else {f"{key}.{shorthands[key]}"}
        else:
            keys.add(key)
    return keys


def build_dataclass(cls: type, values: Mapping[str, Any] | None, where: str, flags: set[str] = frozenset(),
                    prefix: str = "") -> Any:
    """`cls(**values)` with unknown keys reported by name (with the closest known key) and values of the
    wrong type by key, instead of a TypeError, and the dataclass's own validation errors prefixed by
    `where` (`flags`: keys set on the command line, found as `prefix + key`; see `check_types`)."""
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    check_keys(values, known, where)
    check_types(cls, values, where, flags, prefix)
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


def check_types(cls: type, values: Mapping[str, Any], where: str, flags: set[str] = frozenset(),
                prefix: str = "") -> None:
    """Each value against the type annotation of `cls`'s field of that name, before anything loads; the
    error names `where` (the file), or the flag when `prefix + key` is in `flags`. Integral floats are not
    integers (`max_steps: 1e3` is refused); annotations this does not know are accepted."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key in hints and not matches_type(value, hints[key]):
            place = f"command line: --{prefix}{key}" if f"{prefix}{key}" in flags else f"{where}: {key}"
            raise ConfigError(f"{place}: expected {describe_type(hints[key])}, got {value!r} ({type(value).__name__})")


def matches_type(value: Any, annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or annotation is object:
        return True
    if annotation is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(matches_type(value, arg) for arg in args)
    if origin is Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return isinstance(value, annotation) or value in {member.value for member in annotation}
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        return isinstance(value, (list, tuple)) and (not args or all(matches_type(v, args[0]) for v in value))
    if origin in (dict, Mapping) or annotation is dict:
        return isinstance(value, Mapping)
    return True


def describe_type(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             type(None): "null", dict: "a mapping", list: "a list"}
    if annotation in names:
        return names[annotation]
    if origin in names:
        return names[origin]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(repr(member.value) for member in annotation)
    return getattr(annotation, "__name__", str(annotation))


def to_yaml(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys ({"a": {"b": 1}} -> {"a.b": 1}), for naming differences."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
