#!/usr/bin/env bash
# The ship segmentation model's whole leave-cities-out cross-validation in one command: the 5 folds, the
# final model with its spec, and the CV table (P, R, F1, AP50, recall by length, length MAE, the baseline
# per fold). Made for a machine with a CUDA GPU and this project installed (`pip install -e .`); the recipe of
# weights/ships-s2-seg.md (v6), in its three stages: copy-paste for the first two 1,200-step cycles, then
# repainted hulls and wakes up to the fifth, then a last cycle with hard negatives. Each stage continues the
# last one's checkpoints and scores the folds again (--rescore); the table is the last stage's. The shipped
# v7 is a soup of two last-cycle branches of this recipe (seg_cv_parallel.py with from=, then
# seg_cv_rescore.py --soup and seg_soup_final.py; the card's "Model soups" gives the commands).
#
#   HARBORWATCH_DATA=/path/to/data bash benchmarks/seg_cv_gpu.sh [OUT]            # default OUT: runs/seg-cv
#   STEPS=12000 CYCLE=1200 bash benchmarks/seg_cv_gpu.sh runs/seg-long              # longer (lever d)
#   AVERAGE=3 bash benchmarks/seg_cv_gpu.sh runs/seg-swa       # models = mean of the last 3 cycle ends
#   SEED=1 bash benchmarks/seg_cv_gpu.sh runs/seg-seed1        # another run of the same recipe
#   EOTDL=1 bash benchmarks/seg_cv_gpu.sh runs/seg-eotdl       # + the eye-checked eotdl chips (every model)
#   UPSAMPLE=2 CROP=192 bash benchmarks/seg_cv_gpu.sh runs/seg-5m                   # 5 m grid (lever a)
#   ENCODER=efficientnet-b4 bash benchmarks/seg_cv_gpu.sh runs/seg-b4   # pretrained encoder (pip install -e ".[pretrained]")
#   DEVICE=cpu STEPS=8 CYCLE=2 FOLDS=0 bash benchmarks/seg_cv_gpu.sh /tmp/smoke     # plumbing check, no GPU
#
# Everything is checkpointed: a rerun with the same OUT resumes where the last one stopped (finished stages
# are marked in OUT and skipped; a stage cut short continues from its checkpoints, its folds scored again). Copy
# OUT/final/ships-s2-seg.pt and .json (ships-s2-seg-b4.* with ENCODER) into weights/ to ship the result, and update
# the card. ENCODER runs this recipe (v6's three stages) on the pretrained network; with STEPS=4800 its first two
# stages (2,400 and 3,600 steps) are the shipped ships-s2-seg-b4 v2 (its card, PRECISION=bf16); the third adds
# hard negatives, which lowered that network's CV F1 and AP50 (0.621 and 0.323 against 0.631 and 0.402; its card),
# and OUT/final is then trained through it too: to remake v2, run the card's two calls instead.
set -euo pipefail

OUT=${1:-runs/seg-cv}
DEVICE=${DEVICE:-cuda:0}
STEPS=${STEPS:-7200}
CYCLE=${CYCLE:-1200}
PASTE=${PASTE:-0.5}
HULL_COLOUR=${HULL_COLOUR:-0.5}
WAKES=${WAKES:-0.5}
UPSAMPLE=${UPSAMPLE:-1}
CROP=${CROP:-$((96 * UPSAMPLE))}
FOLDS=${FOLDS:-}
PRECISION=${PRECISION:-fp32}  # bf16: ~2x faster steps on CPU (benchmarks/seg_train_speed.py); see the card
HARD_NEGATIVES=${HARD_NEGATIVES:-0.2}
AVERAGE=${AVERAGE:-1}
SEED=${SEED:-0}
EOTDL=${EOTDL:-0}
ENCODER=${ENCODER:-none}
ENCODER_LR=${ENCODER_LR:-0.1}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ -z "${HARBORWATCH_DATA:-}" ]; then
    echo "seg_cv_gpu: set HARBORWATCH_DATA to the folder that holds sen2ships/ (docs/data.md)" >&2
    exit 2
fi
if ! command -v harborwatch > /dev/null; then
    echo "seg_cv_gpu: harborwatch is not installed here; run: pip install -e ." >&2
    exit 2
fi

common=(--out "$OUT" --paste "$PASTE" --restart-every "$CYCLE" --upsample "$UPSAMPLE" --crop "$CROP"
    --device "$DEVICE" --precision "$PRECISION" --seed "$SEED" --encoder "$ENCODER" --encoder-lr "$ENCODER_LR")
if [ -n "$FOLDS" ]; then
    common+=(--folds "$FOLDS" --no-final)
fi
if [ "$EOTDL" = 1 ]; then
    common+=(--eotdl)  # $HARBORWATCH_DATA/eotdl-s2-ships
fi
# stage ends: two cycles of copy-paste, repaint and wakes up to the last cycle, the last with hard negatives
if [ "$CYCLE" -gt 0 ] && [ $((STEPS % CYCLE)) -ne 0 ]; then
    echo "seg_cv_gpu: STEPS ($STEPS) must be a whole number of cycles (CYCLE=$CYCLE)" >&2
    exit 2
fi
if [ "$CYCLE" -gt 0 ] && [ "$STEPS" -ge $((4 * CYCLE)) ]; then
    stages=("$((2 * CYCLE))" "$((STEPS - CYCLE))" "$STEPS")
else  # too short for three stages: one run with copy-paste, repaint and wakes throughout
    stages=("$STEPS")
fi
start=$(date +%s)
for i in "${!stages[@]}"; do
    done_mark="$OUT/.seg_cv_gpu-stage-${stages[$i]}.done"
    if [ -f "$done_mark" ]; then  # a rerun resumes at the first unfinished stage
        echo "seg_cv_gpu: stage to step ${stages[$i]} already done ($done_mark)"
        continue
    fi
    args=("${common[@]}" --steps "${stages[$i]}")
    if [ "$i" -gt 0 ]; then
        args+=(--rescore)  # the folds' result.json are the last stage's: score the continued models
    fi
    if [ "$i" -gt 0 ] || [ "${#stages[@]}" -eq 1 ]; then
        args+=(--hull-colour "$HULL_COLOUR" --wakes "$WAKES")
    fi
    if [ "$i" -eq $((${#stages[@]} - 1)) ]; then
        args+=(--average-cycles "$AVERAGE")
        if [ "${#stages[@]}" -gt 1 ]; then
            args+=(--hard-negatives "$HARD_NEGATIVES")
        fi
    fi
    echo "seg_cv_gpu: harborwatch train ships-seg ${args[*]}"
    harborwatch train ships-seg "${args[@]}"
    mkdir -p "$OUT" && touch "$done_mark"
done
echo "seg_cv_gpu: training and scoring took $(($(date +%s) - start)) s on $DEVICE"
python "$HERE/ship_cv_seg.py" --cv-dir "$OUT" --baseline --markdown --json "$OUT/cv_table.json"
