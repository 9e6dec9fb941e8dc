#!/usr/bin/env bash
# Every number in docs/model_card.md and docs/benchmarks.md §7, measured on a model (default: the shipped
# bitdance-mini). Reports (JSON + Markdown + plots) land in $EVAL (default runs/eval); logs beside them.
# Usage: bash scripts/eval_default_model.sh [MODEL] [BASELINE]
#   BASELINE: a trained diffusion baseline folder (python -m bitdance.evaluation.baseline train ...);
#   the side-by-side comparison is skipped when it does not exist.
# Two independent halves run at once (one torch thread each), which suits a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
B=.venv/bin/bitdance
PY=.venv/bin/python
MODEL=${1:-bitdance-mini}
BASELINE=${2:-runs/baseline}
EVAL=${EVAL:-runs/eval}
VS_N=${VS_N:-200}
export OMP_NUM_THREADS=1
mkdir -p "$EVAL"

half_a() {
  $B eval adherence --model "$MODEL" --prompts default --seeds 0,1,2,3 --threads 1 \
    --out "$EVAL/adherence-default" > "$EVAL/adh-default.log" 2>&1
  $B eval adherence --model "$MODEL" --prompts paraphrase --seeds 0,1,2,3 --threads 1 \
    --out "$EVAL/adherence-paraphrase" > "$EVAL/adh-para.log" 2>&1
  # the training monitors (not targets; docs/benchmarks.md §3)
  for suite in emoji-monitor shapes-monitor; do
    $B eval adherence --model "$MODEL" --prompts $suite --seeds 0,1,2,3 --threads 1 \
      --out "$EVAL/adherence-$suite" > "$EVAL/adh-$suite.log" 2>&1
  done
  $B eval tokenizer --model "$MODEL" --data fashion_mnist --split test --n 1000 --threads 1 \
    --out "$EVAL/tokenizer" > "$EVAL/tok.log" 2>&1
  $PY -m bitdance.evaluation.suites ground-truth --n 300 --size 32 --tokenizer "$MODEL" --threads 1 \
    > "$EVAL/ground-truth.log" 2>&1
  $B eval fid --model "$MODEL" --data fashion_mnist --split test --n 1000 --features cls,effnet --threads 1 \
    --out "$EVAL/fid" > "$EVAL/fid.log" 2>&1
  $B bench --model "$MODEL" --threads 1 --out "$EVAL/bench" > "$EVAL/bench.log" 2>&1
}

half_b() {
  $B quantize --report --model "$MODEL" --scheme int8-dynamic --samples 64 --threads 1 \
    --json "$EVAL/quant.json" > "$EVAL/quant.log" 2>&1
  if [ -f "$BASELINE/baseline.json" ]; then
    $B bench --vs-diffusion --model "$MODEL" --baseline "$BASELINE" --data fashion_mnist --n "$VS_N" \
      --threads 1 --out "$EVAL/versus" > "$EVAL/versus.log" 2>&1
  fi
}

half_a & A=$!
half_b & B_PID=$!
wait $A
wait $B_PID
tail -n 3 "$EVAL"/*.log
