#!/usr/bin/env bash
# Reproduce the shipped default model `bitdance-mini` (docs/model_card.md) with the project's own commands.
# Every stage is resumable: re-run this script after an interruption and each stage continues from its
# newest checkpoint (train-tokenizer / train use --resume; extract-tokens is skipped once written).
# Needs: Debian packages dataset-fashion-mnist and fonts-noto-color-emoji; scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-.venv/bin/bitdance}  # B=echo prints the commands (a dry run)
RUNS=${RUNS:-runs}
export OMP_NUM_THREADS=1  # one thread was fastest on the shared 2-core CPU this was trained on
# Stages 1-2 ran with the mini preset's former text length, 12 MiniLM tokens (now 20): --text-len 12 keeps
# them reproducible.

resume() { [ -d "$1/checkpoints" ] && echo --resume || true; }
# Generator stages 1-9 were trained before `--train-impl fast` existed (same loss, other float
# summation order): the reference step keeps the recipe reproducible.
REF=--train-impl=reference
# replace folder DST by a copy of SRC (with B=echo: print the commands, as for every stage)
copy_dir() {
  if [ "$B" = echo ]; then echo rm -rf "$2" "&&" cp -r "$1" "$2"; else rm -rf "$2" && cp -r "$1" "$2"; fi
}
copy_files() {  # SRC_DIR DST_DIR: copy SRC_DIR's files into DST_DIR
  if [ "$B" = echo ]; then echo cp "$1/"* "$2/"; else cp "$1/"* "$2/"; fi
}

# From stage 3 on, the generator runs and the decoder-only fine-tunes share every setting but those given
# per stage (init, data mixture, steps, learning rate, loss weights, seed); these add the shared ones.
continue_generator() {  # OUT, then the stage's own options
  local out=$1; shift
  $B train $REF --tokens "$RUNS/mini-tokens3" --preset mini --text-len 20 --parallel 1,4,16 --default-parallel 4 \
    --batch-size 32 --warmup 100 --ema-decay 0.995 --sample-steps 20 --cfg 3.0 --ckpt-every 200 \
    --eval-every 0 --sample-every 1000 --threads 1 --log-every 10 --out "$out" --no-progress "$@" \
    $(resume "$out")
}
finetune_decoder() {  # OUT, then the stage's own options
  local out=$1; shift
  $B train-tokenizer --freeze-encoder --size 32 --batch-size 24 --warmup 50 --perceptual gradient \
    --entropy-weight 0.02 --commit-weight 0.1 --ema-decay 0.99 --ckpt-every 200 --threads 1 --out "$out" \
    --no-progress "$@" $(resume "$out")
}

$B train-tokenizer --data "fashion_mnist:tint=1*2,shapes,emoji:repeats=10" --size 32 --preset mini \
  --steps 1500 --batch-size 24 --lr 1.5e-3 --warmup 50 --l1 1 --l2 1 --perceptual none \
  --entropy-weight 0.02 --commit-weight 0.1 --ema-decay 0.98 --ckpt-every 100 --eval-every 100 \
  --threads 1 --seed 0 --out "$RUNS/mini-tok" --no-progress $(resume "$RUNS/mini-tok")

[ -f "$RUNS/mini-tokens/header.json" ] || $B extract-tokens --tokenizer "$RUNS/mini-tok/export" \
  --data "fashion_mnist:tint=1*2,shapes,emoji:repeats=3" --out "$RUNS/mini-tokens" \
  --generator-preset mini --text-len 12 --batch-size 128 --no-progress

$B train $REF --tokens "$RUNS/mini-tokens" --preset mini --text-len 12 --parallel 1,4,16 --default-parallel 4 --steps 2400 \
  --batch-size 32 --lr 1e-3 --warmup 100 --ema-decay 0.995 --sample-steps 20 --cfg 3.0 --ckpt-every 200 \
  --eval-every 0 --sample-every 400 --threads 1 --seed 0 --log-every 10 --out "$RUNS/mini-gen" --no-progress \
  $(resume "$RUNS/mini-gen")

# Stage 2 (session 2): continue the tokenizer with more shapes/emoji and an edge loss, re-extract a
# shapes/emoji-heavier token set with it, and continue the generator from the stage-1 weights. The
# tokenizer's --stop-at is where the time box of that session ended (the schedule is that of --steps);
# the generator and the decoder fine-tune were finished in session 3.
$B train-tokenizer --init "$RUNS/mini-tok/export" --data "fashion_mnist:tint=1,shapes*1.5,emoji:repeats=10*3" \
  --size 32 --steps 7000 --stop-at 3400 --batch-size 24 --lr 1e-3 --warmup 50 --l1 1 --l2 1 --perceptual gradient \
  --entropy-weight 0.02 --commit-weight 0.1 --ema-decay 0.99 --ckpt-every 200 --eval-every 500 \
  --threads 1 --seed 1 --out "$RUNS/mini-tok2" --no-progress $(resume "$RUNS/mini-tok2")

[ -f "$RUNS/mini-tokens2/header.json" ] || $B extract-tokens --tokenizer "$RUNS/mini-tok2/export" \
  --data "fashion_mnist:tint=1,shapes:length=100000,emoji:repeats=12" --out "$RUNS/mini-tokens2" \
  --generator-preset mini --text-len 12 --batch-size 128 --no-progress

$B train $REF --tokens "$RUNS/mini-tokens2" --init "$RUNS/mini-gen/export" --preset mini --text-len 12 --parallel 1,4,16 \
  --default-parallel 4 --steps 5400 --batch-size 32 --lr 1e-3 --warmup 100 --ema-decay 0.995 \
  --sample-steps 20 --cfg 3.0 --ckpt-every 200 --eval-every 0 --sample-every 1000 --threads 1 --seed 1 \
  --log-every 10 --out "$RUNS/mini-gen2" --no-progress $(resume "$RUNS/mini-gen2")

# Decoder-only fine-tune of the stage-2 tokenizer: the encoder (hence every token above) is unchanged.
$B train-tokenizer --init "$RUNS/mini-tok2/export" --freeze-encoder \
  --data "fashion_mnist:tint=1,shapes*1.5,emoji:repeats=10*3" --size 32 --steps 6000 \
  --batch-size 24 --lr 5e-4 --warmup 50 --l1 1 --l2 1 --perceptual gradient --entropy-weight 0.02 \
  --commit-weight 0.1 --ema-decay 0.99 --ckpt-every 200 --eval-every 500 --threads 1 --seed 2 \
  --out "$RUNS/mini-tok2-dec" --no-progress $(resume "$RUNS/mini-tok2-dec")

# Stage 3 (session 3). The mini preset's 12 MiniLM tokens cut 22% of the captions (two-object phrasings
# such as "there is a blue square and, left of it, a red circle" lost their second object), so the captions
# are re-encoded with 20 tokens (the bits are reused) and the generator continues on them, with the
# well-learnt fashion items at half weight and emoji at double weight. A second decoder-only fine-tune
# spends more of the decoder on garments (fashion x2, shapes x0.5: shapes already survive its round trip).
[ -f "$RUNS/mini-tokens3/header.json" ] || $B extract-tokens --from-tokens "$RUNS/mini-tokens2" --text-len 20 \
  --out "$RUNS/mini-tokens3" --no-progress

continue_generator "$RUNS/mini-gen3" --init "$RUNS/mini-gen2/export" \
  --source-weights fashion_mnist=0.5,emoji=2 \
  --steps 4000 --lr 5e-4 --seed 3

finetune_decoder "$RUNS/mini-tok3-dec" --init "$RUNS/mini-tok2-dec/export" \
  --data "fashion_mnist:tint=1*2,shapes*0.5,emoji:repeats=10*3" --steps 12000 \
  --lr 3e-4 --l1 1 --l2 1 --eval-every 1000 --seed 3

# ... and a short third one at a lower learning rate (it filled the rest of the generator's run).
finetune_decoder "$RUNS/mini-tok4-dec" --init "$RUNS/mini-tok3-dec/export" \
  --data "fashion_mnist:tint=1*2,shapes*0.5,emoji:repeats=10*3" --steps 5000 \
  --lr 1.5e-4 --l1 1 --l2 1 --eval-every 1000 --seed 4

# Stage 4 (session 4). Emoji were still the gap (1 of 96 images of 48 emoji outside the evaluation suites
# recognised), so the generator continues with emoji at six times their share (43% of each epoch), and the
# decoder, whose fine-tunes had flattened out, is deepened to 2 res blocks per level (the new blocks start
# as exact identities) and fine-tuned again on the frozen encoder.
continue_generator "$RUNS/mini-gen4" --init "$RUNS/mini-gen3/export" \
  --source-weights fashion_mnist=0.5,emoji=6 \
  --steps 5000 --lr 5e-4 --seed 5

finetune_decoder "$RUNS/mini-tok5-dec" --init "$RUNS/mini-tok4-dec/export" --decoder-res-blocks 2 \
  --data "fashion_mnist:tint=1*2,shapes*0.5,emoji:repeats=10*3" --steps 12000 \
  --lr 3e-4 --l1 1 --l2 1 --eval-every 1000 --seed 5

# ... and a short last one at a lower learning rate with more weight on squared error and garments (it
# filled the rest of the generator's run).
finetune_decoder "$RUNS/mini-tok6-dec" --init "$RUNS/mini-tok5-dec/export" \
  --data "fashion_mnist:tint=1*3,shapes*0.5,emoji:repeats=10*3" --steps 3800 \
  --lr 1e-4 --l1 0.5 --l2 2 --eval-every 1000 --seed 6

# Stage 5 (session 5). Stage 4 traded colour (tinted garments) and counting for emoji; the generator
# continues with garments back at their full share (fashion 23% / shapes 39% / emoji 38% of each epoch), and
# the decoder fine-tune continues at the same low learning rate for longer.
continue_generator "$RUNS/mini-gen5" --init "$RUNS/mini-gen4/export" --source-weights emoji=6 \
  --steps 4000 --lr 5e-4 --seed 7

finetune_decoder "$RUNS/mini-tok7-dec" --init "$RUNS/mini-tok6-dec/export" \
  --data "fashion_mnist:tint=1*3,shapes*0.5,emoji:repeats=10*3" --steps 16000 \
  --lr 1e-4 --l1 0.5 --l2 2 --eval-every 2000 --seed 7

# Stage 6 (sessions 5-6). Aimed at counting and relations: the stage-5 generator continues with shapes
# weighted up and emoji kept (fashion 16% / shapes 54% / emoji 29% of each epoch) at a lower learning rate.
# Decoded with the stage-5 tokenizer (no new tokenizer stage). Shipping rule, fixed before the run's numbers:
# ship if mean(emoji-val, shapes-val) (since renamed emoji-monitor, shapes-monitor) beats stage 5's 0.807 (it measured 0.851).
continue_generator "$RUNS/mini-gen6" --init "$RUNS/mini-gen5/export" \
  --source-weights fashion_mnist=0.75,shapes=1.5,emoji=5 \
  --steps 3000 --lr 3e-4 --seed 8

# Stage 7 (session 6). The stage-6 generator continues with garments back at full share and emoji up
# (fashion 19% / shapes 46% / emoji 35% of each epoch), same learning rate. Decoded with the stage-5 tokenizer.
# Shipping rule, fixed before the run's numbers: mean(emoji-val, shapes-val) (now emoji-monitor, shapes-monitor) > stage 6's 0.851 and FID_cls on
# Fashion-MNIST *train* captions (n = 1000) <= 1.10 x stage 6's 2.222 (measured 0.898 and 2.427).
continue_generator "$RUNS/mini-gen7" --init "$RUNS/mini-gen6/export" \
  --source-weights fashion_mnist=1,shapes=1.5,emoji=7 \
  --steps 3000 --lr 3e-4 --seed 9

# The v1 pipeline = the stage-7 generator export with the stage-5 decoder's tokenizer.
copy_dir "$RUNS/mini-gen7/export" "$RUNS/bitdance-mini-v1"
copy_files "$RUNS/mini-tok7-dec/export" "$RUNS/bitdance-mini-v1/tokenizer"

# Stage 8 (wave 2: bitdance-mini v2). Free phrasing and editing. A new token set (same tokenizer encoder,
# so the same bits for the same images) that also keeps each item's structured description (meta.json);
# the generator continues from v1 with
#   --rich-captions 0.75: three items in four get a fresh caption each step from bitdance/data/rich_captions.py
#     (synonyms, carrier phrases, word orders, counts as words/digits, relations in many phrasings, two
#     objects without their relation, casing and light typos; emoji names plus Unicode CLDR annotations and
#     the emoji package's aliases), encoded on the fly by the frozen MiniLM; the rest keep the template caption;
#   --any-order 0.5: half of the steps generate the patches in a random order, so that edit method
#     kept_first (every kept patch fed first) is a sequence the model was trained on.
# Shipping rule, fixed before the run's numbers (committed before training started): ship v2 iff, measured
# with the same commands on both models (P = 4, seeds 0-3),
#   free-form DEV split overall(v2) >= overall(v1) + 0.05,
#   template suite `default` overall(v2) >= overall(v1) - 0.03, and
#   FID_cls on Fashion-MNIST *train* captions (n = 1000) (v2) <= 1.10 x FID_cls(v1).
# The free-form test split, the held-out Fashion-MNIST split and the edit benchmark only report.
[ -f "$RUNS/v2-tokens/header.json" ] || $B extract-tokens --tokenizer "$RUNS/bitdance-mini-v1/tokenizer" \
  --data "fashion_mnist:tint=1,shapes:length=60000,emoji:repeats=8" --out "$RUNS/v2-tokens" \
  --generator-preset mini --text-len 20 --batch-size 128 --no-progress

# Planned as 2600 steps; the session's time box ended it at step 1500 (--stop-at), and it was finished with
# a shorter schedule (--steps 1750: the cosine decays over the last 250 steps instead of 1100).
stage8() {
  $B train $REF --tokens "$RUNS/v2-tokens" --init "$RUNS/bitdance-mini-v1" --preset mini --text-len 20 --parallel 1,4,16 \
    --default-parallel 4 --batch-size 32 --warmup 50 --ema-decay 0.995 --sample-steps 20 --cfg 3.0 \
    --ckpt-every 100 --eval-every 0 --sample-every 500 --threads 1 --log-every 10 --no-progress \
    --source-weights emoji=3 --rich-captions 0.75 --any-order 0.5 --lr 3e-4 --seed 10 --out "$RUNS/mini-gen8" "$@"
}
[ -f "$RUNS/mini-gen8/checkpoints/state-001500.pt" ] || stage8 --steps 2600 --stop-at 1500 $(resume "$RUNS/mini-gen8")
stage8 --steps 1750 --resume

# Stage 8's shipping rule failed (template suite 0.849 against v1's 0.927 - 0.03; free-form dev rose from
# 0.477 to 0.617: docs/history.md), so v1 stays the shipped model; the candidate is kept for editing studies.
copy_dir "$RUNS/mini-gen8/export" "$RUNS/bitdance-mini-v2-candidate"

# Stage 9 (wave 2, next session). Stage 8's template loss was mostly emoji single objects (0.837 -> 0.654) and
# its mixture had cut the emoji share from stage 7's 35% to 21% of each epoch (emoji=3 on the v2 token set).
# The v1 generator continues (not the candidate) on the same token set with emoji back at 35% (emoji=6),
# half of the items on their template caption (--rich-captions 0.5), fewer random-order steps
# (--any-order 0.3: the default raster order keeps more of the steps) and a longer schedule (3000 steps, what
# fits beside the full evaluation in one session);
# --time-budget 5100 s ends it early if the machine is slower than planned (the export is then the EMA at
# that step, the schedule unchanged).
# Shipping rule, fixed before the run's numbers (committed before training started; the same as stage 8's):
# ship the stage-9 model iff, measured with the same commands on both models (P = 4, seeds 0-3),
#   free-form DEV split overall(v2) >= overall(v1) + 0.05  (v1: 0.477),
#   template suite `default` overall(v2) >= overall(v1) - 0.03  (v1: 0.927), and
#   FID_cls on Fashion-MNIST *train* captions (n = 1000) (v2) <= 1.10 x FID_cls(v1)  (v1: 2.427).
# The free-form test split, the held-out Fashion-MNIST split and the edit benchmark only report.
$B train $REF --tokens "$RUNS/v2-tokens" --init "$RUNS/bitdance-mini-v1" --preset mini --text-len 20 --parallel 1,4,16 \
  --default-parallel 4 --batch-size 32 --warmup 50 --ema-decay 0.995 --sample-steps 20 --cfg 3.0 \
  --ckpt-every 100 --eval-every 0 --sample-every 600 --threads 1 --log-every 10 --no-progress \
  --source-weights emoji=6 --rich-captions 0.5 --any-order 0.3 --lr 3e-4 --seed 11 --steps 3000 \
  --time-budget 5100 --out "$RUNS/mini-gen9" $(resume "$RUNS/mini-gen9")

# Stage 9's rule failed on the template leg (0.890 against 0.897; free-form dev 0.597 >= 0.527 and train-caption
# FID_cls 2.209 <= 2.427 passed): docs/history.md.
# Stage 10 (same session). The stage-9 generator continues with three items in four on their template caption
# (--rich-captions 0.25) at half the learning rate for 900 steps (--train-impl fast: the same loss), to win
# back the template phrasing while keeping the free phrasing. Shipping rule, fixed before the run's numbers
# (committed before training started): the same three legs against v1 as stages 8 and 9
# (free-form DEV >= 0.527, template `default` >= 0.897, FID_cls on train captions <= 2.427; P = 4, seeds 0-3).
$B train --tokens "$RUNS/v2-tokens" --init "$RUNS/mini-gen9/export" --preset mini --text-len 20 --parallel 1,4,16 \
  --default-parallel 4 --batch-size 32 --warmup 50 --ema-decay 0.995 --sample-steps 20 --cfg 3.0 \
  --ckpt-every 100 --eval-every 0 --sample-every 300 --threads 1 --log-every 10 --no-progress \
  --source-weights emoji=6 --rich-captions 0.25 --any-order 0.3 --lr 1.5e-4 --seed 12 --steps 900 \
  --time-budget 1500 --out "$RUNS/mini-gen10" $(resume "$RUNS/mini-gen10")

# Stage 10's rule passed (free-form dev 0.603, template 0.936, train-caption FID_cls 2.000): docs/history.md.
# The shipped pipeline = bitdance-mini v2: the stage-10 export (generator + the v1 tokenizer, which it carries).
copy_dir "$RUNS/mini-gen10/export" "$RUNS/bitdance-mini"
echo "pipeline: $RUNS/bitdance-mini (copy to bitdance/assets/models/bitdance-mini to ship it)"
