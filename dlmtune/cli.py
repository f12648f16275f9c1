"""The `dlmtune` command line (typer). Each command imports its module lazily so `--help` stays fast."""

from __future__ import annotations

from pathlib import Path

import typer

from dlmtune.errors import DEBUG_KEY, UserErrorGroup

app = typer.Typer(cls=UserErrorGroup, no_args_is_help=True, add_completion=False,
                  help="Fine-tune and evaluate diffusion language models.")


@app.callback()
def global_options(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of any error (before the command)."),
) -> None:
    """Fine-tune and evaluate diffusion language models. A user error prints one message and exits 2."""
    ctx.meta[DEBUG_KEY] = debug


TRUST_REMOTE_CODE_HELP = "Run the model's own code (its config.json auto_map); off by default: LLaDA and Dream load natively."


def _split_csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _parse_pairs(pairs: list[str], option: str) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise typer.BadParameter(f"expected TASK=PATH, got {pair!r}", param_hint=option)
        parsed[key.strip()] = value.strip()
    return parsed


@app.command("eval")
def eval_command(
    model: str = typer.Option(..., help="Model folder, Hub id, or preset:<name>; several runs: A,B,C or a glob."),
    adapter: str | None = typer.Option(None, help="PEFT (LoRA) adapter folder on --model; several runs: A,B or a glob."),
    tasks: str = typer.Option("sudoku,countdown,gsm8k,math500", help="Comma-separated task names."),
    data: list[str] = typer.Option([], help="TASK=PATH_OR_HUB_ID; default: generated (sudoku, countdown) or Hub."),
    seeds: int = typer.Option(1, min=1, help="Evaluation seeds (42, 43, ...); refused where decoding is deterministic."),
    limit: int | None = typer.Option(None, min=1, help="Evaluate only the first N items of each task."),
    fast: bool = typer.Option(False, "--fast", help="Threshold parallel decoding + dual (prefix and suffix) KV cache."),
    out: Path = typer.Option(Path("runs/eval"), help="Output folder (re-running resumes)."),
    gen_length: int | None = typer.Option(None, min=1, help="Override the task's generation length."),
    block_length: int | None = typer.Option(None, min=1, help="Override the block length (default 32)."),
    steps: int | None = typer.Option(None, min=1, help="Override the diffusion steps (default gen_length / 2)."),
    threshold: float | None = typer.Option(None, min=0.0, max=1.0, help="Confidence threshold for parallel decoding, in (0, 1]."),
    batch_size: int = typer.Option(8, min=1, help="Prompts generated together."),
    shots: int = typer.Option(0, min=0, help="k-shot prompting (0 = zero-shot, the papers' main protocol)."),
    shots_from: str | None = typer.Option(None, help="Solved examples for --shots: FILE, Hub id, or 'train'."),
    system_prompt: str | None = typer.Option(None, help="Replace the protocol's system prompt ('' for none)."),
    protocol: str = typer.Option("dlmtune", help="Prompts and primary scoring: dlmtune, or d1 / wd1 (the papers')."),
    testset: str | None = typer.Option(None, help="d1 or wd1: the papers' published test sets (files in data/)."),
    gen_lengths: str | None = typer.Option(None, help="Several generation lengths, one column each: 128,256,512."),
    temperature: float = typer.Option(0.0, min=0.0, help="Sampling temperature (0 = greedy, the papers')."),
    remasking: str = typer.Option("low_confidence", help="low_confidence (the papers') or random."),
    dtype: str | None = typer.Option(None, help="float32, bfloat16 or float16 (default: the model's)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help=TRUST_REMOTE_CODE_HELP),
) -> None:
    """Evaluate a model (optionally base + LoRA adapter), or several training runs, on the reasoning benchmarks."""
    from dlmtune.eval_runs import check_seeds, evaluate_runs, expand_runs, runs_markdown
    from dlmtune.evaluate import (
        GenerationSettings,
        data_identity,
        evaluate_model,
        load_task_items,
        results_markdown,
    )
    from dlmtune.tasks import get_task
    from dlmtune.tasks.shots import load_shots
    from dlmtune.tasks.testsets import load_testset

    task_names = _split_csv(tasks)
    for name in task_names:
        try:
            get_task(name, protocol)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--tasks / --protocol") from None
    try:
        check_seeds(seeds, temperature, remasking)
        models, adapters = expand_runs(model), expand_runs(adapter) if adapter else [None]
        lengths = [int(length) for length in _split_csv(gen_lengths)] if gen_lengths else [gen_length]
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if len(models) > 1 and len(adapters) > 1:
        raise typer.BadParameter("several --model and several --adapter: give runs as one or the other")
    if gen_lengths and gen_length:
        raise typer.BadParameter("--gen-length and --gen-lengths: give one", param_hint="--gen-lengths")
    if shots_from and not shots:
        raise typer.BadParameter("--shots-from needs --shots K", param_hint="--shots-from")
    sources = _parse_pairs(data, "--data")
    unknown = set(sources) - set(task_names)
    if unknown:
        raise typer.BadParameter(f"--data names tasks not in --tasks: {sorted(unknown)}", param_hint="--data")
    generation = {"gen_length": lengths[0], "block_length": block_length, "steps": steps, "threshold": threshold,
                  "batch_size": batch_size, "temperature": temperature, "remasking": remasking}
    for name in task_names:  # a bad combination fails here, before the model loads or anything is written
        for length in lengths:
            GenerationSettings.for_task(get_task(name, protocol), fast, **{**generation, "gen_length": length})
    try:
        if testset:
            task_items = {name: load_testset(name, testset, sources.get(name), limit=limit) for name in task_names}
        else:
            task_items = {name: load_task_items(name, sources.get(name), limit) for name in task_names}
        examples = {name: load_shots(name, shots, shots_from, exclude=items)
                    for name, items in task_items.items()} if shots_from else None
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    options = {"seeds": [42 + i for i in range(seeds)], "fast": fast, "system_prompt": system_prompt,
               "shots": shots, "shots_from": examples, "protocol": protocol,
               "data": {name: {"testset": testset} if testset else data_identity(name, sources.get(name))
                        for name in task_names}}
    runs = [(m, a) for m in models for a in adapters]
    if len(runs) == 1 and len(lengths) == 1:
        (run_model, run_adapter), = runs
        loaded, tokenizer, spec = _load_run(run_model, run_adapter, dtype, trust_remote_code)
        results = evaluate_model(loaded, tokenizer, spec, task_items, out_dir=out, generation=generation,
                                 metadata={"model": run_model, "adapter": run_adapter, "fast": fast, "dtype": dtype},
                                 **options)
        typer.echo(results_markdown(results))
    else:
        summary = evaluate_runs(runs, lengths, lambda m, a: _load_run(m, a, dtype, trust_remote_code), task_items, out, generation,
                                {"fast": fast, "testset": testset, "dtype": dtype}, **options)
        typer.echo(runs_markdown(summary, [a or m for m, a in runs], lengths))
    typer.echo(f"results: {out / 'results.json'}")


def _load_run(model: str, adapter: str | None, dtype: str | None, trust_remote_code: bool):
    """(model, tokenizer, spec) of one run: a model, optionally with a PEFT adapter, on this process's device."""
    from accelerate import PartialState

    from dlmtune.models.loading import load_model

    loaded, tokenizer, spec = load_model(model, dtype=dtype, adapter=adapter, trust_remote_code=trust_remote_code)
    return loaded.to(PartialState().device), tokenizer, spec


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_command(
    ctx: typer.Context,
    config: Path | None = typer.Argument(None, help="YAML config (keys: TrainingArguments + model/data/objective/lora)."),
) -> None:
    """Fine-tune a dLLM. Any config key can be overridden: --objective weft --max_steps 20 --lora.r 16.

    Many processes: `accelerate launch --config_file configs/accelerate/ddp.yaml -m dlmtune train CONFIG`.
    """
    run_train_cli(config, ctx.args)


def close_process_group() -> None:
    """End the distributed process group (if any) once a command's collectives are over: left to interpreter
    shutdown, gloo's threads can abort a rank that has finished its work ("terminate called without an
    active exception"), failing a run that succeeded."""
    from accelerate import PartialState

    PartialState().destroy_process_group()


def run_train_cli(config: Path | None, args: list[str]) -> None:
    """`dlmtune train CONFIG ARGS`; user errors become one message through the app's error handling."""
    import logging

    from accelerate import PartialState

    from dlmtune.config import parse_overrides
    from dlmtune.train import load_config, run_training

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train_config = load_config(config, parse_overrides(args))
    summary = run_training(train_config)
    close_process_group()
    if not PartialState().is_main_process:
        return
    if summary.get("already_finished"):
        typer.echo(f"already finished: {summary['global_step']} steps in {train_config.training['output_dir']}; "
                   "nothing to do (to train longer: a higher max_steps and --allow_config_change true)")
        return
    grad = summary["grad_norm"] or {}
    typer.echo(f"done: {summary['global_step']} steps, final loss {summary['final_loss']:.4f}, "
               f"{summary['seconds_per_step'] or 0:.3f} s/step, grad norm max {grad.get('max', float('nan')):.3f}; "
               f"saved to {train_config.training['output_dir']}")


@app.command("rl", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def rl_command(
    ctx: typer.Context,
    config: Path | None = typer.Argument(None, help="YAML config (keys: TrainingArguments + model/data/rl/lora)."),
) -> None:
    """RL after fine-tuning: diffu-GRPO (d1) or wd1. Overrides as in train: --rl wd1 --max_steps 24 --data.size 64.

    Many processes: `accelerate launch --config_file configs/accelerate/ddp.yaml -m dlmtune rl CONFIG`.
    """
    import logging

    from accelerate import PartialState

    from dlmtune.config import parse_overrides
    from dlmtune.rl.config import load_rl_config
    from dlmtune.rl.run import run_rl

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rl_config = load_rl_config(config, parse_overrides(ctx.args))
    summary = run_rl(rl_config)
    close_process_group()
    if PartialState().is_main_process:
        typer.echo(f"done: {summary['global_step']} steps, {summary['seconds_per_step'] or 0:.2f} s/step "
                   f"(rollout share {summary.get('rollout_share') or 0:.0%}); saved to {rl_config.training['output_dir']}")


bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: training-step cost, sampler speed.")
app.add_typer(bench_app, name="bench")


@bench_app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_train_command(
    ctx: typer.Context,
    preset: str = typer.Option("tiny", help="micro, tiny, small, or llada-8b-shape (for a GPU)."),
    objectives: str = typer.Option("sft,weft", help="Comma-separated; sft-full-logits = unoptimised sft."),
    lora: bool = typer.Option(False, "--lora/--full", help="LoRA on q/k/v or full fine-tuning."),
    lora_r: int = typer.Option(8, help="LoRA rank (the papers use 128); alpha = 2 r."),
    seq_len: int = typer.Option(256, help="Tokens per sequence (data.max_length)."),
    batch: int = typer.Option(8, help="Sequences per step (per_device_train_batch_size)."),
    steps: int = typer.Option(10, help="Measured rounds (each runs every objective once)."),
    warmup: int = typer.Option(2, help="Unmeasured rounds first."),
    dtype: str = typer.Option("float32", help="float32 or bfloat16 (model.dtype)."),
    vocab_size: int | None = typer.Option(None, help="Override the preset's vocabulary size."),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="Measure peak memory."),
    chunk_size: int = typer.Option(256, help="First-pass rows per LM-head chunk (objective.chunk_size)."),
    activation_checkpointing: bool = typer.Option(False, "--activation-checkpointing/--no-activation-checkpointing",
                                                  help="Recompute each layer in the backward."),
    layers: int | None = typer.Option(None, help="Override the preset's layer count."),
    device: str | None = typer.Option(None, help="cpu to stay off a GPU (default: cuda if available)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results as JSON here."),
) -> None:
    """Median step time, peak memory and tokens/s per objective, with ratios to sft from the same training
    run (DiffusionTrainer). Any `dlmtune train` key can follow as an override: --gradient_checkpointing true."""
    from dlmtune.bench import bench_config, bench_train
    from dlmtune.config import parse_overrides
    from dlmtune.io import write_json_atomic

    options = [("model", f"preset:{preset}"), ("model.dtype", dtype), ("data.max_length", seq_len),
               ("per_device_train_batch_size", batch), ("objective.chunk_size", chunk_size)]
    if lora:
        options += [("lora.r", lora_r), ("lora.alpha", 2 * lora_r)]
    if activation_checkpointing:
        options.append(("activation_checkpointing", True))
    if device not in (None, "cpu", "cuda"):
        raise typer.BadParameter(f"got {device!r}; the trainer picks cuda when there is one, so pass cpu to stay "
                                 "off it, or cuda", param_hint="--device")
    if device == "cpu":
        options.append(("use_cpu", True))
    config = bench_config([*options, *parse_overrides(ctx.args)])
    result = bench_train(config, _split_csv(objectives), steps=steps, warmup=warmup, vocab_size=vocab_size,
                         measure_memory=memory, layers=layers)
    typer.echo(f"device: {result['device']}; attention: {result['attn_implementation']}; "
               f"FLOP floor weft/sft: {result['flop_floor_weft_over_sft']:.3f}")
    typer.echo(f"{'objective':<18}{'step s':>10}{'tokens/s':>12}{'peak MiB':>11}{'time/sft':>10}{'mem/sft':>9}")
    for name, r in result["objectives"].items():
        mem_ratio = f"{r['mem_ratio_to_sft']:.3f}" if r["mem_ratio_to_sft"] else "-"
        time_ratio = f"{r['ratio_to_sft']:.3f}" if r["ratio_to_sft"] else "-"
        typer.echo(f"{name:<18}{r['step_time_s']:>10.4f}{r['tokens_per_s']:>12.0f}"
                   f"{r['peak_mem_bytes'] / 2**20:>11.1f}{time_ratio:>10}{mem_ratio:>9}")
    if json_out:
        write_json_atomic(json_out, result)


@bench_app.command("sample")
def bench_sample_command(
    preset: str = typer.Option("tiny", help="micro, tiny, small, or llada-8b-shape (for a GPU)."),
    dtype: str = typer.Option("float32", help="float32 or bfloat16."),
    batch: str = typer.Option("1,8", help="Comma-separated batch sizes."),
    prompt_len: int = typer.Option(128, help="Random prompt tokens per row."),
    gen_length: int = typer.Option(256),
    block_length: int = typer.Option(32),
    steps: int = typer.Option(256, help="Diffusion steps (gen_length = one token per step)."),
    threshold: float = typer.Option(0.9, help="Confidence threshold of the threshold and fast variants."),
    variants: str = typer.Option("plain,prefix,dual,fast", help="Of plain, prefix, dual, threshold, fast."),
    rounds: int = typer.Option(2, help="Timed decodes per variant and batch size (median reported)."),
    layers: int | None = typer.Option(None, help="Override the preset's layer count."),
    vocab_size: int | None = typer.Option(None, help="Override the preset's vocabulary size."),
    device: str | None = typer.Option(None, help="cpu to stay off a GPU (default: cuda if available)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results as JSON here."),
) -> None:
    """Sampler speed on a random-weight model: tokens/s per variant and batch size, speed-up over plain."""
    from dlmtune.bench_sampling import SampleBenchConfig, bench_sample
    from dlmtune.io import write_json_atomic

    config = SampleBenchConfig(preset=preset, dtype=dtype, device=device, layers=layers, vocab_size=vocab_size,
                               batches=tuple(int(b) for b in _split_csv(batch)), prompt_len=prompt_len,
                               gen_length=gen_length, block_length=block_length, steps=steps, threshold=threshold,
                               variants=tuple(_split_csv(variants)), rounds=rounds)
    result = bench_sample(config)
    typer.echo(f"device: {result['device']}; attention: {result['attn_implementation']}")
    typer.echo(f"{'batch':<7}{'variant':<10}{'s/call':>9}{'tokens/s':>11}{'forwards':>10}{'speed-up':>10}")
    for size, per_batch in result["batches"].items():
        for name, r in per_batch.items():
            typer.echo(f"{size:<7}{name:<10}{r['seconds']:>9.3f}{r['tokens_per_s']:>11.1f}{r['forwards']:>10}"
                       f"{r['speedup_over_plain']:>10.2f}")
    if json_out:
        write_json_atomic(json_out, result)


@app.command("pretrain", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def pretrain_command(
    ctx: typer.Context,
    out: Path = typer.Option(Path("runs/base-tiny"), help="Folder for the model and tokenizer."),
    config: Path | None = typer.Option(None, help="Recipe (default: configs/pretrain-tiny.yaml, the shipped base's)."),
) -> None:
    """Build the embedded base dLLM: `dlmtune train` on the pretraining recipe. Any key can be overridden
    as in `dlmtune train`: --max_steps 20 --data.synthetic_size 1000 --seed 1."""
    from dlmtune.train import embedded_config

    run_train_cli(config or embedded_config("pretrain-tiny"), [*ctx.args, "--output_dir", str(out)])
    typer.echo(f"base model written to {out}")


@app.command("demo")
def demo_command(
    objectives: str = typer.Option(
        "sft,weft", help="Comma-separated objectives to compare: any registered one or variant (weft-k4, gift-star)."),
    seeds: int | None = typer.Option(None, help="Training seeds per objective (default 5, --quick 1)."),
    quick: bool = typer.Option(False, "--quick", help="The short version: one seed, fewer steps and items."),
    out: Path = typer.Option(Path("runs/demo"), help="Output folder (re-running resumes)."),
    base: Path | None = typer.Option(None, help="Base model folder (default: the shipped pretrained tiny dLLM)."),
    max_steps: int | None = typer.Option(None, "--steps", hidden=True, help="Override training steps."),
    test_per_task: int | None = typer.Option(None, "--items", hidden=True, help="Override test items per task."),
    train_per_task: int | None = typer.Option(None, "--train-items", hidden=True, help="Override SFT items per task."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help=TRUST_REMOTE_CODE_HELP),
    rl: bool = typer.Option(False, "--rl", help="Then continue every fine-tuned run with RL on Sudoku and evaluate it."),
) -> None:
    """SFT vs WeFT on the embedded tiny dLLM: fine-tune (configs/tiny.yaml), evaluate, and write OUT/report.md."""
    from dlmtune.workers import default_workers, start_workers

    pool = start_workers(default_workers())  # before the imports below: the workers start while this process does
    try:
        from dlmtune.demo import resolve_config, run_demo
        from dlmtune.demo_rl import RLDemo

        train = {"max_steps": max_steps, "data.synthetic_size": train_per_task}
        config = resolve_config(objectives, seeds, quick, base=str(base) if base else None, test_per_task=test_per_task,
                                trust_remote_code=trust_remote_code or None,
                                train_overrides=tuple((k, v) for k, v in train.items() if v is not None))
        report = run_demo(config, out, rl=RLDemo(quick=quick) if rl else None, pool=pool)
    finally:
        if pool is not None:
            pool.close()
    typer.echo(report["table"])
    typer.echo(f"report: {out / 'report.md'}")


@app.command("entropy")
def entropy_command(
    model: str = typer.Option(..., help="Model folder (or Hub id) with a mask token."),
    data: str = typer.Option(..., help="A generated task (sudoku, countdown) or any data source train reads."),
    out: Path = typer.Option(Path("entropy.png"), help="PNG to write (an .html of the example goes beside it)."),
    limit: int = typer.Option(64, help="Examples to measure."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help=TRUST_REMOTE_CODE_HELP),
) -> None:
    """The papers' Figure 2: answer tokens ranked by entropy under the model, and one shaded example."""
    from dlmtune.entropy_picture import entropy_command as run

    ranking = run(model, data, out, limit, trust_remote_code=trust_remote_code)
    for label, count, mean in ranking:
        typer.echo(f"{label!s:>14} {count:>6} {mean:.3f}")
    typer.echo(f"picture: {out} and {out.with_suffix('.html')}")


@app.command("merge")
def merge_command(
    adapter: str = typer.Option(..., help="PEFT (LoRA) adapter folder or Hub id."),
    out: Path = typer.Option(..., help="Folder for the merged model and tokenizer (must not exist or be empty)."),
    base: str | None = typer.Option(None, help="Base model folder, Hub id or preset:<name> (default: the adapter's)."),
    dtype: str | None = typer.Option(None, help="float32, bfloat16 or float16 (default: the model's)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help=TRUST_REMOTE_CODE_HELP),
) -> None:
    """Fold a LoRA adapter into its base model and save a plain model folder (e.g. as the start of RL)."""
    from dlmtune.models.lora import merge_adapter

    typer.echo(f"merged model written to {merge_adapter(base, adapter, out, dtype=dtype, trust_remote_code=trust_remote_code)}")


def main() -> None:
    app()
