"""Loaders: d1's file formats normalised to canonical fields; a bad record names file, place and field."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dlmtune.tasks import get_task


def test_sudoku_csv_with_d1_columns(tmp_path):
    path = tmp_path / "sudoku.csv"
    path.write_text("Puzzle,Solution\n1030002100000012,1234342121434312\n0204300000000010,1234341221434321\n")
    items = get_task("sudoku").load(path)
    assert items == [
        {"puzzle": "1030002100000012", "solution": "1234342121434312"},
        {"puzzle": "0204300000000010", "solution": "1234341221434321"},
    ]


def test_sudoku_numeric_columns_get_their_leading_zeros_back(tmp_path):
    path = tmp_path / "sudoku.parquet"
    pq.write_table(pa.table({"Puzzle": [204300000000010], "Solution": ["1234341221434321"]}), path)
    assert get_task("sudoku").load(path)[0]["puzzle"] == "0204300000000010"


def test_countdown_jsonl_with_nums_and_limit(tmp_path):
    path = tmp_path / "countdown.jsonl"
    rows = [
        {"nums": [3, 5, 7], "target": 36},
        {"nums": [1, 2, 3], "target": 6.0},
        {"nums": [2, 2, 2], "target": 8},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert get_task("countdown").load(path, limit=2) == [
        {"numbers": [3, 5, 7], "target": 36},
        {"numbers": [1, 2, 3], "target": 6},
    ]


def test_countdown_csv_with_list_as_text(tmp_path):
    path = tmp_path / "countdown.csv"
    path.write_text('numbers,target\n"[3, 5, 7]",36\n')
    assert get_task("countdown").load(path) == [{"numbers": [3, 5, 7], "target": 36}]


def test_gsm8k_json_list(tmp_path):
    path = tmp_path / "gsm8k.json"
    path.write_text(json.dumps([{"question": "2+2?", "answer": "2+2=4\n#### 4", "extra": 1}]))
    assert get_task("gsm8k").load(path) == [{"question": "2+2?", "answer": "2+2=4\n#### 4"}]


def test_math500_parquet_keeps_solution(tmp_path):
    path = tmp_path / "math.parquet"
    table = pa.table({"problem": ["1+1?", "2+2?"], "answer": ["2", "4"], "solution": ["One and one.", None]})
    pq.write_table(table, path)
    assert get_task("math500").load(path) == [
        {"problem": "1+1?", "answer": "2", "solution": "One and one."},
        {"problem": "2+2?", "answer": "4"},
    ]


@pytest.mark.parametrize(
    ("task", "name", "text", "where", "field"),
    [
        (
            "countdown",
            "c.jsonl",
            '{"nums": [1, 2, 3], "target": 6}\n{"nums": [1, 2, 3]}\n',
            "line 2",
            "'target'",
        ),
        (
            "sudoku",
            "s.csv",
            "Puzzle,Solution\n1030002100000012,1234342121434312\n1030002100000012,\n",
            "line 3",
            "'solution'",
        ),
        (
            "gsm8k",
            "g.json",
            '[{"question": "q", "answer": "#### 1"}, {"answer": "#### 2"}]',
            "index 1",
            "'question'",
        ),
        ("sudoku", "s.jsonl", '{"puzzle": "123", "solution": "1234342121434312"}\n', "line 1", "'puzzle'"),
        ("countdown", "c.json", '[{"numbers": "1, x", "target": 3}]', "index 0", "'numbers'"),
        ("gsm8k", "g.jsonl", '{"question": "q", "answer": "no final line"}\n', "line 1", "'answer'"),
    ],
)
def test_bad_record_names_file_location_and_field(tmp_path, task, name, text, where, field):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        get_task(task).load(path)
    message = str(error.value)
    assert str(path) in message and where in message and field in message


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError):
        get_task("gsm8k").load(tmp_path / "absent.jsonl")
    odd = tmp_path / "data.txt"
    odd.write_text("x")
    with pytest.raises(ValueError, match="unsupported format"):
        get_task("gsm8k").load(odd)
