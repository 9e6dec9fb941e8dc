#!/usr/bin/env bash
# Adherence of one model on the free-form suite (dev + test in one run) and the template `default` suite for
# every sampling setting the docs report: P in {1, 4, 16}, head steps {10, 20, 50} at the default P, int8 vs
# fp32. One run at a time (shared CPU), batches of 64 (the CLI maximum: fewest CPU seconds per image; the
# first freeform-p4 run used 16). Each writes runs/eval/adh/<suite>-<setting>/report.json and is skipped when
# that file exists. Free-form runs come first.
#   scripts/eval_adherence_matrix.sh [MODEL] [SUITE-SETTING...]   (settings: p4 p1 p16 s10 s50 int8)
# Then: bitdance adherence-report results runs/eval/adh docs/results
set -euo pipefail
MODEL=${1:-bitdance-mini}
shift || true
JOBS=${*:-freeform-p4 default-p4 freeform-p16 freeform-int8 default-p16 default-int8 freeform-s10 freeform-p1 \
  freeform-s50 default-s10 default-p1 default-s50}
B=${B:-bitdance}
OUT=${OUT:-runs/eval/adh}
mkdir -p "$OUT"
for job in $JOBS; do
  suite=${job%-*}
  setting=${job##*-}
  model=$MODEL
  case $setting in
    p4) extra=() ;;
    p1) extra=(--parallel 1) ;;
    p16) extra=(--parallel 16) ;;
    s10) extra=(--steps 10) ;;
    s50) extra=(--steps 50) ;;
    int8)
      extra=()
      model=$OUT/$MODEL-int8
      [ -d "$model" ] || $B quantize --model "$MODEL" -o "$model" ;;
    *) echo "error: unknown setting $setting (allowed: p4 p1 p16 s10 s50 int8)" >&2; exit 2 ;;
  esac
  dir=$OUT/$suite-$setting
  [ -f "$dir/report.json" ] && continue
  $B eval adherence --model "$model" --prompts "$suite" --split all --seeds 0,1,2,3 --batch-size 64 \
    --threads 1 "${extra[@]}" --out "$dir" > "$OUT/$suite-$setting.log" 2>&1
done
