#!/usr/bin/env bash
# Train the demo models the way the bundled ones were trained, within a wall-clock budget:
#   1. AT-BSN at training hole 9 (the demo teacher), inference hole 3;
#   2. in parallel, a symmetric AT-BSN trained and used at hole 1 (the paper's claim (a));
#   3. student C distilled from (1) at DISTILL_HOLES (default 1,3,5,7,9,11) with the loss
#      DISTILL_TARGET (default mean: towards their mean, measured better; holes: the paper's sum
#      of L1 distances to each, with DISTILL_HOLES=0,1,3,5,7,9,11; see
#      docs/quality.md);
#   4. the Nam-pair scores of all three (claims (a) and (b)) as JSON.
# Noisy images only are trained on; the clean halves of Nam pairs 01-04 only monitor training
# and the clean halves of all 12 pairs score the results.
#
#   PYTHON=.venv/bin/python DATA=../shared/data/real OUT=runs/demo DEVICE=cuda TRAIN_SECONDS=300 \
#       DISTILL_SECONDS=150 benchmarks/train_demo_models.sh
# DATA holds dnd_patches/*.png and nam_pairs/NN_{noisy,clean}.png. Each step logs to OUT/*.log.
#
# Resumable: a step whose checkpoint is already in OUT continues it (optimizer, sampler and
# clock; the time limits count across runs), so after a lease ends the same command goes on.
# To continue the bundled models instead of starting from scratch (the next GPU lease):
#   TEACHER_FROM=atbsn_edge/assets/demo_atbsn.pt STUDENT_FROM=atbsn_edge/assets/demo_student_c.pt \
#   CLAIM_A=0 PYTHON=.venv/bin/python DATA=../shared/data/real OUT=runs/more DEVICE=cuda TRAIN_SECONDS=1800 \
#   DISTILL_SECONDS=120 benchmarks/train_demo_models.sh
# (from a bundled checkpoint the weights are loaded and a fresh optimizer and cosine schedule
# start). CLAIM_A=0 skips the hole-1 AT-BSN of claim (a). The validation history of each
# checkpoint is the quality-against-iterations curve: python benchmarks/training_curves.py.
set -u
PY=${PYTHON:-python3}
DATA=${DATA:?set DATA to the folder with dnd_patches/ and nam_pairs/ (shared/data/real of the project)}
OUT=${OUT:?set OUT to a folder for checkpoints and logs}
DEVICE=${DEVICE:-cpu}
TRAIN_SECONDS=${TRAIN_SECONDS:-3600}
DISTILL_SECONDS=${DISTILL_SECONDS:-1800}
BATCH=${BATCH:-8}
CROP=${CROP:-256}
THREADS=${THREADS:-4}
CLAIM_A=${CLAIM_A:-1}
DISTILL_HOLES=${DISTILL_HOLES:-1,3,5,7,9,11}
DISTILL_TARGET=${DISTILL_TARGET:-mean}

# the data, before anything is created or started
shopt -s nullglob
noisy=("$DATA"/dnd_patches/*.png "$DATA"/nam_pairs/*_noisy.png)
val_noisy=("$DATA"/nam_pairs/0[1-4]_noisy.png)
val_clean=("$DATA"/nam_pairs/0[1-4]_clean.png)
shopt -u nullglob
if [ ! -d "$DATA/dnd_patches" ] || [ ! -d "$DATA/nam_pairs" ] || [ ${#val_noisy[@]} -eq 0 ] \
        || [ ${#val_noisy[@]} -ne ${#val_clean[@]} ]; then
    echo "error: DATA=$DATA must hold dnd_patches/*.png and nam_pairs/NN_noisy.png with" \
         "NN_clean.png (pairs 01-04 at least): the project's shared/data/real folder;" \
         "give its path (relative to $(pwd) or absolute)" >&2
    exit 2
fi
if ! "$PY" -c "import atbsn_edge, torch" 2>/dev/null; then
    echo "error: PYTHON=$PY cannot import atbsn_edge and torch; set PYTHON to the interpreter" \
         "they are installed in (make setup-dev, then PYTHON=.venv/bin/python)" >&2
    exit 2
fi
mkdir -p "$OUT" || exit 2

failed=()
step_done() {  # step_done NAME EXIT_CODE LOG: say how a step ended; remember a failure
    echo "$(date -u +%T) $1 exit $2"
    if [ "$2" -ne 0 ]; then
        failed+=("$1 (exit $2, $3)")
        [ -f "$3" ] && echo "    $(tail -n 1 "$3")"
    fi
}

start_from() {  # start_from CHECKPOINT_IN_OUT [BUNDLED]: the --resume flag of a step, if any
    if [ -e "$1" ]; then echo "--resume $1"; elif [ -n "${2:-}" ]; then echo "--resume $2"; fi
}

val=(--val-noisy "${val_noisy[@]}" --val-clean "${val_clean[@]}")
common=(--device "$DEVICE" --batch "$BATCH" --crop "$CROP" --threads "$THREADS"
        --iterations 400000 --checkpoint-every 500 --validate-every 1000)

echo "$(date -u +%T) training AT-BSN hole 9 (and hole 1: CLAIM_A=$CLAIM_A) for ${TRAIN_SECONDS}s on $DEVICE"
# shellcheck disable=SC2046  # start_from prints zero or two words
$PY -m atbsn_edge.train --data "${noisy[@]}" --out "$OUT/atbsn_h9.pt" --train-hole 9 --infer-hole 3 \
    $(start_from "$OUT/atbsn_h9.pt" "${TEACHER_FROM:-}") \
    --time-limit "$TRAIN_SECONDS" "${common[@]}" "${val[@]}" \
    --description "AT-BSN demo teacher: train hole 9, DND + Nam noisy images" >>"$OUT/train_h9.log" 2>&1 &
h9=$!
h1=
if [ "$CLAIM_A" != 0 ]; then
    # shellcheck disable=SC2046
    $PY -m atbsn_edge.train --data "${noisy[@]}" --out "$OUT/atbsn_h1.pt" --train-hole 1 --infer-hole 1 \
        $(start_from "$OUT/atbsn_h1.pt") \
        --time-limit "$TRAIN_SECONDS" "${common[@]}" "${val[@]}" \
        --description "symmetric AT-BSN: train hole 1, DND + Nam noisy images" >>"$OUT/train_h1.log" 2>&1 &
    h1=$!
fi
wait "$h9"; step_done "hole-9 training" $? "$OUT/train_h9.log"

if [ -e "$OUT/atbsn_h9.pt" ]; then
    echo "$(date -u +%T) distilling student C for ${DISTILL_SECONDS}s"
    # shellcheck disable=SC2046
    $PY -m atbsn_edge.distill --teacher "$OUT/atbsn_h9.pt" --student c --data "${noisy[@]}" \
        --holes "$DISTILL_HOLES" --target "$DISTILL_TARGET" \
        $(start_from "$OUT/student_c.pt" "${STUDENT_FROM:-}") \
        --out "$OUT/student_c.pt" --time-limit "$DISTILL_SECONDS" "${common[@]}" "${val[@]}" \
        --description "student C demo: distilled from the demo AT-BSN at holes $DISTILL_HOLES ($DISTILL_TARGET)" >>"$OUT/distill_c.log" 2>&1
    step_done "distillation" $? "$OUT/distill_c.log"
else
    echo "$(date -u +%T) distillation skipped: no teacher $OUT/atbsn_h9.pt"
    failed+=("distillation (no teacher)")
fi
if [ -n "$h1" ]; then wait "$h1"; step_done "hole-1 training" $? "$OUT/train_h1.log"; fi

score() {  # score NAME CHECKPOINT [evaluate flags...]
    local name=$1 ckpt=$2; shift 2
    [ -e "$ckpt" ] || return 0  # its training step failed, and is reported already
    $PY -m atbsn_edge.evaluate --checkpoint "$ckpt" --noisy "$DATA"/nam_pairs/*_noisy.png \
        --clean "$DATA"/nam_pairs/*_clean.png --device "$DEVICE" --json "$OUT/eval_$name.json" "$@" \
        >>"$OUT/evaluate.log" 2>&1
    local rc=$?
    [ "$rc" -eq 0 ] || step_done "evaluate $name" "$rc" "$OUT/evaluate.log"
}
for hole in 1 3 5 7 9; do score "h9_infer$hole" "$OUT/atbsn_h9.pt" --hole $hole; done
if [ "$CLAIM_A" != 0 ]; then score h1_infer1 "$OUT/atbsn_h1.pt" --hole 1; fi
score student_c "$OUT/student_c.pt"
if [ ${#failed[@]} -ne 0 ]; then
    echo "$(date -u +%T) finished with failures: ${failed[*]}" >&2
    exit 1
fi
echo "$(date -u +%T) done"
