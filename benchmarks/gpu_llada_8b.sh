#!/usr/bin/env bash
# LLaDA-8B's shape on one GPU (random weights, bf16), as recorded in BENCHMARKS.md "GPU (H200) at real shapes".
#   bash benchmarks/gpu_llada_8b.sh [OUT_DIR]        (5 minutes on an H200; peaks at 72.4 GiB of GPU memory)
# Each line is one `dlmtune bench` run in its own process, most important first; JSON per run in OUT_DIR.
# DLMTUNE overrides the command (e.g. "python3 -m dlmtune"); MODEL, LEN, SHORT, GEN shrink it for a CPU dry run
# (MODEL="--preset micro" LEN=64 SHORT=32 GEN=64).
set -uo pipefail
out=${1:-benchmarks/results}
mkdir -p "$out"
cli=${DLMTUNE:-dlmtune}
model=${MODEL:-"--preset llada-8b-shape --dtype bfloat16"}
len=${LEN:-4096}; short=${SHORT:-1024}; gen=${GEN:-256}
all=sft,weft,weft-k4,gift-star,sft-full-logits
t0=$SECONDS
bench() {  # NAME TIMEOUT ARGS...
  echo "== $1 (at $((SECONDS - t0)) s)"; local limit=$2; shift 2
  timeout "$limit" $cli bench "$@" 2>&1 | grep -v -i warn
}
# shellcheck disable=SC2086  # $model and $cli are word lists
{
bench lora128-$len 150 train $model --lora --lora-r 128 --seq-len $len --batch 1 --steps 5 --warmup 2 --objectives $all --json $out/lora128-$len.json
bench full-ckpt-$len 150 train $model --full --activation-checkpointing --seq-len $len --batch 1 --steps 5 --warmup 2 --objectives $all --json $out/full-ckpt-$len.json
bench sample 200 sample $model --batch 1,8 --prompt-len 128 --gen-length $gen --block-length 32 --steps $gen --variants plain,prefix,dual,fast --rounds 2 --json $out/sample.json
bench lora128-$short 100 train $model --lora --lora-r 128 --seq-len $short --batch 1 --steps 5 --warmup 2 --objectives sft,weft,sft-full-logits --json $out/lora128-$short.json
bench full-$len 100 train $model --full --seq-len $len --batch 1 --steps 3 --warmup 1 --objectives sft,sft-full-logits --json $out/full-$len.json
bench lora128-ckpt-$len 100 train $model --lora --lora-r 128 --activation-checkpointing --seq-len $len --batch 1 --steps 3 --warmup 1 --objectives sft,weft --json $out/lora128-ckpt-$len.json
}
echo "== done (at $((SECONDS - t0)) s)"
