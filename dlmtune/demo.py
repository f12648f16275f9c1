"""`dlmtune demo`: the SFT-vs-WeFT experiment of the papers, shrunk to the embedded tiny dLLM.

A run is one fine-tuning folder plus one evaluation record. Each fine-tuning run is `dlmtune train` on
`configs/tiny.yaml` (the shipped pretrained base, about a thousand solver traces of Sudoku and Countdown:
the analogue of s1K) with the run's objective, training seed and output folder set, through the same
`run_training` call; the model is then read back from that folder and evaluated with LLaDA's sampler on
held-out items. The report is built only from the per-run files in OUT/runs. A re-run with the same OUT
skips the runs whose file exists and was made with the same settings, so an interrupted demo resumes.

Parallelism: runs are independent, so they go to `workers` single-threaded processes (`dlmtune.workers`;
default: one per CPU core, at most two).
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.utils import logging as hf_logging

from dlmtune.data import load_records
from dlmtune.io import write_json_atomic
from dlmtune.models.embedded import EMBEDDED_BASE, embedded_base_folder
from dlmtune.models.loading import load_model
from dlmtune.synthetic.countdown import OPS
from dlmtune.synthetic.splits import DEFAULT_N_TEST, DEFAULT_N_VAL, make_splits
from dlmtune.tasks.countdown import evaluate_expression
from dlmtune.train import TrainConfig, embedded_config, load_config, run_training
from dlmtune.trainer import LOG_FILE
from dlmtune.workers import Workers, default_workers, report_progress, start_workers

TASKS = ("sudoku", "countdown")
SUDOKU_CHANCE = 0.25  # a uniformly random digit in an empty cell


@dataclass(frozen=True)
class DemoConfig:
    """What the experiment compares and how it evaluates. The fine-tuning is `train_config` with
    `train_overrides` (config keys, as on the `dlmtune train` command line), then each run's objective,
    seed and output folder; nothing about training is set here."""

    objectives: tuple[str, ...] = ("sft", "weft")
    seeds: int = 5  # training seeds; sft and weft share each seed's data order and initial weights (paired)
    # held-out items: Countdown all 256 of its test split (d1: 256); Sudoku 64 puzzles (about 500 cells)
    test_per_task: int | dict[str, int] = field(default_factory=lambda: {"sudoku": 64, "countdown": 256})
    gen_length: dict[str, int] = field(default_factory=lambda: {"sudoku": 64, "countdown": 32})  # longest answers: 59, 31
    block_length: int = 32
    steps_ratio: int = 2  # diffusion steps = gen_length / steps_ratio (the papers use 2)
    # KV cache of the evaluation's sampler: None = LLaDA's sampler, every step on the whole sequence. "dual"
    # (Fast-dLLM) halves the evaluation time but moves single runs' accuracy, a second noise that widens
    # the paired intervals (BENCHMARKS.md, "The demo's evaluation sampler")
    cache: str | None = None
    eval_batch_size: int = 64
    entropy_examples: int = 64  # examples measured for the base model's entropy picture
    workers: int | None = None  # processes running runs side by side; None = min(2, CPU cores)
    base: str | None = None  # a pretrained base folder; None = the train config's model
    trust_remote_code: bool = False  # run the base's own modeling code (its auto_map); never implied
    train_config: str = str(embedded_config("tiny"))
    train_overrides: tuple[tuple[str, Any], ...] = ()

    def items(self, task: str) -> int:
        """Held-out test items of `task`."""
        return self.test_per_task if isinstance(self.test_per_task, int) else self.test_per_task[task]


QUICK = {"seeds": 1, "train_overrides": (("max_steps", 80),), "test_per_task": {"sudoku": 16, "countdown": 32}}


def countdown_chance(item: dict) -> float:
    """Probability that (a op b) op c, the numbers in the order given and two uniformly random operators,
    hits the target: the accuracy of guessing with the knowledge that every generated problem is solvable
    that way."""
    a, b, c = item["numbers"]
    pairs = list(itertools.product(OPS, repeat=2))
    hits = 0
    for op1, op2 in pairs:
        value = evaluate_expression(f"({a}{op1}{b}){op2}{c}")
        hits += value is not None and abs(value - item["target"]) < 1e-5
    return hits / len(pairs)


def chance_levels(test_items: dict[str, list[dict]]) -> dict[str, float]:
    levels = {"sudoku": SUDOKU_CHANCE}
    if "countdown" in test_items:
        items = test_items["countdown"]
        levels["countdown"] = sum(countdown_chance(item) for item in items) / len(items)
    return {task: levels[task] for task in test_items}


def run_train_config(config: DemoConfig, objective: str, seed: int, output_dir: str | Path) -> TrainConfig:
    """The training config of one demo run: exactly what `dlmtune train TRAIN_CONFIG [overrides] --objective
    OBJECTIVE --seed SEED --output_dir OUTPUT_DIR` runs (checkpoints and progress bars off: they change
    no parameter)."""
    overrides = [*((("model", config.base),) if config.base else ()),
                 *((("model.trust_remote_code", True),) if config.trust_remote_code else ()), *config.train_overrides,
                 ("objective", objective), ("seed", seed), ("output_dir", str(output_dir)),
                 ("save_strategy", "no"), ("disable_tqdm", True)]
    return load_config(config.train_config, overrides)


def reference_config(config: DemoConfig) -> TrainConfig:
    """The training config without a run's objective and seed: its model is the base, its data the SFT set."""
    return run_train_config(config, "sft", 0, "unused")


def demo_data(config: DemoConfig) -> tuple[list[dict[str, str]], dict[str, list[dict]]]:
    """The first examples of the SFT set (for the entropy picture) and the held-out test items: the test
    splits at the SFT set's data seed, which the SFT set and the base's corpus never hold."""
    data = reference_config(config).data
    train = [record.fields for record in load_records(replace(data, limit=config.entropy_examples))]
    test = {task: make_splits(task, 0, DEFAULT_N_VAL, DEFAULT_N_TEST, data.synthetic_seed)["test"][: config.items(task)]
            for task in TASKS}
    return train, test


def base_folder(config: DemoConfig) -> Path:
    name = reference_config(config).model.name_or_path
    return embedded_base_folder() if name == EMBEDDED_BASE else Path(name)


def generation_settings(config: DemoConfig, task: str) -> dict[str, Any]:
    gen_length = config.gen_length[task]
    return {"gen_length": gen_length, "block_length": config.block_length,
            "steps": gen_length // config.steps_ratio, "batch_size": config.eval_batch_size, "cache": config.cache}


Report = Callable[[str, float], None]  # (run name, work units done since the last call)
# Steady-state no-grad first passes per training step, for the progress estimate (weft and its ablations: 1)
FIRST_PASSES_PER_STEP = {"base": 0.0, "sft": 0.0, "cart": 0.0, "sft-full-logits": 0.0, "weft-k4": 0.25,
                         "gift-star": 0.0}


class StepReport(TrainerCallback):
    """Calls `on_step()` after every optimizer step (the demo's progress bar)."""

    def __init__(self, on_step: Callable[[], None]):
        self.on_step = on_step

    def on_step_end(self, args, state, control, **kwargs):
        self.on_step()


def logged_losses(folder: Path) -> list[tuple[int, float]]:
    """(step, training loss) of every logging window, from the run's log.jsonl."""
    records = [json.loads(line) for line in (folder / LOG_FILE).read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


def finetune(config: DemoConfig, objective: str, seed: int, folder: Path, on_step: Callable[[], None]) -> dict[str, Any]:
    """Train one run into `folder` (a `dlmtune train` output folder); returns the run's training record."""
    train_config = run_train_config(config, objective, seed, folder)
    summary = run_training(train_config, callbacks=[StepReport(on_step)], quiet=True)
    return {"train_seconds": summary["train_runtime_s"], "loss_curve": logged_losses(folder),
            "train_output": str(folder), "train_config": train_config.raw}


def evaluate_run(model, tokenizer, spec, test: dict[str, list[dict]], config: DemoConfig, folder: Path,
                 progress: bool, on_items: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """{"accuracy": per task (sum correct / sum total over the items; one sampler seed, greedy decoding
    being deterministic), "item_scores": per task, each item's (correct, total) in test order (the report's
    item noise), "eval_seconds"}. Items go to `evaluate_model` one sampler batch at a time, each into its own
    folder, so `on_items(task, n)` can report progress."""
    from dlmtune.evaluate import evaluate_model, item_scores

    start = time.perf_counter()
    accuracy, scores = {}, {}
    for task, items in test.items():
        scores[task] = []
        size = config.eval_batch_size
        for part, first in enumerate(range(0, len(items), size)):
            chunk = items[first : first + size]
            evaluate_model(model, tokenizer, spec, {task: chunk}, out_dir=folder / f"{task}-part{part}", seeds=[42],
                           system_prompt="", generation=generation_settings(config, task), progress=progress)
            scores[task] += item_scores(folder / f"{task}-part{part}", task, 42, len(chunk))
            if on_items is not None:
                on_items(task, len(chunk))
        accuracy[task] = pooled_accuracy(scores[task])
    return {"accuracy": accuracy, "item_scores": scores, "eval_seconds": time.perf_counter() - start}


def pooled_accuracy(scores: list[tuple[int, int]]) -> float:
    """Sum correct / sum total over items' (correct, total) scores (Sudoku: cells); NaN without any."""
    total = sum(t for _, t in scores)
    return sum(c for c, _ in scores) / total if total else float("nan")


def run_name(objective: str, seed: int | None) -> str:
    return objective if seed is None else f"{objective}-seed{seed}"


def base_section(base_dir: Path) -> list[str]:
    """What the base model is and how it was made, from the `dlmtune train` record `dlmtune pretrain` leaves."""
    lines = ["## The base model", "", f"`{base_dir}`"]
    recipe, summary_file = base_dir / "dlmtune_train.yaml", base_dir / "train_summary.json"
    if recipe.exists() and summary_file.exists():
        raw = yaml.safe_load(recipe.read_text())
        summary = json.loads(summary_file.read_text())
        lines[-1] += (f": `{raw['model']['name_or_path']}` trained {summary['global_step']} steps with "
                      f"`{raw['data']['source']}` ({summary['data']['examples']} documents) in "
                      f"{summary['train_runtime_s']:.0f} s (final loss {summary['final_loss']:.3f}); recipe in "
                      "dlmtune_train.yaml.")
    return [*lines, ""]


def run_settings(config: DemoConfig, objective: str) -> dict[str, Any]:
    """What a run's result depends on; a run file made with other settings is redone."""
    reference = reference_config(config)
    data_seed = reference.data.synthetic_seed
    evaluation = {"test_per_task": config.test_per_task, "gen_length": config.gen_length,
                  "block_length": config.block_length, "steps_ratio": config.steps_ratio,
                  "cache": config.cache, "eval_batch_size": config.eval_batch_size, "data_seed": data_seed}
    if objective == "base":
        training: dict[str, Any] = {"model": str(base_folder(config))}
    else:
        training = {k: v for k, v in run_train_config(config, objective, 0, "").raw.items()
                    if k not in ("output_dir", "seed")}
    return json.loads(json.dumps({"evaluation": evaluation, "training": training}))


def work_units(config: DemoConfig, test: dict[str, list[dict]], objective: str) -> dict[str, float]:
    """Rough cost of a run's parts in token-forwards (a training step's backward counted as two forwards,
    WeFT's extra pass as one more), so one progress bar can move evenly over training and evaluation."""
    prompt_tokens = {"sudoku": 22, "countdown": 19}  # mean lengths of the SFT examples' prompts and responses
    response_tokens = {"sudoku": 59, "countdown": 29}
    first_pass = FIRST_PASSES_PER_STEP.get(objective, 1.0)
    mean_example = sum(prompt_tokens[t] + response_tokens[t] for t in TASKS) / len(TASKS)
    training = reference_config(config).training
    step = training["per_device_train_batch_size"] * mean_example * (3 + first_pass)
    units = {"step": step if objective != "base" else 0.0, "steps": training["max_steps"]}
    for task in test:
        units[task] = (prompt_tokens[task] + config.gen_length[task]) * config.gen_length[task] / config.steps_ratio
    return units


def run_total(config: DemoConfig, test: dict[str, list[dict]], objective: str) -> float:
    units = work_units(config, test, objective)
    return units["step"] * units["steps"] + sum(units[task] * len(items) for task, items in test.items())


def execute_run(config: DemoConfig, train: list[dict[str, str]], test: dict[str, list[dict]], objective: str,
                seed: int | None, out: Path, report: Report | None = None, progress: bool = False) -> str:
    """One run: fine-tune into OUT/work/<name>/train (unless `objective` is "base"), evaluate the model read
    back from that folder, write OUT/runs/<name>.json. Single-threaded torch; the base run also draws the
    entropy picture."""
    from dlmtune.entropy_picture import picture_for_examples

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()  # the demo's own bar says what runs; one per weight loading would not
    name = run_name(objective, seed)
    units = work_units(config, test, objective)
    tell = report or (lambda _name, _units: None)
    work = out / "work" / name
    shutil.rmtree(work, ignore_errors=True)
    record: dict[str, Any] = {"name": name, "objective": objective, "seed": seed,
                              "settings": run_settings(config, objective)}
    if seed is None:
        model, tokenizer, spec = load_model(str(base_folder(config)), trust_remote_code=config.trust_remote_code)
        picture_for_examples(model, tokenizer, spec, train, out / "entropy.png", title="base model",
                             limit=config.entropy_examples)
    else:
        record |= finetune(config, objective, seed, work / "train", on_step=lambda: tell(name, units["step"]))
        model, tokenizer, spec = load_model(str(work / "train"), trust_remote_code=config.trust_remote_code)
    record |= evaluate_run(model, tokenizer, spec, test, config, work / "eval", progress,
                           on_items=lambda task, n: tell(name, units[task] * n))
    write_json_atomic(out / "runs" / f"{name}.json", record)
    return name


def _worker_run(*args: Any) -> str:
    return execute_run(*args, report=report_progress)


def demo_workers(config: DemoConfig) -> int:
    return max(1, config.workers or default_workers())


def run_demo(config: DemoConfig, out: str | Path, progress: bool = True, rl=None,
             pool: Workers | None = None) -> dict[str, Any]:
    """Run (or resume) the experiment in `out` and write the report; returns the report payload. `rl` (a
    `dlmtune.demo_rl.RLDemo`) continues every fine-tuned run with RL and adds the report's RL section.
    `pool`: workers the caller started early (`dlmtune.workers.start_workers`); without it the demo starts
    `config.workers` itself, and stops them at the end."""
    own_pool = pool is None
    if own_pool:
        pool = start_workers(demo_workers(config))
    try:
        return _run_demo(config, Path(out), progress, rl, pool)
    finally:
        if own_pool and pool is not None:
            pool.close()


def _run_demo(config: DemoConfig, out: Path, progress: bool, rl, pool: Workers | None) -> dict[str, Any]:
    from dlmtune.report import write_report

    start = time.perf_counter()
    runs_dir = out / "runs"
    base_dir = base_folder(config)
    train, test = demo_data(config)
    chance = chance_levels(test)
    plan = [("base", None)] + [(o, s) for s in range(config.seeds) for o in config.objectives]
    names = {run_name(o, s) for o, s in plan}
    for stale in runs_dir.glob("*.json"):  # objectives or seeds no longer asked for
        if stale.stem not in names:
            stale.unlink()
    todo = []
    for objective, seed in plan:
        path = runs_dir / f"{run_name(objective, seed)}.json"
        if not (path.exists() and json.loads(path.read_text()).get("settings")
                == run_settings(config, objective)):
            todo.append((objective, seed))
    todo.sort(key=lambda run: -run_total(config, test, run[0]))  # longest first: the workers finish together
    workers = pool.size if pool is not None else 1
    bar = tqdm(total=sum(run_total(config, test, o) for o, _ in todo), disable=not progress or not todo,
               desc=f"demo: {len(todo)} runs on {workers} worker{'s' * (workers > 1)}",
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
    active: dict[str, float] = {}

    def report(name: str, units: float) -> None:
        active[name] = active.get(name, 0.0) + units
        bar.update(units)
        bar.set_postfix_str(", ".join(active), refresh=False)

    if rl is not None:
        from dlmtune.demo_rl import RLRuns, rl_report_section

        rl_runs = RLRuns(config, rl, out, test, pool, progress)
    if pool is None:
        for objective, seed in todo:
            execute_run(config, train, test, objective, seed, out, report)
            active.pop(run_name(objective, seed), None)
    else:
        runs_of = {pool.pool.submit(_worker_run, config, train, test, o, s, out): (o, s) for o, s in todo}
        pending = set(runs_of)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            while not pool.progress.empty():
                report(*pool.progress.get())
            for future in done:
                active.pop(future.result(), None)  # re-raises a worker's error
                if rl is not None:
                    rl_runs.ready(*runs_of[future])
        while not pool.progress.empty():
            pool.progress.get()
    bar.close()
    if rl is not None:
        rl_runs.finish()
    runs = [json.loads((runs_dir / f"{n}.json").read_text()) for n in sorted(names)]
    run_seconds = sum((r.get("train_seconds") or 0) + r["eval_seconds"] for r in runs)
    settings = asdict(config) | {
        "base": str(base_dir), "train_config": reference_config(config).raw | {"seed": "per run", "objective": "per run",
                                                                                "output_dir": "per run"},
        "test_items": {task: len(items) for task, items in test.items()}, "workers": workers,
        "generation": {task: generation_settings(config, task) for task in test},
        "chance": "sudoku: 1/4 per empty cell (a random digit); countdown: mean over test items of the share of "
                  "the 16 operator pairs that hit the target with the numbers in the order given, (a op b) op c "
                  "(the generator makes every problem solvable that way)"}
    sections = [*base_section(base_dir), "## Wall time", "",
        f"- training and evaluation, summed over the run files: {run_seconds:.0f} s "
        f"(runs go {workers} at a time, each single-threaded)",
        f"- this invocation of the demo, end to end before the report: {time.perf_counter() - start:.0f} s "
        "(less when it resumed from existing run files)", "",
        "## The base model's entropy (WeFT's first pass)", "",
        "Each answer token's entropy with the whole answer masked: the importance WeFT starts from "
        "(beta = sqrt(H)).", "", "![entropy](entropy.png)", "",
        *(rl_report_section(rl, out) if rl is not None else [])]
    return write_report(out, list(test), chance, settings, sections)


def resolve_config(objectives: str, seeds: int | None, quick: bool, train_overrides: tuple[tuple[str, Any], ...] = (),
                   **overrides: Any) -> DemoConfig:
    """DemoConfig from the command line: --quick's sizes first, explicit values over them; `train_overrides`
    come after --quick's."""
    config = replace(DemoConfig(), **QUICK) if quick else DemoConfig()
    config = replace(config, objectives=tuple(o.strip() for o in objectives.split(",") if o.strip()),
                     train_overrides=(*config.train_overrides, *train_overrides))
    given = {k: v for k, v in overrides.items() if v is not None} | ({"seeds": seeds} if seeds else {})
    return replace(config, **given)
