"""Raw records from wherever the data lives, each with its provenance for error messages.

Every record keeps its index in the source as `example_id`, also when `limit` keeps only some, so
per-example state (cached entropies) stays attached to the same example across runs.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from dlmtune.data.config import SYNTHETIC_PREFIX, DataConfig, DataError

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
CORPUS = "corpus"  # synthetic:corpus, the embedded base's pretraining documents
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # "name" or "namespace/name"


class Record(NamedTuple):
    """One source record: its stable index, where it came from (for messages) and its columns."""

    example_id: int
    location: str
    fields: dict[str, Any]


class _Rows(NamedTuple):
    """A source opened but not yet read: its size, a reader for chosen rows, and row locations."""

    size: int
    take: Callable[[list[int]], list[dict]]
    locate: Callable[[int], str]


def load_records(config: DataConfig) -> list[Record]:
    """The records `config` selects, in source order; raises DataError when the source is unusable."""
    rows = _open(config)
    if rows.size == 0:
        raise DataError(f"{config.source}: no records in split {config.split!r}")
    indices = list(range(rows.size))
    if config.limit is not None and config.limit < rows.size:
        if config.shuffle_seed is None:
            indices = indices[: config.limit]
        else:
            indices = sorted(random.Random(config.shuffle_seed).sample(indices, config.limit))
    return [Record(i, rows.locate(i), record) for i, record in zip(indices, rows.take(indices), strict=True)]


def _open(config: DataConfig) -> _Rows:
    source = config.source
    if source.startswith(SYNTHETIC_PREFIX):
        return _synthetic(source[len(SYNTHETIC_PREFIX) :], config)
    path = Path(source).expanduser()
    if path.is_dir():
        return _folder(path, config.split)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            return _jsonl(path)
        if suffix == ".json":
            return _json(path)
        if suffix == ".parquet":
            return _parquet(path)
        raise DataError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(FILE_SUFFIXES)}")
    if path.suffix.lower() in FILE_SUFFIXES or not HUB_ID.fullmatch(source):
        raise DataError(f"{source}: no such file or folder")
    return _hub(source, config.subset, config.split)


def _listed(records: list[Any], locate: Callable[[int], str]) -> _Rows:
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(f"{locate(i)}: expected a JSON object, got {type(record).__name__}")
    return _Rows(len(records), lambda indices: [records[i] for i in indices], locate)


def _jsonl(path: Path) -> _Rows:
    records, lines = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: invalid JSON ({error.msg} at column {error.colno})") from None
            lines.append(number)
    return _listed(records, lambda i: f"{path}:{lines[i]}")


def _json(path: Path) -> _Rows:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: invalid JSON ({error.msg} at column {error.colno})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects or {{\"data\": [...]}}, got {type(data).__name__}")
    return _listed(data, lambda i: f"{path}: index {i}")


def _parquet(path: Path) -> _Rows:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for unreadable files
        raise DataError(f"{path}: could not read Parquet ({error})") from None
    return _Rows(table.num_rows, lambda indices: table.take(indices).to_pylist(), lambda i: f"{path}: row {i}")


def _folder(path: Path, split: str) -> _Rows:
    from datasets import DatasetDict, load_from_disk

    try:
        data = load_from_disk(str(path))
    except FileNotFoundError as error:
        raise DataError(f"{path}: not a folder written by datasets' save_to_disk ({error})") from None
    if isinstance(data, DatasetDict):
        if split not in data:
            raise DataError(f"{path}: no split {split!r}; available splits: {', '.join(data)}")
        data = data[split]
    return _dataset_rows(data, f"{path} [{split}]")


def _hub(dataset_id: str, subset: str | None, split: str) -> _Rows:
    from datasets import load_dataset

    try:
        data = load_dataset(dataset_id, subset, split=split)
    except Exception as error:  # network, auth, missing dataset or split: all mean "not usable here"
        raise DataError(
            f"{dataset_id}: not a local file or folder, and could not be loaded from the Hugging Face Hub "
            f"({type(error).__name__}: {error}); offline, pass a local .jsonl/.json/.parquet file or a "
            "save_to_disk folder"
        ) from None
    return _dataset_rows(data, f"{dataset_id} [{split}]")


def _dataset_rows(data: Any, name: str) -> _Rows:
    return _Rows(len(data), lambda indices: data.select(indices).to_list(), lambda i: f"{name}: index {i}")


def _synthetic(tasks: str, config: DataConfig) -> _Rows:
    """Generated pairs, `synthetic_size` per task, interleaved (one of each task in turn, in the order given);
    `synthetic:corpus` is the embedded base's pretraining corpus (`synthetic_size` documents)."""
    from dlmtune.data.corpus import corpus
    from dlmtune.synthetic.splits import SPLITS
    from dlmtune.tasks.generated import GENERATED_TASKS, interleaved_examples

    names = [name.strip() for name in tasks.split(",") if name.strip()]
    known = [*GENERATED_TASKS, CORPUS]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise DataError(f"synthetic:{tasks}: unknown task {unknown[0]!r}; generated: {', '.join(known)}")
    if config.split not in SPLITS:
        raise DataError(f"synthetic:{tasks}: unknown split {config.split!r}; use one of {', '.join(SPLITS)}")
    if CORPUS in names:
        if names != [CORPUS] or config.split != "train":
            raise DataError(f"synthetic:{tasks}: the corpus is a source of its own, with split 'train'")
        records = corpus(config.synthetic_size, config.synthetic_seed)
        return _listed(records, lambda i: f"synthetic:corpus #{i}")
    try:
        records = interleaved_examples(names, config.synthetic_size, config.synthetic_seed, config.split)
    except ValueError as error:
        raise DataError(f"synthetic:{tasks}: synthetic_size {config.synthetic_size}: {error}") from None
    return _listed(records, lambda i: f"synthetic:{names[i % len(names)]} #{i // len(names)}")
