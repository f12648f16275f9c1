"""`dlmtune train CONFIG.yaml [--key value ...]`: one fine-tuning run, read top to bottom.

config -> training arguments (first, so DeepSpeed ZeRO-3 can shard while loading) -> model (+ LoRA)
-> data -> objective -> DiffusionTrainer -> train (or resume) -> save model, tokenizer, summary.

The output folder is a `save_pretrained` folder (a PEFT adapter folder with LoRA) plus
`dlmtune_train.yaml` (the resolved config), `log.jsonl` (every log record) and `train_summary.json`
(gradient-norm statistics, time per step, data counts).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import PrinterCallback, TrainerCallback

from dlmtune.config import (
    ConfigError,
    apply_overrides,
    build_dataclass,
    check_keys,
    check_types,
    overridden_keys,
    read_yaml,
    to_yaml,
)
from dlmtune.data import DataConfig, DiffusionDataCollator, build_sft_dataset
from dlmtune.guards import RunPlan, output_dir_lock, prepare_output_dir
from dlmtune.io import write_json_atomic, write_text_atomic
from dlmtune.nonfinite import check_finite_weights
from dlmtune.objectives import ObjectiveConfig, get_objective
from dlmtune.objectives.cache import cache_metadata
from dlmtune.trainer import DiffusionTrainer, DiffusionTrainingArguments

logger = logging.getLogger(__name__)

GIFT_STAR_CACHE = "gift_star_entropy.safetensors"
EMBEDDED_CONFIGS = Path(__file__).parent / "assets" / "configs"  # configs/tiny.yaml etc. link here


def embedded_config(name: str) -> Path:
    """A config shipped with the package: `tiny` (the demo's fine-tuning), `pretrain-tiny` (the base's recipe)."""
    path = EMBEDDED_CONFIGS / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in EMBEDDED_CONFIGS.glob("*.yaml")))
        raise ConfigError(f"no shipped config {name!r}; shipped configs: {known}")
    return path


@dataclass
class ModelConfig:
    """Which model, and what to tell the method about it when its config does not say."""

    name_or_path: str = "preset:tiny"  # a save_pretrained folder, a Hub id, or preset:NAME
    dtype: str | None = None  # float32 / bfloat16 / float16 / auto (None: the checkpoint's)
    trust_remote_code: bool = False  # run the model's own code (auto_map); LLaDA and Dream load natively
    attn_implementation: str | None = None
    mask_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    shift_logits: bool | None = None  # Dream-style models: True (known families are recognised)

    def __post_init__(self) -> None:
        from dlmtune.models.loading import DTYPES

        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"dtype: expected one of {', '.join(DTYPES)} (or leave it unset), got {self.dtype!r}")


@dataclass
class LoraConfig:
    """LoRA on the listed modules (the papers: r 128, alpha 256, dropout 0.05, q/k/v)."""

    r: int = 128
    alpha: int = 256
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj"])
    modules_to_save: list[str] | None = None

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"r (the LoRA rank) must be >= 1, got {self.r}; use `lora: null` for full fine-tuning")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ValueError("target_modules: name at least one module (e.g. [q_proj, k_proj, v_proj])")


@dataclass
class TrainConfig:
    model: ModelConfig
    data: DataConfig
    objective_name: str
    objective: ObjectiveConfig
    lora: LoraConfig | None
    training: dict[str, Any]  # DiffusionTrainingArguments fields
    raw: dict[str, Any] = field(repr=False)  # the resolved YAML mapping, saved with the run


SECTIONS = ("model", "data", "objective", "lora")
SHORTHANDS = {"model": "name_or_path", "data": "source", "objective": "name", "lora": "r"}


def load_config(path: str | Path | None, overrides: list[tuple[str, Any]] = ()) -> TrainConfig:
    """Read, override and check a training config; every mistake is reported before any loading."""
    where = str(path) if path else "config"
    raw = apply_overrides(read_yaml(path) if path else {}, overrides, SHORTHANDS)
    if isinstance(raw.get("resume_from_checkpoint"), bool):  # `true`: the newest checkpoint; `false`: none
        raw["resume_from_checkpoint"] = "true" if raw["resume_from_checkpoint"] else None
    flags = overridden_keys(overrides, SHORTHANDS)
    training = {k: v for k, v in raw.items() if k not in SECTIONS}
    known = {f.name for f in dataclasses.fields(DiffusionTrainingArguments) if f.init}
    check_keys(training, known, where)
    check_types(DiffusionTrainingArguments, training, where, flags)
    if "output_dir" not in training:
        raise ConfigError(f"{where}: output_dir is required (e.g. --output_dir runs/my-run)")
    objective = dict(raw.get("objective") or {})
    name = objective.pop("name", "sft")
    try:
        get_objective(name, mask_id=0)  # fails early, listing the known names
    except ValueError as error:
        raise ConfigError(f"{where}: objective: {error}") from None
    lora = raw.get("lora")
    if "data" not in raw or not raw["data"]:
        raise ConfigError(f"{where}: a data section with a source is required (e.g. data: {{source: data.jsonl}})")
    return TrainConfig(
        model=build_dataclass(ModelConfig, raw.get("model"), f"{where}: model", flags, "model."),
        data=build_dataclass(DataConfig, raw.get("data"), f"{where}: data", flags, "data."),
        objective_name=name,
        objective=build_dataclass(ObjectiveConfig, objective, f"{where}: objective", flags, "objective."),
        lora=build_dataclass(LoraConfig, lora, f"{where}: lora", flags, "lora.") if lora not in (None, False) else None,
        training=training,
        raw=raw,
    )


def training_arguments(config: TrainConfig) -> DiffusionTrainingArguments:
    try:
        return DiffusionTrainingArguments(**config.training)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"training arguments: {error}") from None


def build_model(config: TrainConfig):
    """(model, tokenizer, spec), with LoRA applied when the config has a lora section."""
    from dlmtune.models.loading import load_model

    m = config.model
    spec_overrides = {"mask_token_id": m.mask_token_id, "eos_token_id": m.eos_token_id,
                      "pad_token_id": m.pad_token_id, "shift_logits": m.shift_logits}
    model, tokenizer, spec = load_model(m.name_or_path, dtype=m.dtype, trust_remote_code=m.trust_remote_code,
                                        attn_implementation=m.attn_implementation, spec_overrides=spec_overrides)
    return apply_lora_section(model, config), tokenizer, spec


def apply_lora_section(model, config: TrainConfig):
    """`model` with the config's LoRA adapters (unchanged without a lora section)."""
    from dlmtune.models.lora import apply_lora

    if config.lora is None:
        return model
    lora = config.lora
    model = apply_lora(model, r=lora.r, alpha=lora.alpha, dropout=lora.dropout,
                       target_modules=lora.target_modules, modules_to_save=lora.modules_to_save)
    if config.training.get("activation_checkpointing") or config.training.get("gradient_checkpointing"):
        model.enable_input_require_grads()  # checkpointed LoRA needs a grad path through the embeddings
    return model


def precompute_entropies(trainer: DiffusionTrainer, dataset, collator, fingerprint: str, model_name: str) -> None:
    """For an objective that asks for it (GIFT*): the initial model's entropies for every example, once,
    kept in OUTPUT_DIR and reused by later runs (and resumes) on the same data set and model."""
    objective, args = trainer.objective, trainer.args
    path = Path(args.output_dir) / GIFT_STAR_CACHE
    key = {"fingerprint": str(fingerprint), "model": model_name}
    with args.main_process_first(desc="gift-star entropies"):
        if path.exists() and cache_metadata(path) == key:
            objective.load_precomputed(path)
            return
        loader = DataLoader(dataset, batch_size=args.per_device_eval_batch_size, collate_fn=collator)
        model = trainer.model.to(args.device)
        objective.precompute(model, ({k: v.to(args.device) for k, v in b.items()} for b in loader))
        if args.process_index == 0:
            objective.cache.save(path, metadata=key)


def run_training(config: TrainConfig, callbacks: Sequence[TrainerCallback] = (), quiet: bool = False) -> dict[str, Any]:
    """Train as configured; returns the summary also written to OUTPUT_DIR/train_summary.json (with
    `already_finished` when a resumed run had nothing left to do). The output folder is guarded and the
    resolved config written first (`dlmtune.guards`). `callbacks` are extra `TrainerCallback`s (e.g. the
    demo's progress bar); `quiet` keeps the log records off stdout (they still go to log.jsonl), for a
    caller that draws its own progress."""
    args = training_arguments(config)
    main = args.process_index == 0
    with output_dir_lock(args.output_dir, enabled=main):
        plan = decided_on_main(args, lambda: _plan_run(config, args))
        if plan.finished is not None:
            return {**plan.finished, "already_finished": True}
        return _train(config, args, plan, callbacks, quiet)


def _plan_run(config: TrainConfig, args: DiffusionTrainingArguments) -> RunPlan:
    plan = prepare_output_dir(args.output_dir, args.resume_from_checkpoint, args.overwrite_output_dir,
                              args.max_steps, resolved_config(config), _saved_resolved_config,
                              args.allow_config_change)
    write_text_atomic(Path(args.output_dir) / "dlmtune_train.yaml", to_yaml(config.raw))
    return plan


def decided_on_main(args: DiffusionTrainingArguments, decide):
    """`decide()` run on the main process and its result (or its ConfigError) shared with every rank."""
    result = None
    if args.process_index == 0:
        try:
            result = decide()
        except ConfigError as error:
            result = error
    if args.world_size > 1:
        from accelerate.utils import broadcast_object_list

        result = broadcast_object_list([result], from_process=0)[0]
    if isinstance(result, ConfigError):
        raise result
    return result


def resolved_config(config: TrainConfig) -> dict[str, Any]:
    """Every setting of the run with its default filled in, so a resume compares values, not spellings."""
    defaults = {f.name: f.default for f in dataclasses.fields(DiffusionTrainingArguments)
                if f.init and f.default is not dataclasses.MISSING}
    return {
        "model": dataclasses.asdict(config.model), "data": dataclasses.asdict(config.data),
        "objective": {"name": config.objective_name, **dataclasses.asdict(config.objective)},
        "lora": dataclasses.asdict(config.lora) if config.lora else None,
        "training": {**defaults, **config.training},
    }


def _saved_resolved_config(path: Path) -> dict[str, Any]:
    try:
        return resolved_config(load_config(path))
    except ConfigError as error:
        raise ConfigError(f"{path} (the config of the checkpoints' run) no longer loads: {error}") from None


def _train(config: TrainConfig, args: DiffusionTrainingArguments, plan: RunPlan,
           callbacks: Sequence[TrainerCallback], quiet: bool) -> dict[str, Any]:
    model, tokenizer, spec = build_model(config)
    with args.main_process_first(desc="tokenising"):
        dataset, data_report = build_sft_dataset(tokenizer, config.data)
    collator = DiffusionDataCollator.from_config(config.data, tokenizer.eos_token_id)
    objective = get_objective(config.objective_name, config.objective, mask_id=spec.mask_token_id,
                              shift_logits=spec.shift_logits)
    trainer = DiffusionTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                               processing_class=tokenizer, objective=objective, callbacks=list(callbacks))
    if quiet:
        trainer.remove_callback(PrinterCallback)  # added by the Trainer when its progress bar is off
    if trainer.is_world_process_zero():
        logger.info("data: %s", data_report)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("model %s (%s): %d trainable parameters; objective %s", config.model.name_or_path,
                    spec.family, trainable, config.objective_name)
    if objective.precompute_before_training:
        precompute_entropies(trainer, dataset, collator, data_report["fingerprint"], config.model.name_or_path)
    if plan.finish_from is not None:  # killed while saving the final model: nothing left to train
        runtime, final_loss = None, trainer.restore_finished(plan.finish_from)
    else:
        result = trainer.train(resume_from_checkpoint=str(plan.checkpoint) if plan.checkpoint else None)
        runtime, final_loss = result.metrics.get("train_runtime"), result.training_loss
    check_finite_weights(trainer.model, trainer.state.global_step, args)
    trainer.save_model()
    summary = {
        "objective": config.objective_name,
        "model": config.model.name_or_path,
        "lora": config.lora is not None,
        "train_runtime_s": runtime,
        "final_loss": final_loss,
        "data": data_report,
        **trainer.training_summary(),
        "parameters_in_sync": parameters_in_sync(trainer),
    }
    if trainer.is_world_process_zero():
        write_json_atomic(Path(args.output_dir) / "train_summary.json", summary)
    return summary


def parameters_in_sync(trainer: DiffusionTrainer) -> bool:
    """Whether every rank ends with the same trainable parameters (a float64 checksum per rank)."""
    checksum = sum(p.detach().double().sum() for p in trainer.model.parameters() if p.requires_grad)
    checksum = torch.as_tensor(checksum, dtype=torch.float64, device=trainer.args.device).reshape(1)
    gathered = trainer.accelerator.gather(checksum)
    return bool(torch.all(gathered == gathered[0]).item())
