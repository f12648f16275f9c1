"""Small fixture records and a writer for JSONL fixture files."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def pairs():
    return [
        {"prompt": "What is 2+3?", "response": "5"},
        {"prompt": "Name a colour.", "response": "blue"},
        {"prompt": "Spell cat backwards.", "response": "tac"},
    ]


@pytest.fixture
def write_jsonl(tmp_path):
    """write_jsonl(records, extra_lines=(), name="d.jsonl") -> path of a JSONL file in tmp_path."""

    def write(records, extra_lines=(), name="d.jsonl"):
        path = tmp_path / name
        path.write_text("\n".join([json.dumps(r) for r in records] + list(extra_lines)) + "\n")
        return path

    return write
