"""`dlmtune demo --rl`: the papers' "gains persist through RL" experiment on the embedded tiny dLLM.

WeFT (arXiv 2509.20863, §4.3, Figure 3 and Table 2) cold-starts a model with SFT or with WeFT and then
trains it with RL on Sudoku; the WeFT start keeps its lead. Here every fine-tuned run of the demo
(`OUT/work/<run>/train`, sft and weft, every seed) is continued with diffu-GRPO on the demo's Sudoku
train split through `dlmtune.rl.run_rl_stage`, then evaluated on the demo's held-out Sudoku puzzles with
the demo's own evaluation. The RL seed is the fine-tuning seed, so the sft and weft runs of one seed see
the same prompt schedule and sampler seeds and stay paired.

Each RL run writes `OUT/runs/rl/<run>-rl.json` (its reward curve, accuracy after RL and settings); a
re-run skips the runs whose file exists with the same settings, as the demo's fine-tuning runs do, and
the report section is built from those files alone. Runs go to the demo's worker processes, each
single-threaded.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import Future, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers.utils import logging as hf_logging

from dlmtune.io import write_json_atomic
from dlmtune.stats import mean_interval, paired_difference
from dlmtune.workers import Workers

RL_TASK = "sudoku"  # the papers' RL task; Countdown is not trained on, so it is not re-evaluated


@dataclass(frozen=True)
class RLDemo:
    """Which RL the demo runs: `run_rl_stage`'s settings (the quick ones when `quick`), with `settings`
    (dotted config keys, as on the `dlmtune rl` command line) over them."""

    quick: bool = False
    settings: tuple[tuple[str, Any], ...] = ()

    def overrides(self) -> dict[str, Any]:
        from dlmtune.rl.stage import rl_stage_overrides

        return {**rl_stage_overrides(self.quick), **dict(self.settings)}


def rl_run_name(objective: str, seed: int) -> str:
    return f"{objective}-seed{seed}-rl"


def _settings(rl: RLDemo, start_record: dict[str, Any]) -> dict[str, Any]:
    """What an RL run's result depends on: the RL settings and the fine-tuned run it starts from."""
    return json.loads(json.dumps({"rl": rl.overrides(), "start": start_record.get("settings")}))


def _plan(config, out: Path) -> list[tuple[str, int]]:
    return [(o, s) for s in range(config.seeds) for o in config.objectives if (out / "runs" / f"{o}-seed{s}.json").exists()]


def execute_rl_run(config, rl: RLDemo, test: dict[str, list[dict]], objective: str, seed: int, out: Path) -> str:
    """RL on the fine-tuned run `objective`-seed`seed`, then its held-out Sudoku accuracy; writes the run file."""
    from dlmtune.demo import evaluate_run, reference_config, run_name
    from dlmtune.models.loading import load_model
    from dlmtune.rl.stage import run_rl_stage

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()  # the demo's own bar says what runs; one per weight loading would not
    start_name, name = run_name(objective, seed), rl_run_name(objective, seed)
    start_dir = out / "work" / start_name / "train"
    if not (start_dir / "config.json").exists():
        raise FileNotFoundError(f"{start_dir}: the fine-tuned model of run {start_name} is missing; delete "
                                f"{out / 'runs' / (start_name + '.json')} and re-run the demo to train it again")
    start_record = json.loads((out / "runs" / f"{start_name}.json").read_text())
    work = out / "work" / name
    shutil.rmtree(work, ignore_errors=True)
    began = time.perf_counter()
    data_seed = reference_config(config).data.synthetic_seed  # RL prompts: the train split of the demo's data
    result = run_rl_stage(start_dir, {**dict(rl.settings), "seed": seed, "data.seed": data_seed}, work / "model",
                          quick=rl.quick)
    rl_seconds = time.perf_counter() - began
    model, tokenizer, spec = load_model(result["output_dir"])
    evaluation = evaluate_run(model, tokenizer, spec, {RL_TASK: test[RL_TASK]}, config, work / "eval", progress=False)
    accuracy, eval_seconds = evaluation["accuracy"], evaluation["eval_seconds"]
    record = {"name": name, "objective": objective, "seed": seed, "settings": _settings(rl, start_record),
              "reward_curve": result["reward_curve"], "accuracy_after": accuracy[RL_TASK],
              "accuracy_before": start_record["accuracy"][RL_TASK], "rl_seconds": rl_seconds,
              "eval_seconds": eval_seconds, "rl_summary": result["summary"]}
    write_json_atomic(out / "runs" / "rl" / f"{name}.json", record)
    return name


class RLRuns:
    """The RL runs of a demo in `out`. On a worker pool each is submitted as soon as its fine-tuned run is
    written (`ready`), so RL fills the workers that the fine-tuning's last runs leave idle; `finish` starts
    the rest (fine-tuned runs an earlier invocation wrote) and waits for all, with a progress bar over runs.
    Without a pool they all run in this process, in `finish`. A run whose file exists with the same
    settings is skipped."""

    def __init__(self, config, rl: RLDemo, out: str | Path, test: dict[str, list[dict]], pool: Workers | None,
                 progress: bool = True):
        self.config, self.rl, self.out, self.test, self.pool, self.progress = config, rl, Path(out), test, pool, progress
        self.started: dict[tuple[str, int], Future | None] = {}

    def ready(self, objective: str, seed: int | None) -> None:
        """Fine-tuned run (`objective`, `seed`) is written: on a pool, its RL run starts now if it is needed."""
        if self.pool is not None and seed is not None:
            self._start(objective, seed)

    def finish(self) -> None:
        plan = _plan(self.config, self.out)
        names = {rl_run_name(o, s) for o, s in plan}
        for stale in (self.out / "runs" / "rl").glob("*.json"):
            if stale.stem not in names:
                stale.unlink()
        for objective, seed in plan:
            self._start(objective, seed)
        todo = list(self.started.items())
        workers = self.pool.size if self.pool is not None else 1
        bar = tqdm(total=len(todo), desc=f"demo --rl: {len(todo)} RL runs on {workers} worker(s)", unit="run",
                   disable=not self.progress or not todo)
        if self.pool is None:
            for (objective, seed), _ in todo:
                execute_rl_run(self.config, self.rl, self.test, objective, seed, self.out)
                bar.update()
        else:
            for future in as_completed([future for _, future in todo]):
                future.result()  # re-raises a worker's error
                bar.update()
        bar.close()

    def _start(self, objective: str, seed: int) -> None:
        if (objective, seed) in self.started or not self._needed(objective, seed):
            return
        self.started[objective, seed] = None if self.pool is None else self.pool.pool.submit(
            execute_rl_run, self.config, self.rl, self.test, objective, seed, self.out)

    def _needed(self, objective: str, seed: int) -> bool:
        path = self.out / "runs" / "rl" / f"{rl_run_name(objective, seed)}.json"
        start = json.loads((self.out / "runs" / f"{objective}-seed{seed}.json").read_text())
        return not (path.exists() and json.loads(path.read_text()).get("settings") == _settings(self.rl, start))


def load_rl_runs(out: str | Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((Path(out) / "runs" / "rl").glob("*.json"))]


def plot_reward_curves(runs: list[dict[str, Any]], num_iterations: int, path: str | Path) -> None:
    """The papers' Figure 3: mean reward of each rollout over seeds, with the 95% t-band, per cold start (the
    curves hold one value per optimizer step, the same for the `num_iterations` steps of one rollout)."""
    import matplotlib.pyplot as plt

    from dlmtune.report import save_figure

    fig, axis = plt.subplots(figsize=(6.5, 4))
    for objective in sorted({r["objective"] for r in runs}):
        curves = [r["reward_curve"] for r in runs if r["objective"] == objective]
        steps = range(1, min(len(c) for c in curves) + 1, num_iterations)  # the rollout steps
        stats = [mean_interval([100 * c[i - 1] for c in curves]) for i in steps]
        axis.plot(steps, [s["mean"] for s in stats], marker="o", label=f"{objective} start ({len(curves)} seeds)")
        if len(curves) > 1:
            axis.fill_between(steps, [s["low"] for s in stats], [s["high"] for s in stats], alpha=0.2)
    axis.set_xlabel("optimizer step of the rollout")
    axis.set_ylabel("rollout reward (% of empty cells right)")
    axis.set_title("RL on Sudoku after each cold start\n(mean and 95% band over seeds)")
    axis.legend(fontsize=8)
    save_figure(fig, path)


def persistence_sentence(after: dict[str, Any], before: dict[str, Any] | None) -> str:
    """Whether the WeFT start stays ahead after RL, in words, from the paired difference's interval."""
    was = "" if before is None else f" (before RL: {100 * before['mean']:+.1f} points)"
    head = f"After RL, weft - sft is {100 * after['mean']:+.1f} points on held-out Sudoku{was}: "
    if after["low"] is None:
        return head + "one seed, so no interval and no conclusion about whether the WeFT start stays ahead."
    if after["low"] > 0:
        return head + "the WeFT start stays ahead (the paired 95% interval lies above 0)."
    if after["high"] < 0:
        return head + "the WeFT start falls BEHIND (the paired 95% interval lies below 0)."
    return head + "the WeFT start is NOT clearly ahead (the paired 95% interval includes 0)."


def _paired(runs: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    from dlmtune.report import seeded_runs

    by_objective = seeded_runs(runs)
    weft, sft = by_objective.get("weft", {}), by_objective.get("sft", {})
    seeds = sorted(set(weft) & set(sft))
    if not seeds:
        return None
    return paired_difference([weft[s][key] for s in seeds], [sft[s][key] for s in seeds])


def rl_report_section(rl: RLDemo, out: str | Path) -> list[str]:
    """The report's RL section (markdown lines), from OUT/runs/rl; draws OUT/rl_reward.png."""
    from dlmtune.report import format_interval

    out = Path(out)
    runs = load_rl_runs(out)
    if not runs:
        return ["## After RL", "", "No RL runs (no fine-tuned run to start from).", ""]
    o = rl.overrides()
    plot_reward_curves(runs, o["rl.num_iterations"], out / "rl_reward.png")
    rollouts = -(-o["max_steps"] // o["rl.num_iterations"])
    prompts = o["per_device_train_batch_size"] // o["rl.num_generations"]
    seconds = [r["rl_seconds"] for r in runs]
    total = sum(r["rl_seconds"] + r["eval_seconds"] for r in runs)
    shares = [r["rl_summary"]["rollout_share"] for r in runs if r["rl_summary"].get("rollout_share")]
    share = f"{100 * sum(shares) / len(shares):.0f}%" if shares else "most"
    lines = ["## After RL (diffu-GRPO on Sudoku from each cold start)", "",
             f"Each fine-tuned run continued with {o['rl.algorithm']} for {o['max_steps']} optimizer steps: "
             f"{rollouts} rollouts of {prompts} Sudoku prompts x {o['rl.num_generations']} completions "
             f"({o['rl.max_completion_length']} tokens, {o['rl.diffusion_steps']} diffusion steps), "
             f"{o['rl.num_iterations']} inner updates per rollout, learning rate {o['learning_rate']}, the RL seed "
             f"being the fine-tuning seed (so sft and weft of one seed are paired). Sizes: rollouts took {share} of "
             f"an RL run's time, and one run took {min(seconds):.0f}-{max(seconds):.0f} s (RL and evaluation summed over "
             f"the run files: {total:.0f} s). The sizes aim at the demo's budget with the fine-tuning, 20 minutes on "
             "2 cores (3 with --quick); the seconds above, not the aim, say whether this machine met it. That is far less "
             "RL than the papers ran, so this shows the "
             "pipeline end to end on a toy scale rather than testing the papers' claim.", "",
             "![reward curves](rl_reward.png)", "",
             "| start | seeds | Sudoku before RL | Sudoku after RL | RL s (mean) |", "|---|---|---|---|---|"]
    for objective in sorted({r["objective"] for r in runs}):
        group = [r for r in runs if r["objective"] == objective]
        lines.append(f"| {objective} | {len(group)} | {format_interval(mean_interval([r['accuracy_before'] for r in group]))} | "
                     f"{format_interval(mean_interval([r['accuracy_after'] for r in group]))} | "
                     f"{sum(r['rl_seconds'] for r in group) / len(group):.0f} |")
    lines += ["", "Held-out Sudoku cell accuracy in %, mean [95% t-interval] over seeds, the demo's evaluation.", ""]
    after, before = _paired(runs, "accuracy_after"), _paired(runs, "accuracy_before")
    if after is not None:
        lines += [f"Paired weft - sft after RL: {format_interval(after, signed=True)} points over {after['n']} seed(s).", "",
                  persistence_sentence(after, before), ""]
    return lines
