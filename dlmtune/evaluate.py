"""Evaluate a dLLM on reasoning tasks with the papers' protocol (d1 eval/, followed by wd1 and WeFT/GIFT).

Layout of an evaluation folder (everything needed to resume or audit a run):

    OUT/completions/<task>-seed<seed>.rank<r>.jsonl   one line per item, appended as it is generated
    OUT/results.json, OUT/results.md                   per task and seed, mean and standard error, and
                                                       the accuracy under each scoring protocol (columns)
    OUT/disagreements.jsonl                            items the dlmtune and d1 scorers judge differently

Each completion is kept twice: clean (cut at the first stop token, special tokens dropped) and raw (the
whole generated span decoded with special tokens, as d1 scores it); `protocol` picks the prompts and the
primary score, and both protocols' scores are stored (dlmtune.tasks.protocols.columns).

Resuming: items whose index already appears in a completions file are skipped, so a re-run with the
same folder continues where an interrupted one stopped (a torn last line from a kill is ignored).
OUT/completions/<task>-seed<seed>.config.json records what the completions were made with (sampler
settings except the batch size, prompt settings, and the caller's metadata, e.g. model and adapter); a
re-run that differs is refused instead of silently mixing, say, another model's completions into its
results (`dlmtune eval` writes to runs/eval unless told otherwise).
Data parallel: under `accelerate launch` each process takes every world_size-th item and writes its
own file; the main process aggregates all files once everyone is done.

Seeds drive the sampler's randomness (Gumbel noise at temperature > 0, "random" remasking). With the
papers' setting (temperature 0, low-confidence remasking) generation is deterministic, so all seeds
agree and the standard error is 0: that is a property of the protocol, not a bug, and `dlmtune eval`
refuses such seeds; the uncertainty of the papers is over training runs (dlmtune.eval_runs).
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dlmtune.config import flatten
from dlmtune.io import append_jsonl, drop_torn_tail, write_json_atomic, write_text_atomic
from dlmtune.models.spec import DLMSpec
from dlmtune.sampling import check_schedule, decode_completions, generate
from dlmtune.stats import standard_error
from dlmtune.tasks import get_task
from dlmtune.tasks.base import Score
from dlmtune.tasks.protocols.columns import COLUMNS, column_accuracies, disagreements, score_columns

FAST_THRESHOLD = 0.9
FAST_CACHE = "dual"


@dataclass(frozen=True)
class GenerationSettings:
    """Sampler settings for one task; defaults are the papers' (App. B.2) for that task."""

    gen_length: int
    block_length: int
    steps: int
    temperature: float = 0.0
    remasking: str = "low_confidence"
    threshold: float | None = None
    cache: str | None = None  # KV cache: None, "prefix" or "dual" (dlmtune.sampling)
    batch_size: int = 8

    def __post_init__(self) -> None:
        """Checked when made, so a bad combination fails before anything is written to the folder."""
        check_schedule(self.gen_length, self.block_length, self.steps)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")

    @classmethod
    def for_task(cls, task: Any, fast: bool = False, **overrides: Any) -> GenerationSettings:
        settings = cls(task.default_gen_length, task.default_block_length, task.default_steps)
        if fast:
            settings = replace(settings, threshold=FAST_THRESHOLD, cache=FAST_CACHE)
        given = {k: v for k, v in overrides.items() if v is not None}
        if "gen_length" in given and "steps" not in given:
            given["steps"] = max(given["gen_length"] // 2, 1)
        return replace(settings, **given)


def _read_done(folder: Path, stem: str) -> dict[int, dict]:
    """Records already written for `stem` by any rank, keyed by item index (torn lines skipped)."""
    done: dict[int, dict] = {}
    for path in sorted(folder.glob(f"{stem}.rank*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[int(record["index"])] = record
    return done


def item_scores(out_dir: str | Path, task_name: str, seed: int, n_items: int) -> list[tuple[float, float]]:
    """(correct, total) of each of the first `n_items` items in index order, as scored in OUT/completions."""
    records = _read_done(Path(out_dir) / "completions", f"{task_name}-seed{seed}")
    missing = [i for i in range(n_items) if i not in records]
    if missing:
        raise ValueError(f"{out_dir}: items {missing[:5]} of {task_name} (seed {seed}) were not evaluated")
    return [(float(records[i]["correct"]), float(records[i]["total"])) for i in range(n_items)]


def _run_config(settings: GenerationSettings, system_prompt: str | None, shots: Sequence[dict],
                identity: dict | None) -> dict[str, Any]:
    """What decides a task's completions (not the batch size, which only groups items), JSON-normalised."""
    generation = {k: v for k, v in asdict(settings).items() if k != "batch_size"}
    config = {"generation": generation, "system_prompt": system_prompt, "shots": list(shots),
              "identity": identity or {}}
    return json.loads(json.dumps(config, default=str))




def _check_run_config(folder: Path, stem: str, config: dict[str, Any], record: bool) -> None:
    """Refuse if the completions of `stem` were made with another config; else (with `record`) note
    `config` beside them when no note exists yet."""
    path = folder / f"{stem}.config.json"
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != config:
            then, now = flatten(previous), flatten(config)
            changed = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k))
            differences = "; ".join(f"{k}: {then.get(k)!r} then, {now.get(k)!r} now" for k in changed)
            raise ValueError(
                f"{folder}: the completions of {stem} were made with other settings ({differences}); "
                "resuming would mix the two. Use another output folder, or delete that one to start over."
            )
    elif record:
        write_json_atomic(path, config)


def _batches(indices: Sequence[int], lengths: Sequence[int], size: int) -> Iterator[list[int]]:
    """Items grouped by prompt length so a batch wastes little padding."""
    ordered = sorted(indices, key=lambda i: lengths[i])
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def _generate_batch(model, tokenizer, spec: DLMSpec, prompts: list[str], settings: GenerationSettings, generator):
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    device = next(model.parameters()).device
    input_ids = encoded["input_ids"].to(device)
    output = generate(
        model,
        input_ids,
        attention_mask=encoded["attention_mask"].to(device),
        mask_id=spec.mask_token_id,
        gen_length=settings.gen_length,
        block_length=settings.block_length,
        steps=settings.steps,
        temperature=settings.temperature,
        remasking=settings.remasking,
        threshold=settings.threshold,
        cache=settings.cache,
        shift_logits=spec.shift_logits,
        generator=generator,
    )
    raw = tokenizer.batch_decode(output[:, input_ids.shape[1]:], skip_special_tokens=False)
    return decode_completions(tokenizer, output, input_ids.shape[1], spec.stop_token_ids), raw


def run_task_seed(
    model, tokenizer, spec: DLMSpec, task_name: str, items: list[dict], seed: int, settings: GenerationSettings,
    out_dir: Path, *, system_prompt: str | None = None, shots: Sequence[dict] = (), rank: int = 0,
    world_size: int = 1, progress: bool = True, identity: dict | None = None, protocol: str = "dlmtune",
) -> float:
    """Generate and score this rank's share of `items` not yet done; returns generation seconds.
    `identity` (e.g. model and adapter) joins the settings that a resumed run must share (module doc).
    `protocol` ("dlmtune", "d1") decides the prompt and the primary score; both protocols' are recorded."""
    task = get_task(task_name, protocol)
    identity = _with_protocol(identity, protocol)
    folder = out_dir / "completions"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{task_name}-seed{seed}"
    done = _read_done(folder, stem)
    # completions older than config notes are accepted as they are (and left without a note)
    _check_run_config(folder, stem, _run_config(settings, system_prompt, shots, identity), record=not done)
    prompt_kwargs = {"shots": list(shots)} | ({} if system_prompt is None else {"system_prompt": system_prompt})
    prompts = [task.prompt(tokenizer, item, **prompt_kwargs) for item in items]
    todo = [i for i in range(rank, len(items), world_size) if i not in done]
    lengths = [len(p) for p in prompts]
    path = folder / f"{stem}.rank{rank}.jsonl"
    drop_torn_tail(path)
    generator = torch.Generator().manual_seed(seed)
    elapsed = 0.0
    bar = tqdm(total=len(todo), desc=f"{task_name} seed {seed}", unit="item", disable=not progress or not todo)
    for batch in _batches(todo, lengths, settings.batch_size):
        start = time.perf_counter()
        completions, raws = _generate_batch(model, tokenizer, spec, [prompts[i] for i in batch], settings, generator)
        elapsed += time.perf_counter() - start
        records = []
        for index, completion, raw in zip(batch, completions, raws, strict=True):
            scores = score_columns(task_name, completion, raw, items[index])
            records.append({"index": index, "completion": completion, "raw_completion": raw,
                            **scores[task.protocol], "scores": scores})
        append_jsonl(path, records)
        bar.update(len(batch))
    bar.close()
    return elapsed


def load_task_items(task_name: str, source: str | None, limit: int | None, seed: int = 0) -> list[dict]:
    """Items of a task from `source` (a local file or a Hub id); without one, Sudoku and Countdown are
    generated offline (256 items, d1's test-set size) and GSM8K / MATH500 come from their Hub ids."""
    task = get_task(task_name)
    if source is None and hasattr(task, "generate"):
        return task.generate(limit or 256, seed)
    return task.load(source or task.default_source, limit=limit)


def data_identity(task_name: str, source: str | None, seed: int = 0) -> dict[str, Any]:
    """What a task's items come from, recorded with its completions: a local file (or folder) by path and
    SHA-256 of its bytes, so an edited file is not taken for the old one; a Hub id by name; generated
    items by their generator seed."""
    task = get_task(task_name)
    if source is None and hasattr(task, "generate"):
        return {"source": "generated", "seed": seed}
    source = source or task.default_source
    path = Path(source)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
    if not files:
        return {"source": source}
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return {"source": source, "sha256": digest.hexdigest()}


def few_shot_items(task_name: str, k: int, exclude: list[dict], seed: int = 1234) -> list[dict]:
    """k solved examples for a k-shot prompt, never one of the evaluated items. Sudoku and Countdown
    draw them from the offline generator; the other tasks have no k-shot source."""
    task = get_task(task_name)
    if not hasattr(task, "generate"):
        raise ValueError(f"{task_name}: k-shot prompts need solved examples; pass --shots-from FILE, HUB_ID or train")
    excluded = {json.dumps(item, sort_keys=True) for item in exclude}
    candidates = task.generate(k + len(exclude), seed)
    return [item for item in candidates if json.dumps(item, sort_keys=True) not in excluded][:k]


def _with_protocol(identity: dict | None, protocol: str) -> dict | None:
    """The identity a run's completions are checked against; a non-default protocol (other prompts) joins it."""
    return identity if protocol == "dlmtune" else {**(identity or {}), "protocol": protocol}


def aggregate(out_dir: Path, task_items: dict[str, list[dict]], seeds: Sequence[int]) -> dict[str, Any]:
    """Per task: accuracy per seed (sum correct / sum total), mean and standard error over seeds."""
    results: dict[str, Any] = {}
    for task_name, items in task_items.items():
        task = get_task(task_name)
        per_seed = {}
        for seed in seeds:
            records = _read_done(out_dir / "completions", f"{task_name}-seed{seed}")
            kept = [r for i, r in sorted(records.items()) if i < len(items)]
            scores = [Score(correct=r["correct"], total=r["total"], extracted=r.get("extracted")) for r in kept]
            summary = task.summarize(scores) if scores else {"accuracy": float("nan"), "n": 0}
            summary["complete"] = all(i in records for i in range(len(items)))
            summary["columns"] = column_accuracies(kept)
            summary["timed_out"] = sum(bool(r.get("timed_out")) for r in kept)
            per_seed[str(seed)] = summary
        accuracies = [s["accuracy"] for s in per_seed.values() if s["n"]]
        mean, stderr = (statistics.fmean(accuracies), standard_error(accuracies)) if accuracies else (math.nan, math.nan)
        columns = {c: statistics.fmean(s["columns"][c] for s in per_seed.values()) for c in COLUMNS}
        results[task_name] = {"per_seed": per_seed, "mean": mean, "stderr": stderr, "n_items": len(items),
                              "columns": columns, "timed_out": sum(s["timed_out"] for s in per_seed.values())}
    return results


def results_markdown(results: dict[str, Any], title: str = "Evaluation") -> str:
    """One row per task; the columns "dlmtune" and "d1" score the same completions under each protocol."""
    lines = [f"# {title}", "", "| task | items | seeds | accuracy (mean ± s.e.) | per seed | dlmtune | d1 |",
             "|---|---|---|---|---|---|---|"]
    for task_name, r in results.items():
        per_seed = ", ".join(f"{seed}: {s['accuracy']:.4f}" for seed, s in r["per_seed"].items())
        columns = " | ".join(f"{r.get('columns', {}).get(c, float('nan')):.4f}" for c in COLUMNS)
        lines.append(f"| {task_name} | {r['n_items']} | {len(r['per_seed'])} | {r['mean']:.4f} ± {r['stderr']:.4f} "
                     f"| {per_seed} | {columns} |")
    lines += [f"\n{name}: {r['timed_out']} timed out while scoring (scored 0)"
              for name, r in results.items() if r.get("timed_out")]
    return "\n".join(lines) + "\n"


def evaluate_model(
    model, tokenizer, spec: DLMSpec, task_items: dict[str, list[dict]], *, out_dir: str | Path,
    seeds: Sequence[int] = (42,), fast: bool = False, generation: dict[str, Any] | None = None,
    system_prompt: str | None = None, shots: int = 0, shots_from: dict[str, list[dict]] | None = None,
    progress: bool = True, metadata: dict | None = None, protocol: str = "dlmtune",
    data: dict[str, dict] | None = None,
) -> dict[str, Any]:
    """Evaluate `model` on every task and seed; writes and returns the results (resumable, see module doc).
    `data` (task -> `data_identity`) joins that task's recorded settings, so other items are not resumed."""
    from accelerate import PartialState

    state = PartialState()
    out_dir = Path(out_dir)
    model.eval()
    settings = {name: GenerationSettings.for_task(get_task(name), fast, **(generation or {})) for name in task_items}
    shot_items: dict[str, Sequence[dict]] = {}

    def identity(task_name: str) -> dict | None:
        recorded = (metadata or {}) | ({"data": data[task_name]} if data and task_name in data else {})
        return _with_protocol(recorded or None, protocol)

    for task_name, items in task_items.items():
        given = (shots_from or {}).get(task_name)
        shot_items[task_name] = given[:shots] if given else few_shot_items(task_name, shots, exclude=items) if shots else ()
        config = _run_config(settings[task_name], system_prompt, shot_items[task_name], identity(task_name))
        for seed in seeds:  # refuse a mismatched resume before generating anything
            _check_run_config(out_dir / "completions", f"{task_name}-seed{seed}", config, record=False)
    timings: dict[str, float] = {}
    for task_name, items in task_items.items():
        for seed in seeds:
            seconds = run_task_seed(
                model, tokenizer, spec, task_name, items, seed, settings[task_name], out_dir,
                system_prompt=system_prompt, shots=shot_items[task_name], rank=state.process_index,
                world_size=state.num_processes, progress=progress and state.is_local_main_process,
                identity=identity(task_name), protocol=protocol,
            )
            timings[task_name] = timings.get(task_name, 0.0) + seconds
    state.wait_for_everyone()
    results = aggregate(out_dir, task_items, seeds)
    for task_name, r in results.items():
        r["generation"] = asdict(settings[task_name])
        r["generation_seconds_rank0"] = timings.get(task_name, 0.0)
    if state.is_main_process:
        payload = {"metadata": metadata or {}, "tasks": results}
        write_json_atomic(out_dir / "results.json", payload)
        write_text_atomic(out_dir / "results.md", results_markdown(results))
        _write_disagreements(out_dir, task_items, seeds)
    return results


def _write_disagreements(out_dir: Path, task_items: dict[str, list[dict]], seeds: Sequence[int]) -> None:
    """OUT/disagreements.jsonl: every item the two scoring protocols judge differently (module doc)."""
    found = []
    for task_name, items in task_items.items():
        for seed in seeds:
            records = _read_done(out_dir / "completions", f"{task_name}-seed{seed}")
            found += disagreements(task_name, seed, [r for i, r in sorted(records.items()) if i < len(items)])
    write_text_atomic(out_dir / "disagreements.jsonl", "".join(json.dumps(r) + "\n" for r in found))
