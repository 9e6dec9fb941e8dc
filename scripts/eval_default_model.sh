#!/usr/bin/env bash
# Every number the reference docs (README.md, docs/model_card.md, docs/benchmarks.md, docs/quantization.md)
# quote for a model (default: the shipped bitdance-mini), measured one run at a time on one torch thread.
# Raw reports (JSON + Markdown + plots) land in $EVAL (default runs/eval), logs beside them; then
# `bitdance docs collect` turns them into the committed reports docs/results/*.json and `bitdance docs build`
# rewrites every generated table and number in the docs from those reports.
# Usage: bash scripts/eval_default_model.sh [MODEL] [BASELINE]   (RESUME=1 skips the steps already done)
#   BASELINE: a trained diffusion baseline folder (bitdance train-baseline train ...);
#   the side-by-side comparison is skipped when it does not exist.
# Quality numbers use the held-out split `test-heldout` (Fashion-MNIST test items 5000-9999 without the
# tokenizer runs' monitor items; docs/benchmarks.md "Which data steered which decision"). The prompt-adherence
# reports (docs/results/adherence_*.json) come from the adherence commands in docs/evaluation.md.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-.venv/bin/bitdance}
MODEL=${1:-bitdance-mini}
BASELINE=${2:-runs/baseline}
EVAL=${EVAL:-runs/eval}
RESULTS=${RESULTS:-docs/results}
VS_N=${VS_N:-200}
export OMP_NUM_THREADS=1
mkdir -p "$EVAL"

run() {  # NAME, then the bitdance command line; its log is $EVAL/NAME.log, $EVAL/NAME.done marks success
  local name=$1; shift
  if [ "${RESUME:-0}" = 1 ] && [ -f "$EVAL/$name.done" ]; then echo "skip $name (done; RESUME=1)"; return; fi
  echo "$(date -u +%H:%M:%S) $name"
  rm -f "$EVAL/$name.done"
  $B "$@" > "$EVAL/$name.log" 2>&1
  touch "$EVAL/$name.done"
}

H="--data fashion_mnist --split test-heldout"
run tokenizer-heldout eval tokenizer --model "$MODEL" $H --n 2000 --threads 1 --out "$EVAL/tokenizer-heldout"
# the items that steered the decoder fine-tunes, for the "which data steered" table only
run tokenizer-steered eval tokenizer --model "$MODEL" --data fashion_mnist --split test --n 1000 --threads 1 \
  --out "$EVAL/tokenizer-steered"
run fid-heldout eval fid --model "$MODEL" $H --n 1000 --features cls,effnet --threads 1 --out "$EVAL/fid-heldout"
for p in 16 1; do
  run "fid-heldout-p$p" eval fid --model "$MODEL" $H --n 1000 --features cls --parallel $p --threads 1 \
    --out "$EVAL/fid-heldout-p$p"
done
run int8-model quantize --model "$MODEL" --scheme int8-dynamic -o "$EVAL/int8-model" --force
run fid-heldout-int8 eval fid --model "$EVAL/int8-model" $H --n 1000 --features cls --threads 1 \
  --out "$EVAL/fid-heldout-int8"
run bench bench --model "$MODEL" --threads 1 --out "$EVAL/bench"
run quant quantize --report --model "$MODEL" --scheme int8-dynamic --samples 64 --threads 1 --json "$EVAL/quant.json"
run fid-floor eval fid --compare-split train $H --n 1000 --features cls,effnet --threads 1 --out "$EVAL/fid-floor"
if [ -f "$BASELINE/export/baseline.json" ]; then
  run versus bench --vs-diffusion --model "$MODEL" --baseline "$BASELINE" $H --n "$VS_N" --threads 1 \
    --out "$EVAL/versus"
fi
$B docs collect "$EVAL" --out "$RESULTS"
$B docs build
