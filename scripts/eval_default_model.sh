#!/usr/bin/env bash
# Every number the docs report for one model (default: the shipped bitdance-mini), in one resumable command:
# quality on the held-out split (FID_cls at P = 1/4/16, head steps 10/20/50, int8 and the sampler settings
# `fast` / `fast4` of docs/speed.md; FID_effnet at the defaults; the data-vs-data floor), the tokenizer, prompt
# adherence (free-form and template suites, seeds 0-3, the same settings; `fast` / `fast4` on the free-form
# suite only), then speed and the int8 report alone on the machine. Then `bitdance docs collect` +
# `bitdance adherence-report results` + `bitdance docs sampler-quality` write docs/results/*.json and
# `bitdance docs build` regenerates every table and number of the docs.
#
#   bash scripts/eval_default_model.sh [MODEL] [BASELINE]
#
# WORKERS=2 (default) runs the measuring jobs as two processes of one torch thread each, taking jobs from one
# list (longest first; a job is claimed with mkdir, so no job runs twice). A job that finished has
# $EVAL/<job>.done and is skipped on the next call: rerun the same command to resume after a stop.
# $EVAL/model.fingerprint guards against resuming with other weights (FRESH=1 starts over).
# ONLY="adh- fid-heldout-p1" keeps the jobs whose names start with one of the words.
# SMOKE=1: tiny sizes (adherence --limit 4 --seeds 0, n = 64) into EVAL=runs/eval-smoke, reports into
# $EVAL/results and a preview of the docs in $EVAL/preview (docs/ untouched), then a wall-time estimate of
# the full run from the measured jobs ($EVAL/estimate.txt).
# BASELINE: a trained diffusion baseline folder; the side-by-side comparison runs only when it exists.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${B:-.venv/bin/bitdance}
PY=${PY:-$(dirname "$B")/python}
MODEL=${1:-bitdance-mini}
BASELINE=${2:-runs/baseline}
SMOKE=${SMOKE:-0}
FULL_FID=1000 FULL_TOK=2000 FULL_STEER=1000 FULL_VS=${VS_N:-200} SEEDS=0,1,2,3  # the full run's sizes
if [ "$SMOKE" = 1 ]; then
  EVAL=${EVAL:-runs/eval-smoke}
  RESULTS=${RESULTS:-$EVAL/results}
  N_FID=64 N_TOK=64 N_STEER=64 N_VS=16 ADH=(--limit 4 --seeds 0)
else
  EVAL=${EVAL:-runs/eval}
  RESULTS=${RESULTS:-docs/results}
  N_FID=$FULL_FID N_TOK=$FULL_TOK N_STEER=$FULL_STEER N_VS=$FULL_VS ADH=(--seeds $SEEDS)
fi
WORKERS=${WORKERS:-2}
ONLY=${ONLY:-}
export OMP_NUM_THREADS=1
H=(--data fashion_mnist --split test-heldout)

# the parallel jobs, longest first (measured on smoke runs; see estimate.txt), then the ones that time the
# machine and must run alone
JOBS="adh-freeform-p1 adh-freeform-s50 adh-freeform-int8 adh-freeform-p4 fid-heldout-p1 adh-freeform-p16
  adh-freeform-s10 adh-freeform-fast fid-heldout fid-heldout-s50 fid-floor adh-freeform-fast4 adh-default-p1
  fid-heldout-int8 fid-heldout-p16 fid-heldout-s10 fid-heldout-fast fid-heldout-fast4 adh-default-s50
  adh-default-int8 adh-default-p4 adh-default-p16 adh-default-s10 tokenizer-heldout tokenizer-steered"
ALONE="bench quant versus"

job_cmd() {  # NAME -> CMD (array): the bitdance command line of one job; FULL: images of the full-size run
  local name=$1 out=$EVAL/$1 model=$MODEL
  case $name in
    adh-*)
      local rest=${name#adh-} suite setting extra=() args
      suite=${rest%-*} setting=${rest##*-}
      case $setting in
        p4) ;; p1) extra=(--parallel 1) ;; p16) extra=(--parallel 16) ;;
        s10) extra=(--steps 10) ;; s50) extra=(--steps 50) ;; int8) model=$EVAL/int8-model ;;
        fast|fast4) args=$(sampler_args "$setting") || return 2; read -ra extra <<< "$args" ;;
        *) echo "error: unknown adherence setting $setting (allowed: p4 p1 p16 s10 s50 int8 fast fast4)" >&2
          return 2 ;;
      esac
      CMD=(eval adherence --model "$model" --prompts "$suite" --split all "${ADH[@]}" --batch-size 64
        --threads 1 "${extra[@]}" --out "$EVAL/adh/$suite-$setting")
      FULL=$(( $(suite_size "$suite") * $(echo $SEEDS | tr ',' ' ' | wc -w) )) ;;
    fid-heldout) CMD=(eval fid --model "$model" "${H[@]}" --n $N_FID --features cls,effnet --batch-size 64
      --threads 1 --out "$out") FULL=$FULL_FID ;;
    fid-heldout-*)
      local s=${name#fid-heldout-} extra=() args
      case $s in
        p1) extra=(--parallel 1) ;; p16) extra=(--parallel 16) ;; s10) extra=(--steps 10) ;;
        s50) extra=(--steps 50) ;; int8) model=$EVAL/int8-model ;;
        fast|fast4) args=$(sampler_args "$s") || return 2; read -ra extra <<< "$args" ;;
        *) echo "error: unknown quality setting $s (allowed: p1 p16 s10 s50 int8 fast fast4)" >&2; return 2 ;;
      esac
      CMD=(eval fid --model "$model" "${H[@]}" --n $N_FID --features cls --batch-size 64 --threads 1
        "${extra[@]}" --out "$out") FULL=$FULL_FID ;;
    fid-floor) CMD=(eval fid --compare-split train "${H[@]}" --n $N_FID --features cls,effnet --threads 1
      --out "$out") FULL=$FULL_FID ;;
    tokenizer-heldout) CMD=(eval tokenizer --model "$model" "${H[@]}" --n $N_TOK --threads 1 --out "$out")
      FULL=$FULL_TOK ;;
    # the items that steered the decoder fine-tunes, for the "which data steered" table only
    tokenizer-steered) CMD=(eval tokenizer --model "$model" --data fashion_mnist --split test --n $N_STEER
      --threads 1 --out "$out") FULL=$FULL_STEER ;;
    bench) CMD=(bench --model "$model" --threads 1 --out "$out") FULL=1 ;;
    quant) CMD=(quantize --report --model "$model" --scheme int8-dynamic --samples 64 --threads 1
      --json "$EVAL/quant.json") FULL=1 ;;
    versus) CMD=(bench --vs-diffusion --model "$model" --baseline "$BASELINE" "${H[@]}" --n $N_VS --threads 1
      --out "$out") FULL=$FULL_VS ;;
    *) echo "error: unknown job $name" >&2; return 2 ;;
  esac
}

suite_size() {  # prompts of a shipped suite (SIZES, looked up once before the workers start)
  local kv; for kv in $SIZES; do [ "${kv%=*}" = "$1" ] && echo "${kv#*=}" && return; done
  echo "error: no size for suite $1" >&2; return 2
}

sampler_args() {  # a named sampler setting (docs/speed.md) -> its eval arguments (SAMPLERS, resolved once)
  local kv v; for kv in $SAMPLERS; do
    [ "${kv%%=*}" = "$1" ] && v=${kv#*=} && echo "--solver ${v%:*} --steps ${v##*:}" && return
  done
  echo "error: no sampler setting $1" >&2; return 2
}

selected() {  # is job $1 kept by $ONLY?
  [ -z "$ONLY" ] && return 0
  local w; for w in $ONLY; do case $1 in "$w"*) return 0 ;; esac; done; return 1
}

run_job() {  # NAME: run it unless done; $EVAL/NAME.log, .done; a line of $EVAL/timings.tsv
  local name=$1 t0 rc
  job_cmd "$name" || return 2
  echo "$(date -u +%H:%M:%S) start $name (worker ${WORKER:-0})"
  t0=$(date +%s)
  nice -n "${NICE:-0}" $B "${CMD[@]}" > "$EVAL/$name.log" 2>&1
  rc=$?
  if [ $rc = 0 ]; then
    touch "$EVAL/$name.done"
    printf '%s\t%s\t%s\n' "$name" $(( $(date +%s) - t0 )) "$FULL" >> "$EVAL/timings.tsv"
    echo "$(date -u +%H:%M:%S) done  $name ($(( $(date +%s) - t0 )) s)"
  else
    echo "$name" >> "$EVAL/failed.txt"
    echo "$(date -u +%H:%M:%S) FAILED $name (exit $rc; see $EVAL/$name.log)"
  fi
}

worker() {  # one process: take the first unclaimed, unfinished job of the list until none is left
  local job
  for job in $JOBS; do
    selected "$job" || continue
    [ -f "$EVAL/$job.done" ] && continue
    mkdir "$EVAL/.claims/$job" 2>/dev/null || continue
    run_job "$job"
  done
}

mkdir -p "$EVAL"
[ "${FRESH:-0}" = 1 ] && rm -f "$EVAL"/*.done "$EVAL/timings.tsv"
dir=$($PY -c "import sys; from bitdance.pipeline import resolve_model; print(resolve_model(sys.argv[1]))" \
  "$MODEL") || { echo "error: no model $MODEL" >&2; exit 2; }
fp=$(cd "$dir" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
if [ -f "$EVAL/model.fingerprint" ] && [ "$(cat "$EVAL/model.fingerprint")" != "$fp" ] && \
   ls "$EVAL"/*.done > /dev/null 2>&1; then
  echo "error: $EVAL holds runs of other weights than $MODEL ($dir); FRESH=1 starts over, or set EVAL" >&2
  exit 2
fi
echo "$fp" > "$EVAL/model.fingerprint"
rm -rf "$EVAL/.claims" "$EVAL/failed.txt"
echo $JOBS > "$EVAL/jobs.txt"
SIZES=$($PY -c "from bitdance.evaluation.prompts import load_suite as f
print(' '.join(f'{s}={len(f(s))}' for s in ('freeform', 'default')))") || exit 2
# the named sampler settings at this model's default head steps (bitdance.sampling.presets.sampler_settings:
# fast = em_fast, ceil(steps / 2); fast4 = em_fast, ceil(steps / 4)) as NAME=SOLVER:STEPS
SAMPLERS=$($PY -c "import json, sys; from pathlib import Path; from bitdance.sampling.presets import sampler_settings
d = json.loads((Path(sys.argv[1]) / 'model_index.json').read_text()).get('defaults') or {}
steps = d.get('num_sampling_steps', 20)  # the pipeline's own fallback (BitDancePipeline.defaults)
for s in ('fast', 'fast4'):
    k = sampler_settings(s, steps)
    print(f\"{s}={k['solver']}:{k['num_sampling_steps']}\", end=' ')" "$dir") || exit 2
mkdir -p "$EVAL/.claims" "$EVAL/adh"
[ -f "$BASELINE/export/baseline.json" ] || ALONE=${ALONE/versus/}

if [ ! -f "$EVAL/int8-model.done" ]; then  # a few seconds; the int8 jobs need it
  $B quantize --model "$MODEL" --scheme int8-dynamic -o "$EVAL/int8-model" --force > "$EVAL/int8-model.log" \
    2>&1 && touch "$EVAL/int8-model.done" || { echo "error: quantize failed ($EVAL/int8-model.log)" >&2; exit 1; }
fi
pids=()
for w in $(seq 1 "$WORKERS"); do
  WORKER=$w worker &
  pids+=($!)
done
wait "${pids[@]}"
for job in $ALONE; do
  selected "$job" && [ ! -f "$EVAL/$job.done" ] && WORKER=alone run_job "$job"
done

mkdir -p "$RESULTS"
if [ "$SMOKE" = 1 ]; then  # a preview: the committed reports, with this run's in place of theirs
  cp docs/results/*.json "$RESULTS/" && rm -f "$RESULTS"/adherence_*.json
fi
$B docs collect "$EVAL" --out "$RESULTS"
if [ "$SMOKE" = 1 ]; then
  $B adherence-report results "$EVAL/adh" "$RESULTS" --allow-limited
  $B docs sampler-quality --results "$RESULTS"
  rm -rf "$EVAL/preview" && mkdir -p "$EVAL/preview" && cp -r README.md docs "$EVAL/preview/"
  $B docs build --root "$EVAL/preview" --results "$RESULTS"
  $B docs estimate "$EVAL" --workers "$WORKERS" | tee "$EVAL/estimate.txt"
else
  $B adherence-report results "$EVAL/adh" "$RESULTS"
  $B docs sampler-quality --results "$RESULTS"
  $B docs build
fi
if [ -s "$EVAL/failed.txt" ]; then
  echo "failed jobs (rerun the same command to retry them): $(tr '\n' ' ' < "$EVAL/failed.txt")" >&2
  exit 1
fi
