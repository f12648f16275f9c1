"""Raw records of a test set from a local file (JSONL, JSON list, CSV, Parquet) or a Hub dataset.

Each record comes with a human-readable location ("line 3", "index 0", "row 7") so that a task can
say exactly which record is malformed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")

Record = tuple[str, dict[str, Any]]


def _jsonl(path: Path) -> Iterator[Record]:
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield f"line {number}", _as_dict(json.loads(line), path, f"line {number}")


def _json(path: Path) -> Iterator[Record]:
    data = json.loads(path.read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    for index, record in enumerate(data):
        yield f"index {index}", _as_dict(record, path, f"index {index}")


def _csv(path: Path) -> Iterator[Record]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        for record in reader:
            yield f"line {reader.line_num}", {k: v for k, v in record.items() if k is not None}


def _parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    for index, record in enumerate(pq.read_table(path).to_pylist()):
        yield f"row {index}", record


def _hub(dataset_id: str, split: str, config: str | None) -> Iterator[Record]:
    from datasets import load_dataset

    for index, record in enumerate(load_dataset(dataset_id, config, split=split)):
        yield f"index {index}", dict(record)


def _as_dict(record: Any, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise ValueError(f"{path}: {where}: expected an object, got {type(record).__name__}")
    return record


_READERS = {".jsonl": _jsonl, ".json": _json, ".csv": _csv, ".parquet": _parquet}


def read_records(source: str | Path, split: str = "test", hub_config: str | None = None) -> Iterator[Record]:
    """(location, record) pairs from an existing local file, else from the Hub dataset `source`.

    A missing path that looks like a file (known suffix) is an error rather than a Hub lookup."""
    path = Path(source)
    suffix = path.suffix.lower()
    if path.is_file():
        if suffix not in _READERS:
            raise ValueError(f"{path}: unsupported format {suffix!r}; use one of {', '.join(FILE_SUFFIXES)}")
        return _READERS[suffix](path)
    if path.exists():
        raise ValueError(f"{path}: expected a data file, not a directory")
    if suffix in _READERS:
        raise FileNotFoundError(f"{path}: no such data file")
    return _hub(str(source), split, hub_config)
