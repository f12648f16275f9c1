"""SFT data: loading records from files, folders, the Hub or the generators, tokenising, batching."""

from dlmtune.data.collator import DiffusionDataCollator
from dlmtune.data.config import DataConfig, DataError
from dlmtune.data.presets import DATASET_PRESETS
from dlmtune.data.sft import build_sft_dataset, encode_example
from dlmtune.data.sources import Record, load_records

__all__ = [
    "DATASET_PRESETS",
    "DataConfig",
    "DataError",
    "DiffusionDataCollator",
    "Record",
    "build_sft_dataset",
    "encode_example",
    "load_records",
]
