"""Peak memory of a training step, counted exactly without the memory (dlmtune.memory), and the check
that the count is right.

    .venv/bin/python benchmarks/bench_memory.py --out runs/bench-memory

Part 1 (validation, real tensors): a small preset's SFT step (loss, backward, AdamW) is run on the CPU
three ways after a warm-up step: under the profiler, whose allocation events give the CPU allocator's
real peak (the reference; read through torch's private event tree, which is why only this check uses
it), under `dlmtune.memory.peak_bytes` on the real model, and under `peak_bytes(meta=True)` with the
same model on the meta device. Each is reported as the peak above what was held before the step.

Part 2 (the `llada-8b-shape` bench preset, meta device only): the same step at `--seq-len` tokens in
bf16, full fine-tuning and LoRA (r=128 on q/k/v, as `dlmtune bench train`), with and without activation
checkpointing. Peak = weights + AdamW state + batch held between steps + the step's peak above them
(gradients, activations, temporaries), i.e. what `torch.cuda.max_memory_allocated` would report in
steady state. CUDA's caching allocator rounds blocks and fragments, and kernels keep workspaces, so a
GPU needs somewhat more than this tensor count.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
from torch._C._profiler import _EventType

from dlmtune.bench import bench_config, bench_model, collator_for, random_rows
from dlmtune.io import write_json_atomic, write_text_atomic
from dlmtune.memory import peak_bytes, tensor_bytes
from dlmtune.objectives.registry import get_objective
from dlmtune.train import TrainConfig

GIB, MIB = 2**30, 2**20


def allocator_peak(step) -> int:
    """The CPU allocator's peak while `step` runs, above what it held at the start (profiler events)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation:
            events.append((node.start_time_ns, node.extra_fields.alloc_size, node.extra_fields.total_allocated))
    events.sort()
    return max(total for *_, total in events) - (events[0][2] - events[0][1])


def setting(preset: str, seq_len: int, lora_r: int | None, checkpointing: bool, dtype: str = "float32",
            batch: int = 1) -> TrainConfig:
    """The `dlmtune bench train` config of one set-up (LoRA on q/k/v with alpha = 2 r, as the bench's --lora)."""
    lora = [("lora.r", lora_r), ("lora.alpha", 2 * lora_r)] if lora_r else []
    return bench_config([("model", f"preset:{preset}"), ("model.dtype", dtype), ("data.max_length", seq_len),
                         ("per_device_train_batch_size", batch), ("activation_checkpointing", checkpointing), *lora])


class TrainingStep:
    """One SFT training step (loss, backward, AdamW) on a bench model, after one warm-up step that
    creates the optimizer state."""

    def __init__(self, config: TrainConfig, meta: bool, vocab_size: int | None = None):
        torch.manual_seed(0)
        self.model, mask_id = bench_model(config, vocab_size=vocab_size, device="meta" if meta else "cpu")
        self.meta = meta
        rows = random_rows(config.training["per_device_train_batch_size"], config.data.max_length,
                           self.model.config.vocab_size, mask_id)
        self.batch = collator_for(config)(rows)
        self.objective = get_objective("sft", config.objective, mask_id=mask_id)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=1e-5, foreach=False)
        self.seed = 0
        peak_bytes(self, meta=meta)  # warm-up: Adam's moments exist from here on

    def __call__(self) -> None:
        self.objective(self.model, self.batch, torch.Generator().manual_seed(self.seed)).loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def resident_bytes(self) -> int:
        state = [v for s in self.optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
        return tensor_bytes([*self.model.parameters(), *self.model.buffers(), *state, *self.batch.values()])


def validate(preset: str, vocab_size: int, seq_len: int, lora_r: int) -> list[dict]:
    rows = []
    for lora in (False, True):
        for checkpointing in (False, True):
            config = setting(preset, seq_len, lora_r if lora else None, checkpointing, batch=2)
            real = TrainingStep(config, meta=False, vocab_size=vocab_size)
            reference = allocator_peak(real)
            counted = peak_bytes(real)
            meta = TrainingStep(config, meta=True, vocab_size=vocab_size)
            on_meta = peak_bytes(meta, meta=True)
            rows.append({"lora": lora, "checkpointing": checkpointing, "allocator_peak": reference,
                         "counted_real": counted, "counted_meta": on_meta,
                         "meta_over_allocator": on_meta / reference,
                         "resident_real": real.resident_bytes(), "resident_meta": meta.resident_bytes()})
    return rows


def llada_8b(seq_len: int, lora_r: int) -> list[dict]:
    rows = []
    for lora in (False, True):
        for checkpointing in (False, True):
            config = setting("llada-8b-shape", seq_len, lora_r if lora else None, checkpointing, dtype="bfloat16")
            step = TrainingStep(config, meta=True)
            step_peak = peak_bytes(step, meta=True)
            resident = step.resident_bytes()
            rows.append({"lora": lora, "checkpointing": checkpointing, "resident": resident,
                         "step_peak": step_peak, "peak": resident + step_peak})
    return rows


def markdown(payload: dict) -> str:
    lines = ["Validation (" + payload["validation_config"] + "), peak above the held memory, MiB:", "",
             "| set-up | checkpointing | allocator (profiler) | counted, real | counted, meta | meta / allocator |",
             "|---|---|---|---|---|---|"]
    for r in payload["validation"]:
        lines.append(f"| {'LoRA' if r['lora'] else 'full'} | {'on' if r['checkpointing'] else 'off'} | "
                     f"{r['allocator_peak'] / MIB:.2f} | {r['counted_real'] / MIB:.2f} | "
                     f"{r['counted_meta'] / MIB:.2f} | {r['meta_over_allocator']:.4f} |")
    lines += ["", "llada-8b-shape (" + payload["llada_config"] + "), GiB:", "",
              "| set-up | checkpointing | held (weights + AdamW + batch) | step peak above it | peak |",
              "|---|---|---|---|---|"]
    for r in payload["llada_8b"]:
        lines.append(f"| {'LoRA r=' + str(payload['lora_r']) if r['lora'] else 'full'} | "
                     f"{'on' if r['checkpointing'] else 'off'} | {r['resident'] / GIB:.2f} | "
                     f"{r['step_peak'] / GIB:.2f} | **{r['peak'] / GIB:.2f}** |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="validation preset")
    parser.add_argument("--vocab-size", type=int, default=8192, help="validation vocabulary (LLaDA-like head share)")
    parser.add_argument("--validation-seq-len", type=int, default=512)
    parser.add_argument("--seq-len", type=int, default=4096, help="llada-8b-shape tokens per sequence")
    parser.add_argument("--lora-r", type=int, default=128)
    parser.add_argument("--skip-validation", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-memory"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    payload = {
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]),
        "torch": torch.__version__,
        "validation_config": f"preset {args.preset}, vocab {args.vocab_size}, fp32, batch 2 x "
                             f"{args.validation_seq_len}, LoRA r=8",
        "validation": [] if args.skip_validation else validate(args.preset, args.vocab_size, args.validation_seq_len, 8),
        "llada_config": f"bf16 weights and AdamW state, batch 1 x {args.seq_len}, SFT objective",
        "lora_r": args.lora_r,
        "llada_8b": llada_8b(args.seq_len, args.lora_r),
    }
    table = markdown(payload)
    write_json_atomic(args.out / "bench_memory.json", payload)
    write_text_atomic(args.out / "bench_memory.md", table)
    print(table)


if __name__ == "__main__":
    main()
