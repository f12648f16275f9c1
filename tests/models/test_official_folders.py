"""Every command on tiny LLaDA and Dream folders in the official layout, through the CLI, with no remote
code: train (sft, weft, gift-star; full and LoRA), eval (plain and --fast), entropy, merge. The folders'
own modules leave a marker file if imported; it must never appear. Also: the shipped 8B configs run
unchanged on such a folder, and a folder of an unknown family runs its code only with the flag."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dlmtune.cli import app
from dlmtune.models.loading import load_model
from dlmtune.train import load_config, run_training

from .conftest import OFFICIAL_WRITERS
from .official_layout import remote_code_ran

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TRAIN_CONFIG = """\
model: {name_or_path: %s}
data: {source: "synthetic:countdown", synthetic_size: 8, max_length: 96}
max_steps: 2
per_device_train_batch_size: 4
learning_rate: 1.0e-3
report_to: none
use_cpu: true
save_strategy: "no"
logging_steps: 1
disable_tqdm: true
"""
RUNS = {"sft-full": ["--objective", "sft"], "weft-lora": ["--objective", "weft", "--lora.r", "4"],
        "gift-star-full": ["--objective", "gift-star"]}
GENERATION = ["--tasks", "countdown", "--limit", "2", "--gen-length", "8", "--block-length", "8", "--steps", "4",
              "--batch-size", "2"]


def _invoke(*args: str):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result, [str(w.message) for w in caught]


def _no_remote_code_in(folder: Path) -> bool:
    config = json.loads((folder / ("config.json" if (folder / "config.json").exists() else "adapter_config.json"))
                        .read_text())
    return not list(folder.glob("*.py")) and "auto_map" not in config


@pytest.fixture(scope="module", params=sorted(OFFICIAL_WRITERS))
def trained(request, tmp_path_factory):
    """An official-layout folder of one family and the outputs of the three training runs on it."""
    root = tmp_path_factory.mktemp(request.param)
    folder = OFFICIAL_WRITERS[request.param](root / "official")
    config = root / "train.yaml"
    config.write_text(TRAIN_CONFIG % json.dumps(str(folder)))
    outputs = {}
    for name, extra in RUNS.items():
        outputs[name] = root / name
        result, _ = _invoke("train", config, "--output_dir", outputs[name], *extra)
        assert "done: 2 steps" in result.output
    return request.param, folder, outputs


def test_training_runs_and_outputs_reload_natively(trained):
    family, folder, outputs = trained
    for name, out in outputs.items():
        assert _no_remote_code_in(out), name
        model, _, spec = load_model(str(out))
        assert spec.family == family and spec.shift_logits == (family == "dream")
        assert type(model).__module__.startswith(("dlmtune.", "peft.")), type(model)
    assert (outputs["weft-lora"] / "adapter_config.json").exists()
    assert not remote_code_ran(folder)


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
def test_eval_plain_and_fast_use_the_native_model_and_its_cache(trained, fast, tmp_path):
    _, folder, outputs = trained
    for model in (outputs["sft-full"], outputs["weft-lora"]):
        result, caught = _invoke("eval", "--model", model, "--out", tmp_path / model.name, *GENERATION,
                                 *(["--fast"] if fast else []))
        assert json.loads((tmp_path / model.name / "results.json").read_text())
        assert not [w for w in caught if "use_cache=True ignored" in w], caught  # the prefix cache works
    assert not remote_code_ran(folder)


def test_entropy_and_merge(trained, tmp_path):
    family, folder, outputs = trained
    _invoke("entropy", "--model", outputs["gift-star-full"], "--data", "countdown", "--out", tmp_path / "e.png",
            "--limit", "4")
    assert (tmp_path / "e.png").stat().st_size > 0
    _invoke("merge", "--adapter", outputs["weft-lora"], "--out", tmp_path / "merged")
    assert _no_remote_code_in(tmp_path / "merged")
    assert load_model(str(tmp_path / "merged"))[2].family == family
    assert not remote_code_ran(folder)


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")
                                          if p.name.startswith(("llada-8b-", "dream-7b-")) and not p.stem.endswith("-rl")))
def test_shipped_8b_configs_run_unchanged_on_an_official_layout_folder(config, tmp_path):
    family = config.split("-")[0]
    folder = OFFICIAL_WRITERS[family](tmp_path / "official")
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{a} + {a}?", "response": str(2 * a)}) + "\n" for a in range(8)))
    overrides = [("model.name_or_path", str(folder)), ("data.source", str(data)),
                 ("max_steps", 1), ("output_dir", str(tmp_path / "out"))]
    if not torch.cuda.is_available():
        overrides.append(("use_cpu", True))  # the configs' bf16 needs a GPU unless told to run on the CPU
    summary = run_training(load_config(CONFIGS / config, overrides))
    assert summary["global_step"] == 1 and not remote_code_ran(folder)


def test_unknown_family_runs_its_code_only_with_the_flag(remote_code_folder, tmp_path):
    refused = CliRunner().invoke(app, ["eval", "--model", str(remote_code_folder), "--out", str(tmp_path / "a"),
                                       *GENERATION])
    assert refused.exit_code == 2 and "--trust-remote-code" in refused.output, refused.output
    assert not (tmp_path / "a" / "results.json").exists()
    _invoke("eval", "--model", remote_code_folder, "--out", tmp_path / "b", *GENERATION, "--trust-remote-code")
    assert (tmp_path / "b" / "results.json").exists()


def test_demo_runs_a_base_folders_code_only_with_the_flag(remote_code_folder, tmp_path):
    """`dlmtune demo --base DIR` loads DIR like every other command: its auto_map is refused, naming the flag,
    and the flag reaches the fine-tuning runs' config."""
    from dlmtune.demo import resolve_config, run_demo, run_train_config

    refused = resolve_config("sft", None, True, base=str(remote_code_folder), workers=1)
    with pytest.raises(ValueError, match="--trust-remote-code"):
        run_demo(refused, tmp_path / "d", progress=False)
    assert not (tmp_path / "d" / "report.md").exists() and not remote_code_ran(remote_code_folder)
    trusted = resolve_config("sft", None, True, base=str(remote_code_folder), trust_remote_code=True)
    assert run_train_config(trusted, "sft", 0, tmp_path / "t").model.trust_remote_code is True
    untrusted = resolve_config("sft", None, True, base=str(remote_code_folder))
    assert run_train_config(untrusted, "sft", 0, tmp_path / "u").model.trust_remote_code is False
