"""`dlmtune demo --rl` in miniature: every fine-tuned run continued with RL, its run file, the report's RL
section recomputed from those files, and a re-run that resumes."""

from __future__ import annotations

import json

import pytest

from dlmtune.demo import DemoConfig, run_demo
from dlmtune.demo_rl import RLDemo, load_rl_runs, persistence_sentence
from dlmtune.stats import mean_interval, paired_difference

from .bases import pretrain_micro_base

RL_SIZES = (("max_steps", 2), ("rl.num_iterations", 1), ("rl.max_completion_length", 32), ("rl.diffusion_steps", 16),
            ("per_device_train_batch_size", 6), ("rl.generation_batch_size", 6))


@pytest.fixture(scope="module")
def rl_demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo-rl")
    base = pretrain_micro_base(folder / "base", documents=16, steps=2)
    training = (("max_steps", 2), ("per_device_train_batch_size", 4), ("data.synthetic_size", 8))
    config = DemoConfig(seeds=2, test_per_task=2, gen_length={"sudoku": 32, "countdown": 32}, eval_batch_size=8,
                        entropy_examples=2, workers=2, base=str(base), train_overrides=training)
    rl = RLDemo(quick=True, settings=RL_SIZES)
    run_demo(config, folder / "out", progress=False, rl=rl)
    return folder / "out", config, rl


def test_every_fine_tuned_run_gets_an_rl_run_file(rl_demo):
    out, _, _ = rl_demo
    runs = load_rl_runs(out)
    assert sorted(r["name"] for r in runs) == ["sft-seed0-rl", "sft-seed1-rl", "weft-seed0-rl", "weft-seed1-rl"]
    for run in runs:
        assert len(run["reward_curve"]) == 2 and all(0 <= r <= 1 for r in run["reward_curve"])
        start = json.loads((out / "runs" / f"{run['objective']}-seed{run['seed']}.json").read_text())
        assert run["accuracy_before"] == start["accuracy"]["sudoku"]
        assert 0 <= run["accuracy_after"] <= 1
        assert (out / "work" / run["name"] / "model" / "config.json").exists()
    assert not any(p.stem.endswith("-rl") for p in (out / "runs").glob("*.json"))  # the demo's table is unaffected


def test_rl_section_is_recomputed_from_the_run_files(rl_demo):
    out, _, _ = rl_demo
    runs = {(r["objective"], r["seed"]): r for r in load_rl_runs(out)}
    report = (out / "report.md").read_text()
    assert "![reward curves](rl_reward.png)" in report and (out / "rl_reward.png").stat().st_size > 0
    for objective in ("sft", "weft"):
        cells = [mean_interval([runs[objective, s][key] for s in (0, 1)]) for key in ("accuracy_before", "accuracy_after")]
        row = " | ".join(f"{100 * c['mean']:.1f} [{100 * c['low']:.1f}, {100 * c['high']:.1f}]" for c in cells)
        assert f"| {objective} | 2 | {row} |" in report
    after = paired_difference([runs["weft", s]["accuracy_after"] for s in (0, 1)],
                              [runs["sft", s]["accuracy_after"] for s in (0, 1)])
    assert f"Paired weft - sft after RL: {100 * after['mean']:+.1f}" in report
    before = paired_difference([runs["weft", s]["accuracy_before"] for s in (0, 1)],
                               [runs["sft", s]["accuracy_before"] for s in (0, 1)])
    assert persistence_sentence(after, before) in report


def test_a_rerun_resumes_from_the_rl_run_files(rl_demo):
    out, config, rl = rl_demo
    before = {p.name: p.read_text() for p in (out / "runs" / "rl").glob("*.json")}
    run_demo(config, out, progress=False, rl=rl)
    assert {p.name: p.read_text() for p in (out / "runs" / "rl").glob("*.json")} == before


def test_persistence_sentence_follows_the_interval():
    def diff(mean, low, high):
        return {"mean": mean, "low": low, "high": high, "n": 3}

    assert "stays ahead" in persistence_sentence(diff(0.05, 0.01, 0.09), None)
    assert "NOT clearly ahead" in persistence_sentence(diff(0.02, -0.01, 0.05), diff(0.04, 0.01, 0.07))
    assert "falls BEHIND" in persistence_sentence(diff(-0.05, -0.09, -0.01), None)
    assert "no conclusion" in persistence_sentence({"mean": 0.1, "low": None, "high": None, "n": 1}, None)


def test_rl_runs_start_as_their_fine_tuned_runs_finish(tmp_path, monkeypatch):
    """On a pool, `ready` starts a run's RL at once (so RL fills workers the fine-tuning's tail leaves idle);
    `finish` starts the rest once each, skips a run whose file is current, and waits for all."""
    import concurrent.futures
    import threading

    import dlmtune.demo_rl as demo_rl
    from dlmtune.workers import Workers

    started, lock = [], threading.Lock()

    def fake_rl_run(config, rl, test, objective, seed, out):
        with lock:
            started.append((objective, seed))
        return demo_rl.rl_run_name(objective, seed)

    monkeypatch.setattr(demo_rl, "execute_rl_run", fake_rl_run)
    config = DemoConfig(seeds=2)
    rl = RLDemo(quick=True)
    (tmp_path / "runs" / "rl").mkdir(parents=True)
    for objective in ("sft", "weft"):
        for seed in (0, 1):
            record = {"settings": {"objective": objective}}
            (tmp_path / "runs" / f"{objective}-seed{seed}.json").write_text(json.dumps(record))
    current = {"settings": demo_rl._settings(rl, {"settings": {"objective": "weft"}})}
    (tmp_path / "runs" / "rl" / "weft-seed1-rl.json").write_text(json.dumps(current))
    (tmp_path / "runs" / "rl" / "sft-seed7-rl.json").write_text("{}")  # a seed no longer asked for

    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        runs = demo_rl.RLRuns(config, rl, tmp_path, {}, Workers(executor, None, 1), progress=False)
        runs.ready("base", None)
        runs.ready("sft", 1)
        runs.started["sft", 1].result()
        assert started == [("sft", 1)]  # before finish: while the fine-tuning's other runs go on
        runs.finish()
    assert sorted(started) == [("sft", 0), ("sft", 1), ("weft", 0)]
    assert not (tmp_path / "runs" / "rl" / "sft-seed7-rl.json").exists()
