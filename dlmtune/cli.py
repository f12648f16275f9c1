"""The `dlmtune` command line (typer). Each command imports its module lazily so `--help` stays fast."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Fine-tune and evaluate diffusion language models.")


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
    model: str = typer.Option(..., help="Model folder, Hub id, or preset:<name>."),
    adapter: str | None = typer.Option(None, help="PEFT (LoRA) adapter folder to apply on top of --model."),
    tasks: str = typer.Option("sudoku,countdown,gsm8k,math500", help="Comma-separated task names."),
    data: list[str] = typer.Option([], help="TASK=PATH_OR_HUB_ID; default: generated (sudoku, countdown) or Hub."),
    seeds: int = typer.Option(1, help="Number of evaluation seeds (42, 43, ...)."),
    limit: int | None = typer.Option(None, help="Evaluate only the first N items of each task."),
    fast: bool = typer.Option(False, "--fast", help="Threshold parallel decoding + prefix KV cache."),
    out: Path = typer.Option(Path("runs/eval"), help="Output folder (re-running resumes)."),
    gen_length: int | None = typer.Option(None, help="Override the task's generation length."),
    block_length: int | None = typer.Option(None, help="Override the block length (default 32)."),
    steps: int | None = typer.Option(None, help="Override the diffusion steps (default gen_length / 2)."),
    threshold: float | None = typer.Option(None, help="Confidence threshold for parallel decoding."),
    batch_size: int = typer.Option(8, help="Prompts generated together."),
    shots: int = typer.Option(0, help="k-shot prompting (0 = zero-shot, the papers' main protocol)."),
    system_prompt: str | None = typer.Option(None, help="Replace the d1 system prompt ('' for none)."),
    dtype: str | None = typer.Option(None, help="float32, bfloat16 or float16 (default: the model's)."),
) -> None:
    """Evaluate a model (optionally base + LoRA adapter) on the reasoning benchmarks."""
    from accelerate import PartialState

    from dlmtune.evaluate import evaluate_model, load_task_items, results_markdown
    from dlmtune.models.loading import load_model
    from dlmtune.tasks import get_task

    task_names = _split_csv(tasks)
    for name in task_names:
        try:
            get_task(name)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--tasks") from None
    sources = _parse_pairs(data, "--data")
    unknown = set(sources) - set(task_names)
    if unknown:
        raise typer.BadParameter(f"--data names tasks not in --tasks: {sorted(unknown)}", param_hint="--data")
    loaded, tokenizer, spec = load_model(model, dtype=dtype)
    if adapter:
        from peft import PeftModel

        loaded = PeftModel.from_pretrained(loaded, adapter)
    loaded = loaded.to(PartialState().device)
    task_items = {name: load_task_items(name, sources.get(name), limit) for name in task_names}
    generation = {"gen_length": gen_length, "block_length": block_length, "steps": steps,
                  "threshold": threshold, "batch_size": batch_size}
    results = evaluate_model(
        loaded, tokenizer, spec, task_items, out_dir=out, seeds=[42 + i for i in range(seeds)], fast=fast,
        generation=generation, system_prompt=system_prompt, shots=shots,
        metadata={"model": model, "adapter": adapter, "fast": fast},
    )
    typer.echo(results_markdown(results))
    typer.echo(f"results: {out / 'results.json'}")


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_command(
    ctx: typer.Context,
    config: Path | None = typer.Argument(None, help="YAML config (keys: TrainingArguments + model/data/objective/lora)."),
) -> None:
    """Fine-tune a dLLM. Any config key can be overridden: --objective weft --max_steps 20 --lora.r 16.

    Many processes: `accelerate launch --config_file configs/accelerate/ddp.yaml -m dlmtune train CONFIG`.
    """
    import logging

    from accelerate import PartialState

    from dlmtune.config import ConfigError, parse_overrides
    from dlmtune.data import DataError
    from dlmtune.train import load_config, run_training

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        train_config = load_config(config, parse_overrides(ctx.args))
        summary = run_training(train_config)
    except (ConfigError, DataError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if not PartialState().is_main_process:
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

    from dlmtune.config import ConfigError, parse_overrides
    from dlmtune.rl.config import load_rl_config
    from dlmtune.rl.run import run_rl

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        rl_config = load_rl_config(config, parse_overrides(ctx.args))
        summary = run_rl(rl_config)
    except (ConfigError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if PartialState().is_main_process:
        typer.echo(f"done: {summary['global_step']} steps, {summary['seconds_per_step'] or 0:.2f} s/step "
                   f"(rollout share {summary.get('rollout_share') or 0:.0%}); saved to {rl_config.training['output_dir']}")


bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: training-step cost, sampler speed.")
app.add_typer(bench_app, name="bench")


@bench_app.command("train")
def bench_train_command(
    preset: str = typer.Option("tiny", help="micro, tiny, small, or llada-8b-shape (for a GPU)."),
    objectives: str = typer.Option("sft,weft", help="Comma-separated; sft-full-logits = unoptimised sft."),
    lora: bool = typer.Option(False, "--lora/--full", help="LoRA on q/k/v or full fine-tuning."),
    lora_r: int = typer.Option(8, help="LoRA rank (the papers use 128)."),
    seq_len: int = typer.Option(256, help="Tokens per sequence."),
    batch: int = typer.Option(8, help="Sequences per step."),
    steps: int = typer.Option(10, help="Measured rounds (each runs every objective once)."),
    warmup: int = typer.Option(2, help="Unmeasured rounds first."),
    dtype: str = typer.Option("float32", help="float32 or bfloat16."),
    vocab_size: int | None = typer.Option(None, help="Override the preset's vocabulary size."),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="Measure peak memory (CPU: child processes)."),
    chunk_size: int = typer.Option(256, help="First-pass rows per LM-head chunk (objective.chunk_size)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results as JSON here."),
) -> None:
    """Median step time, peak memory and tokens/s per objective, with ratios to sft from the same run."""
    from dlmtune.bench import BenchConfig, bench_train
    from dlmtune.io import write_json_atomic

    config = BenchConfig(preset=preset, objectives=tuple(_split_csv(objectives)), lora=lora, lora_r=lora_r,
                         seq_len=seq_len, batch=batch, steps=steps, warmup=warmup, dtype=dtype,
                         vocab_size=vocab_size, measure_memory=memory, chunk_size=chunk_size)
    result = bench_train(config)
    typer.echo(f"device: {result['device']}; FLOP floor weft/sft: {result['flop_floor_weft_over_sft']:.3f}")
    typer.echo(f"{'objective':<18}{'step s':>10}{'tokens/s':>12}{'peak MiB':>11}{'time/sft':>10}{'mem/sft':>9}")
    for name, r in result["objectives"].items():
        mem_ratio = f"{r['mem_ratio_to_sft']:.3f}" if r["mem_ratio_to_sft"] else "-"
        time_ratio = f"{r['ratio_to_sft']:.3f}" if r["ratio_to_sft"] else "-"
        typer.echo(f"{name:<18}{r['step_time_s']:>10.4f}{r['tokens_per_s']:>12.0f}"
                   f"{r['peak_mem_bytes'] / 2**20:>11.1f}{time_ratio:>10}{mem_ratio:>9}")
    if json_out:
        write_json_atomic(json_out, result)


@app.command("pretrain")
def pretrain_command(
    preset: str = typer.Option("tiny", help="Model preset to pretrain (micro, tiny, small)."),
    out: Path = typer.Option(Path("runs/base-tiny"), help="Folder for the model and tokenizer."),
    steps: int | None = typer.Option(None, help="Optimizer steps (default: the shipped recipe's)."),
    documents: int | None = typer.Option(None, help="Corpus size in documents."),
    seed: int = typer.Option(0, help="Seed of the corpus, the initial weights and the masks."),
) -> None:
    """Build the embedded base dLLM: masked-diffusion pretraining on the synthetic corpus."""
    from dataclasses import replace

    from dlmtune.pretrain import PretrainConfig, pretrain

    overrides = {k: v for k, v in {"steps": steps, "documents": documents}.items() if v is not None}
    typer.echo(f"base model written to {pretrain(replace(PretrainConfig(preset=preset, seed=seed), **overrides), out)}")


@app.command("demo")
def demo_command(
    objectives: str = typer.Option(
        "sft,weft", help="Comma-separated objectives to compare: any registered one or variant (weft-k4, gift-star)."),
    seeds: int | None = typer.Option(None, help="Training seeds per objective (default 3, --quick 1)."),
    quick: bool = typer.Option(False, "--quick", help="The short version: one seed, fewer steps and items."),
    out: Path = typer.Option(Path("runs/demo"), help="Output folder (re-running resumes)."),
    base: Path | None = typer.Option(None, help="Base model folder (default: the shipped pretrained tiny dLLM)."),
    max_steps: int | None = typer.Option(None, "--steps", hidden=True, help="Override training steps."),
    test_per_task: int | None = typer.Option(None, "--items", hidden=True, help="Override test items per task."),
    train_per_task: int | None = typer.Option(None, "--train-items", hidden=True, help="Override SFT items per task."),
) -> None:
    """SFT vs WeFT on the embedded tiny dLLM: fine-tune, evaluate, and write OUT/report.md and report.png."""
    from dlmtune.demo import resolve_config, run_demo

    config = resolve_config(objectives, seeds, quick, base=str(base) if base else None, max_steps=max_steps,
                            test_per_task=test_per_task, train_per_task=train_per_task)
    report = run_demo(config, out)
    typer.echo(report["table"])
    typer.echo(f"report: {out / 'report.md'}")


@app.command("entropy")
def entropy_command(
    model: str = typer.Option(..., help="Model folder (or Hub id) with a mask token."),
    data: str = typer.Option(..., help="A generated task (sudoku, countdown) or any data source train reads."),
    out: Path = typer.Option(Path("entropy.png"), help="PNG to write (an .html of the example goes beside it)."),
    limit: int = typer.Option(64, help="Examples to measure."),
) -> None:
    """The papers' Figure 2: answer tokens ranked by entropy under the model, and one shaded example."""
    from dlmtune.data import DataError
    from dlmtune.entropy_picture import entropy_command as run

    try:
        ranking = run(model, data, out, limit)
    except DataError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    for label, count, mean in ranking:
        typer.echo(f"{label!s:>14} {count:>6} {mean:.3f}")
    typer.echo(f"picture: {out} and {out.with_suffix('.html')}")


@app.command("merge")
def merge_command(
    adapter: str = typer.Option(..., help="PEFT (LoRA) adapter folder or Hub id."),
    out: Path = typer.Option(..., help="Folder for the merged model and tokenizer (must not exist or be empty)."),
    base: str | None = typer.Option(None, help="Base model folder, Hub id or preset:<name> (default: the adapter's)."),
    dtype: str | None = typer.Option(None, help="float32, bfloat16 or float16 (default: the model's)."),
) -> None:
    """Fold a LoRA adapter into its base model and save a plain model folder (e.g. as the start of RL)."""
    from dlmtune.models.lora import merge_adapter

    typer.echo(f"merged model written to {merge_adapter(base, adapter, out, dtype=dtype)}")


def main() -> None:
    app()
