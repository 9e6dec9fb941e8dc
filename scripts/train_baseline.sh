#!/usr/bin/env bash
# The diffusion baseline of docs/benchmarks.md §5 (issue 22): class x tint conditioned pixel UNet
# (diffusers UNet2DModel, channels 32,64,64), DDPM training on the shared training loop, 4200 s of
# training-loop time on one thread (the dev FID_cls monitor's time included). Resumable: rerun the same
# command and it continues from the latest checkpoint until the total budget is spent.
#   bash scripts/train_baseline.sh [OUT]        (default runs/baseline-v2; log in OUT/log.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/baseline-v2}"
PY="${PYTHON:-python}"
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
exec nice -n 5 "$PY" -m bitdance.cli train-baseline train \
  --budget-minutes 70 --out "$OUT" \
  --channels 32,64,64 --layers-per-block 1 --attention-levels 2 \
  --batch-size 32 --lr 5e-4 --warmup 100 --ema 0.998 --label-dropout 0.1 --grad-clip 1.0 \
  --ckpt-every 200 --eval-every 800 --dev-n 128 --dev-steps 10 --dev-cfg 1,2 \
  --seed 0 --threads 1 >> "$OUT/log.txt" 2>&1
