"""`dlmtune demo`: the SFT-vs-WeFT experiment of the papers, shrunk to the embedded tiny dLLM.

One base model (the shipped pretrained `tiny` preset) is fine-tuned with each objective on the same
small SFT set (the analogue of s1K: about a thousand solver traces of Sudoku and Countdown), once per
training seed; every result and the base are evaluated with LLaDA's sampler on held-out items; the
report is then built only from the per-run files in OUT/runs. A re-run with the same OUT skips the runs
whose file exists and was made with the same settings, so an interrupted demo resumes.

Parallelism: runs are independent, so they go to `workers` processes (default: one per CPU core, at most
two), each with single-threaded torch. At this width every op is tiny: two OpenMP threads in one process
gain less than a second process does on an idle machine, and on a busy one they spend their time waiting
for each other (measured: a micro demo 12x slower with 2 threads than with 1 while other jobs ran).
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dlmtune.io import write_json_atomic
from dlmtune.models.loading import load_model
from dlmtune.models.spec import DLMSpec
from dlmtune.pretrain import DEMO_DATA_SEED, TrainArgs, encode, ensure_base, train_model
from dlmtune.synthetic import make_splits, sft_examples
from dlmtune.synthetic.countdown import OPS
from dlmtune.synthetic.splits import DEFAULT_N_TEST, DEFAULT_N_VAL
from dlmtune.tasks.countdown import evaluate_expression

TASKS = ("sudoku", "countdown")
DATA_SEED = DEMO_DATA_SEED  # the splits whose held-out items the base never saw
SUDOKU_CHANCE = 0.25  # a uniformly random digit in an empty cell


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the experiment; the defaults fit the 10-minute budget on two CPU cores. Training
    hyperparameters carry `transformers.TrainingArguments` meanings (`train_args`)."""

    objectives: tuple[str, ...] = ("sft", "weft")
    seeds: int = 5  # t-interval half-width at 5 seeds: 1.24 sd; at 3: 2.48 sd
    train_per_task: int = 500  # 2 tasks x 500 = the s1K-sized SFT set
    test_per_task: int | dict[str, int] = field(default_factory=lambda: {"sudoku": 32, "countdown": 256})  # d1: 256
    max_steps: int = 300
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.1
    gen_length: dict[str, int] = field(default_factory=lambda: {"sudoku": 64, "countdown": 32})  # longest answers: 59, 31
    block_length: int = 32
    steps_ratio: int = 2  # diffusion steps = gen_length / steps_ratio (the papers use 2)
    eval_batch_size: int = 64
    entropy_examples: int = 64  # examples measured for the base model's entropy picture
    workers: int | None = None  # processes running runs side by side; None = min(2, CPU cores)
    base: str | None = None  # a pretrained base folder; None = the shipped one

    def items(self, task: str) -> int:
        """Held-out test items of `task`."""
        return self.test_per_task if isinstance(self.test_per_task, int) else self.test_per_task[task]

    def train_args(self, seed: int) -> TrainArgs:
        """The fine-tuning hyperparameters in `transformers.TrainingArguments` terms."""
        return TrainArgs(max_steps=self.max_steps, per_device_train_batch_size=self.batch_size,
                         learning_rate=self.learning_rate, warmup_ratio=self.warmup_ratio,
                         weight_decay=self.weight_decay, seed=seed)


QUICK = {"seeds": 1, "max_steps": 80, "test_per_task": {"sudoku": 16, "countdown": 32}}


def countdown_chance(item: dict) -> float:
    """Probability that (a op b) op c, the numbers in the order given and two uniformly random operators,
    hits the target: the accuracy of guessing with the knowledge that every generated problem is solvable
    that way (8.2% on the demo's 256 test items, where a uniformly random expression in any order and
    bracketing hits 6.0%)."""
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


def demo_data(config: DemoConfig) -> tuple[list[dict[str, str]], dict[str, list[dict]]]:
    """The SFT set (the tasks' train splits, interleaved) and the held-out test items (test splits)."""
    per_task = [sft_examples(task, config.train_per_task, DATA_SEED, "train") for task in TASKS]
    train = [ex for group in zip(*per_task, strict=True) for ex in group]
    test = {task: make_splits(task, 0, DEFAULT_N_VAL, DEFAULT_N_TEST, DATA_SEED)["test"][: config.items(task)]
            for task in TASKS}
    return train, test


def generation_settings(config: DemoConfig, task: str) -> dict[str, Any]:
    gen_length = config.gen_length[task]
    return {"gen_length": gen_length, "block_length": config.block_length,
            "steps": gen_length // config.steps_ratio, "batch_size": config.eval_batch_size}


def load_base(folder: Path) -> tuple[Any, Any, DLMSpec]:
    return load_model(str(folder))


Report = Callable[[str, float], None]
# Steady-state no-grad first passes per training step, for the progress estimate (weft and its ablations: 1)
FIRST_PASSES_PER_STEP = {"base": 0.0, "sft": 0.0, "cart": 0.0, "sft-full-logits": 0.0, "weft-k4": 0.25,
                         "gift-star": 0.0}  # (run name, work units done since the last call)


def finetune(base_dir: Path, train: list[dict[str, str]], objective: str, seed: int, config: DemoConfig,
             progress: bool, on_step: Callable[[int, float], None] | None = None,
             ) -> tuple[Any, Any, DLMSpec, dict[str, Any]]:
    """Fine-tune a fresh copy of the base with `objective`; returns the model and the run's training record."""
    model, tokenizer, spec = load_base(base_dir)
    sequences = [encode(tokenizer, ex["prompt"], ex["response"]) for ex in train]
    args = config.train_args(seed)
    curve, seconds = train_model(model, sequences, args, objective=objective, mask_id=spec.mask_token_id,
                                 pad_id=spec.pad_token_id, desc=f"{objective} seed {seed}", progress=progress,
                                 on_step=on_step)
    return model, tokenizer, spec, {"train_seconds": seconds, "loss_curve": curve,
                                    "trainer_arguments": asdict(args)}


def evaluate_run(model, tokenizer, spec, test: dict[str, list[dict]], config: DemoConfig, folder: Path,
                 progress: bool, on_items: Callable[[str, int], None] | None = None,
                 ) -> tuple[dict[str, float], float]:
    """Accuracy per task (sum correct / sum total over the items; one sampler seed, greedy decoding being
    deterministic) and the seconds it took. Items go to `evaluate_model` one sampler batch at a time, each
    into its own folder, so `on_items(task, n)` can report progress."""
    from dlmtune.evaluate import evaluate_model

    start = time.perf_counter()
    accuracy = {}
    for task, items in test.items():
        correct = total = 0.0
        size = config.eval_batch_size
        for part, first in enumerate(range(0, len(items), size)):
            chunk = items[first : first + size]
            results = evaluate_model(model, tokenizer, spec, {task: chunk}, out_dir=folder / f"{task}-part{part}",
                                     seeds=[42], system_prompt="", generation=generation_settings(config, task),
                                     progress=progress)
            scored = results[task]["per_seed"]["42"]
            correct, total = correct + scored["correct"], total + scored["total"]
            if on_items is not None:
                on_items(task, len(chunk))
        accuracy[task] = correct / total if total else float("nan")
    return accuracy, time.perf_counter() - start


def run_name(objective: str, seed: int | None) -> str:
    return objective if seed is None else f"{objective}-seed{seed}"


def base_section(base_dir: Path) -> list[str]:
    """What the base model is and how it was made, from its `pretrain.json` when it has one."""
    lines = ["## The base model", "", f"`{base_dir}`"]
    record_path = base_dir / "pretrain.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        args = record.get("trainer_arguments", {})
        lines[-1] += (f": the `{record['config']['preset']}` preset ({record.get('parameters', 0) / 1e6:.2f}M "
                      f"parameters), {args.get('max_steps')} steps of masked-diffusion pretraining on "
                      f"{record['config']['documents']} synthetic documents in {record['train_seconds']:.0f} s "
                      f"(final loss {record['loss_curve'][-1][1]:.3f}); recipe in pretrain.json.")
    return [*lines, ""]


def run_settings(config: DemoConfig, base_dir: Path, objective: str) -> dict[str, Any]:
    """What a run's result depends on; a run file made with other settings is redone."""
    fields = asdict(config)
    for key in ("objectives", "seeds", "entropy_examples", "workers", "base"):
        fields.pop(key)
    if objective == "base":
        for key in ("train_per_task", "max_steps", "batch_size", "learning_rate", "warmup_ratio", "weight_decay"):
            fields.pop(key)
    return json.loads(json.dumps(fields | {"base": str(base_dir), "data_seed": DATA_SEED}))


def work_units(config: DemoConfig, test: dict[str, list[dict]], objective: str) -> dict[str, float]:
    """Rough cost of a run's parts in token-forwards (a training step's backward counted as two forwards,
    WeFT's extra pass as one more), so one progress bar can move evenly over training and evaluation."""
    prompt_tokens = {"sudoku": 55, "countdown": 32}  # mean lengths of the SFT examples' prompts and responses
    response_tokens = {"sudoku": 59, "countdown": 29}
    first_pass = FIRST_PASSES_PER_STEP.get(objective, 1.0)
    mean_example = sum(prompt_tokens[t] + response_tokens[t] for t in TASKS) / len(TASKS)
    step = config.batch_size * mean_example * (3 + first_pass)
    units = {"step": step if objective != "base" else 0.0}
    for task in test:
        units[task] = (prompt_tokens[task] + config.gen_length[task]) * config.gen_length[task] / config.steps_ratio
    return units


def run_total(config: DemoConfig, test: dict[str, list[dict]], objective: str) -> float:
    units = work_units(config, test, objective)
    return units["step"] * config.max_steps + sum(units[task] * len(items) for task, items in test.items())


def execute_run(config: DemoConfig, base_dir: Path, train: list[dict[str, str]], test: dict[str, list[dict]],
                objective: str, seed: int | None, out: Path, report: Report | None = None,
                progress: bool = False) -> str:
    """One run: fine-tune (unless `objective` is "base"), evaluate, write OUT/runs/<name>.json. Single-threaded
    torch; the base run also draws the entropy picture."""
    from dlmtune.entropy_picture import picture_for_examples

    torch.set_num_threads(1)
    name = run_name(objective, seed)
    units = work_units(config, test, objective)
    tell = report or (lambda _name, _units: None)
    work = out / "work" / name
    shutil.rmtree(work, ignore_errors=True)
    record: dict[str, Any] = {"name": name, "objective": objective, "seed": seed,
                              "settings": run_settings(config, base_dir, objective)}
    if seed is None:
        model, tokenizer, spec = load_base(base_dir)
        picture_for_examples(model, tokenizer, spec, train, out / "entropy.png", title="base model",
                             limit=config.entropy_examples)
    else:
        model, tokenizer, spec, trained = finetune(base_dir, train, objective, seed, config, progress,
                                                   on_step=lambda step, loss: tell(name, units["step"]))
        record |= trained
    record["accuracy"], record["eval_seconds"] = evaluate_run(
        model, tokenizer, spec, test, config, work / "eval", progress,
        on_items=lambda task, n: tell(name, units[task] * n))
    write_json_atomic(out / "runs" / f"{name}.json", record)
    return name


_QUEUE = None


def _worker_init(queue) -> None:
    global _QUEUE
    _QUEUE = queue
    torch.set_num_threads(1)


def _worker_run(*args: Any) -> str:
    return execute_run(*args, report=lambda name, units: _QUEUE.put((name, units)))


def demo_workers(config: DemoConfig) -> int:
    return max(1, config.workers or min(2, os.cpu_count() or 1))


def run_demo(config: DemoConfig, out: str | Path, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the experiment in `out` and write the report; returns the report payload."""
    from dlmtune.report import write_report

    start = time.perf_counter()
    out = Path(out)
    runs_dir = out / "runs"
    base_dir = ensure_base(config.base)
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
                == run_settings(config, base_dir, objective)):
            todo.append((objective, seed))
    todo.sort(key=lambda run: -run_total(config, test, run[0]))  # longest first: the workers finish together
    workers = min(demo_workers(config), max(len(todo), 1))
    bar = tqdm(total=sum(run_total(config, test, o) for o, _ in todo), disable=not progress or not todo,
               desc=f"demo: {len(todo)} runs on {workers} worker{'s' * (workers > 1)}",
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
    active: dict[str, float] = {}

    def report(name: str, units: float) -> None:
        active[name] = active.get(name, 0.0) + units
        bar.update(units)
        bar.set_postfix_str(", ".join(active), refresh=False)

    if workers == 1:
        for objective, seed in todo:
            execute_run(config, base_dir, train, test, objective, seed, out, report)
            active.pop(run_name(objective, seed), None)
    elif todo:
        context = multiprocessing.get_context("spawn")  # no fork of a process already running torch threads
        queue = context.Manager().Queue()
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(queue,)) as pool:
            pending = {pool.submit(_worker_run, config, base_dir, train, test, o, s, out) for o, s in todo}
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                while not queue.empty():
                    report(*queue.get())
                for future in done:
                    active.pop(future.result(), None)  # re-raises a worker's error
            while not queue.empty():
                queue.get()
    bar.close()
    runs = [json.loads((runs_dir / f"{n}.json").read_text()) for n in sorted(names)]
    run_seconds = sum((r.get("train_seconds") or 0) + r["eval_seconds"] for r in runs)
    settings = asdict(config) | {
        "base": str(base_dir), "data_seed": DATA_SEED, "train_examples": len(train),
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
        "(beta = sqrt(H)).", "", "![entropy](entropy.png)", ""]
    return write_report(out, list(test), chance, settings, sections)


def resolve_config(objectives: str, seeds: int | None, quick: bool, **overrides: Any) -> DemoConfig:
    """DemoConfig from the command line: --quick's sizes first, explicit values over them."""
    config = replace(DemoConfig(), **QUICK) if quick else DemoConfig()
    config = replace(config, objectives=tuple(o.strip() for o in objectives.split(",") if o.strip()))
    given = {k: v for k, v in overrides.items() if v is not None} | ({"seeds": seeds} if seeds else {})
    return replace(config, **given)
