#!/usr/bin/env bash
# The ship segmentation model's whole leave-cities-out cross-validation in one command: the 5 folds, the
# final model with its spec, and the CV table (P, R, F1, AP50, recall by length, length MAE, the baseline
# per fold). Made for a machine with a CUDA GPU and this project installed (`pip install -e .`); the recipe of
# weights/ships-s2-seg.md (v5: copy-paste, repainted hulls, wakes, five 1,200-step cycles), except that here the
# repaint and wakes run in every cycle (v3-v5 added them from the third cycle on, for CPU time).
#
#   HARBORWATCH_DATA=/path/to/data bash benchmarks/seg_cv_gpu.sh [OUT]            # default OUT: runs/seg-cv
#   STEPS=7200 CYCLE=1200 bash benchmarks/seg_cv_gpu.sh runs/seg-long               # longer (lever d)
#   UPSAMPLE=2 CROP=192 bash benchmarks/seg_cv_gpu.sh runs/seg-5m                   # 5 m grid (lever a)
#   DEVICE=cpu STEPS=2 CYCLE=0 FOLDS=0 bash benchmarks/seg_cv_gpu.sh /tmp/smoke     # plumbing check, no GPU
#
# Everything is checkpointed: a rerun with the same OUT resumes where the last one stopped (finished folds
# are kept). Copy OUT/final/ships-s2-seg.pt and .json into weights/ to ship the result, and update the card.
set -euo pipefail

OUT=${1:-runs/seg-cv}
DEVICE=${DEVICE:-cuda:0}
STEPS=${STEPS:-6000}
CYCLE=${CYCLE:-1200}
PASTE=${PASTE:-0.5}
HULL_COLOUR=${HULL_COLOUR:-0.5}
WAKES=${WAKES:-0.5}
UPSAMPLE=${UPSAMPLE:-1}
CROP=${CROP:-$((96 * UPSAMPLE))}
FOLDS=${FOLDS:-}
PRECISION=${PRECISION:-fp32}  # bf16: ~2x faster steps on CPU (benchmarks/seg_train_speed.py); see the card
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ -z "${HARBORWATCH_DATA:-}" ]; then
    echo "seg_cv_gpu: set HARBORWATCH_DATA to the folder that holds sen2ships/ (docs/data.md)" >&2
    exit 2
fi
if ! command -v harborwatch > /dev/null; then
    echo "seg_cv_gpu: harborwatch is not installed here; run: pip install -e ." >&2
    exit 2
fi

args=(--out "$OUT" --paste "$PASTE" --hull-colour "$HULL_COLOUR" --wakes "$WAKES" --steps "$STEPS"
    --restart-every "$CYCLE" --upsample "$UPSAMPLE" --crop "$CROP" --device "$DEVICE"
    --precision "$PRECISION")
if [ -n "$FOLDS" ]; then
    args+=(--folds "$FOLDS" --no-final)
fi

start=$(date +%s)
harborwatch train ships-seg "${args[@]}"
echo "seg_cv_gpu: training and scoring took $(($(date +%s) - start)) s on $DEVICE"
python "$HERE/ship_cv_seg.py" --cv-dir "$OUT" --baseline --markdown --json "$OUT/cv_table.json"
