from __future__ import annotations

import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dlmtune.data import DataConfig, DataError, load_records
from dlmtune.data.corpus import corpus
from dlmtune.tasks.generated import sft_examples


def test_jsonl_records_ids_and_line_numbers(tmp_path, pairs):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(pairs[0]) + "\n\n" + json.dumps(pairs[1]) + "\n")
    records = load_records(DataConfig(str(path)))
    assert [r.fields for r in records] == pairs[:2]
    assert [r.example_id for r in records] == [0, 1]
    assert [r.location for r in records] == [f"{path}:1", f"{path}:3"]


def test_jsonl_bad_line_names_file_and_line(tmp_path, pairs, write_jsonl):
    path = write_jsonl(pairs[:2], extra_lines=['{"prompt": "x", "response": '])
    with pytest.raises(DataError, match=rf"^{path}:3: invalid JSON \("):
        load_records(DataConfig(str(path)))


def test_jsonl_line_that_is_not_an_object(tmp_path, pairs, write_jsonl):
    path = write_jsonl(pairs[:1], extra_lines=["[1, 2]"])
    with pytest.raises(DataError, match=rf"{path}:2: expected a JSON object, got list"):
        load_records(DataConfig(str(path)))


@pytest.mark.parametrize("wrap", [False, True])
def test_json_list_or_data_key(tmp_path, wrap, pairs):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"data": pairs} if wrap else pairs))
    records = load_records(DataConfig(str(path)))
    assert [r.fields for r in records] == pairs
    assert records[2].location == f"{path}: index 2"


@pytest.mark.parametrize(("text", "message"), [
    ('{"prompt": 1', "invalid JSON"),
    ('{"rows": []}', "expected a JSON list of objects"),
    ('[{"prompt": "a"}, "b"]', "index 1: expected a JSON object, got str"),
])
def test_json_errors(tmp_path, text, message):
    path = tmp_path / "d.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_records(DataConfig(str(path)))


def test_parquet(tmp_path, pairs):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(pairs), path)
    records = load_records(DataConfig(str(path), limit=2))
    assert [r.fields for r in records] == pairs[:2]
    assert records[1].location == f"{path}: row 1"


def test_saved_dataset_folder(tmp_path, pairs):
    datasets.Dataset.from_list(pairs).save_to_disk(str(tmp_path / "ds"))
    assert [r.fields for r in load_records(DataConfig(str(tmp_path / "ds")))] == pairs


def test_saved_dataset_dict_picks_split_and_lists_splits(tmp_path, pairs):
    folder = tmp_path / "dd"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list(pairs),
        "test": datasets.Dataset.from_list(pairs[:1]),
    }).save_to_disk(str(folder))
    assert len(load_records(DataConfig(str(folder), split="test"))) == 1
    with pytest.raises(DataError, match="no split 'val'; available splits: train, test"):
        load_records(DataConfig(str(folder), split="val"))


def test_folder_that_is_not_a_saved_dataset(tmp_path):
    with pytest.raises(DataError, match="not a folder written by datasets' save_to_disk"):
        load_records(DataConfig(str(tmp_path)))


@pytest.mark.parametrize("name", ["missing.jsonl", "missing.parquet", "./missing", "/no/such/dir", "a/b/c"])
def test_missing_local_path(tmp_path, name):
    with pytest.raises(DataError, match="no such file or folder"):
        load_records(DataConfig(name))


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("hello")
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        load_records(DataConfig(str(path)))


def test_hub_id_loads_with_subset_and_split(monkeypatch, pairs):
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return datasets.Dataset.from_list(pairs)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    records = load_records(DataConfig("org/sft-data", subset="all", split="train"))
    assert calls == [("org/sft-data", "all", "train")]
    assert [r.fields for r in records] == pairs
    assert records[0].location == "org/sft-data [train]: index 0"


def test_hub_failure_explains_offline_use(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"org/sft-data: .*could not be loaded .*ConnectionError: no network.*offline"):
        load_records(DataConfig("org/sft-data"))


def test_limit_keeps_source_indices(tmp_path, write_jsonl):
    records = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(20)]
    path = write_jsonl(records)
    first = load_records(DataConfig(str(path), limit=5))
    assert [r.example_id for r in first] == [0, 1, 2, 3, 4]
    sample = load_records(DataConfig(str(path), limit=5, shuffle_seed=1))
    ids = [r.example_id for r in sample]
    assert ids == sorted(ids) and ids != [0, 1, 2, 3, 4]
    assert all(r.fields == records[r.example_id] for r in sample)
    assert ids == [r.example_id for r in load_records(DataConfig(str(path), limit=5, shuffle_seed=1))]
    assert ids != [r.example_id for r in load_records(DataConfig(str(path), limit=5, shuffle_seed=2))]


def test_synthetic_source_interleaves_tasks():
    records = load_records(DataConfig("synthetic:sudoku,countdown", synthetic_size=3, synthetic_seed=4))
    sudoku, countdown = sft_examples("sudoku", 3, 4), sft_examples("countdown", 3, 4)
    assert [r.fields for r in records] == [sudoku[0], countdown[0], sudoku[1], countdown[1], sudoku[2], countdown[2]]
    assert [r.example_id for r in records] == list(range(6))
    assert records[3].location == "synthetic:countdown #1"


def test_synthetic_corpus_is_the_pretraining_documents():
    records = load_records(DataConfig("synthetic:corpus", synthetic_size=10, synthetic_seed=3))
    assert [r.fields for r in records] == corpus(10, 3)
    with pytest.raises(DataError, match="a source of its own"):
        load_records(DataConfig("synthetic:corpus,sudoku"))


def test_synthetic_errors():
    with pytest.raises(DataError, match="unknown task 'chess'"):
        load_records(DataConfig("synthetic:sudoku,chess"))
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load_records(DataConfig("synthetic:sudoku", split="dev"))
    with pytest.raises(DataError, match=r"synthetic:countdown: synthetic_size 5000: .* only 1226: ask for fewer"):
        load_records(DataConfig("synthetic:countdown", synthetic_size=5000))


def test_empty_source(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n")
    with pytest.raises(DataError, match="no records"):
        load_records(DataConfig(str(path)))
