"""`dlmtune rl CONFIG.yaml [--key value ...]`: one RL run, read top to bottom.

config -> training arguments -> model (+ LoRA) -> prompts and reward functions -> RLTrainer -> train (or
resume) -> save model, tokenizer, summary. The output folder is a `save_pretrained` folder (a PEFT
adapter folder with LoRA) that `dlmtune eval --model OUT` reads, plus `dlmtune_rl.yaml` (the resolved
config), `log.jsonl` (per step: reward, its std and per-function means, KL, clip fraction, completion
length, seconds split into rollout and update) and `rl_summary.json`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import PrinterCallback

from dlmtune.config import ConfigError, to_yaml
from dlmtune.io import write_json_atomic, write_text_atomic
from dlmtune.rl.config import RLRunConfig, training_arguments
from dlmtune.rl.prompts import PromptSet
from dlmtune.rl.rewards import build_rewards
from dlmtune.rl.trainer import RLTrainer
from dlmtune.train import build_model, parameters_in_sync

logger = logging.getLogger(__name__)


def _refuse_adapter_start(name_or_path: str) -> None:
    folder = Path(name_or_path)
    if folder.is_dir() and (folder / "adapter_config.json").exists() and not (folder / "config.json").exists():
        raise ConfigError(f"model: {name_or_path} is a LoRA adapter folder; RL starts from a full model: fold the "
                          f"adapter in first with `dlmtune merge --adapter {name_or_path} --out MERGED`")


def run_rl(config: RLRunConfig, callbacks: list | None = None, quiet: bool = False) -> dict[str, Any]:
    """Train as configured (extra Trainer `callbacks` optional); returns the summary also written to
    OUTPUT_DIR/rl_summary.json. `quiet` keeps the log records off stdout (they still go to log.jsonl), for
    callers with their own progress display (the demo)."""
    args = training_arguments(config)
    if args.max_steps <= 0:
        raise ConfigError("max_steps is required for RL (each optimizer step is one inner update), e.g. --max_steps 24")
    _refuse_adapter_start(config.model.name_or_path)
    model, tokenizer, spec = build_model(config)
    try:
        with args.main_process_first(desc="prompts"):
            prompts = PromptSet.build(config.data, tokenizer)
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from None
    rewards = build_rewards(prompts.task, config.rl.rewards)
    trainer = RLTrainer(model=model, args=args, processing_class=tokenizer, spec=spec, rl=config.rl,
                        prompts=prompts, rewards=rewards, callbacks=callbacks)
    if quiet:
        trainer.remove_callback(PrinterCallback)  # added by the Trainer when its progress bar is off
    if trainer.is_world_process_zero():
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("rl %s on %s (%d prompts) from %s: %d trainable parameters, %d completions per step and rank",
                    config.rl.algorithm, config.data.task, len(prompts.items), config.model.name_or_path, trainable,
                    args.per_device_train_batch_size * args.gradient_accumulation_steps)
    result = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    trainer.save_model()
    summary = {
        "algorithm": config.rl.algorithm,
        "model": config.model.name_or_path,
        "task": config.data.task,
        "lora": config.lora is not None,
        "global_step": trainer.state.global_step,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "world_size": args.world_size,
        **trainer.timing_summary(),
        "parameters_in_sync": parameters_in_sync(trainer),
    }
    if trainer.is_world_process_zero():
        out = Path(args.output_dir)
        write_text_atomic(out / "dlmtune_rl.yaml", to_yaml(config.raw))
        write_json_atomic(out / "rl_summary.json", summary)
    return summary
