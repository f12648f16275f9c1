#!/usr/bin/env bash
# Training-step cost of every objective against sft, as recorded in BENCHMARKS.md.
#   bash benchmarks/train_step.sh [OUT_DIR]
# Each line is one `dlmtune bench train` run: DiffusionTrainer's steps with the objectives interleaved in
# one run, ratios to sft from that run. vocab 8192 gives the tiny model an LM head whose cost matters, as
# LLaDA's 126k does. Each run prints its table and writes OUT_DIR/NAME.json.
set -euo pipefail
out=${1:-runs/bench-train}
mkdir -p "$out"
bench() { name=$1; shift; OMP_NUM_THREADS=1 nice -n 5 .venv/bin/dlmtune bench train "$@" --json "$out/$name.json" | tee "$out/$name.txt"; }
all=sft,weft,weft-k4,gift-star,sft-full-logits
bench tiny-full-256   --preset tiny --vocab-size 8192 --full --objectives $all --seq-len 256 --batch 8 --steps 6
bench tiny-lora-256   --preset tiny --vocab-size 8192 --lora --lora-r 8 --objectives $all --seq-len 256 --batch 8 --steps 6
bench small-full-256  --preset small --objectives $all --seq-len 256 --batch 8 --steps 6
for len in 256 512 1024 2048 4096; do
  bench "tiny-full-len$len" --preset tiny --vocab-size 8192 --full --objectives sft,weft --seq-len $len --batch 1 --steps 3 --warmup 1
done
