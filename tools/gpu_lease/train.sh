#!/usr/bin/env bash
# Second call on the same (still warm) GPU machine: unpack the second part, train the jobs probe.sh chose (or
# $ARMS) to 7,200 steps with seg_cv_parallel.py, and pack each arm's last weights into $OUT/w/<arm>.tar (and
# <arm>.1.tar and on, past 15 MiB).
#   DEADLINE=515 bash tools/gpu_lease/train.sh
export PYTHONPATH=$PWD/tools/gpu_lease PYTHONUNBUFFERED=1
PARTS=${PARTS:-work-data/xfer}; CACHE=${CACHE:-work-data/sc}; DEVICE=${DEVICE:-cuda:0}
RUN=$(dirname "$CACHE")
ARMS=${ARMS:-$(cat "$RUN/decision.args" 2> /dev/null)}
[ -n "$ARMS" ] || { echo "train.sh: no jobs: set ARMS, or run probe.sh first on this machine"; exit 3; }
python3 tools/gpu_lease/pack_scenes.py unpack "$PARTS/part1" "$CACHE" || exit 3
n=$(find "$CACHE" -name '*.npz' | wc -l)
case "$ARMS" in *:eotdl*) want=16 ;; *) want=15 ;; esac  # the 15 sen2ships cities, and the eotdl mosaic
[ "$n" = "${SCENES:-$want}" ] || { echo "train.sh: $n scenes in $CACHE, ${SCENES:-$want} expected"; exit 3; }
rm -rf "$RUN/probe"
# MPS as the probe left it: not where the probe quit it (it failed there); started where no probe ran on this
# machine, or asked again where the probe kept it running (a no-op then)
if [ "$DEVICE" != cpu ] && [ "$(cat "$RUN/mps" 2> /dev/null || echo 1)" = 1 ] &&
    command -v nvidia-cuda-mps-control > /dev/null; then
    nvidia-cuda-mps-control -d 2> /dev/null && echo "train.sh: MPS started"
fi
# shellcheck disable=SC2086
python3 benchmarks/seg_cv_parallel.py --cache "$CACHE" --out "$RUN/run" --device "$DEVICE" $ARMS \
    --steps "${STEPS:-7200}" --cycle "${CYCLE:-1200}" --deadline "${DEADLINE:-515}" --pack "${OUT:-$RUN}/w"
