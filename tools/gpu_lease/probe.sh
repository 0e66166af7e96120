#!/usr/bin/env bash
# First call on a lent GPU machine (run from the repository root): unpack the first part of the scene cache,
# start MPS, run a 200-step probe of the jobs in $ARMS with seg_cv_parallel.py (retried without MPS if it fails),
# and write the jobs that fit the time budget of the next call to $CACHE/../decision.args (decide.py).
#   PARTS=work-data/xfer CACHE=work-data/sc BUDGET=430 [STEPS=7200] [ARMS='--arm ...'] bash tools/gpu_lease/probe.sh
export PYTHONPATH=$PWD/tools/gpu_lease PYTHONUNBUFFERED=1
PARTS=${PARTS:-work-data/xfer}; CACHE=${CACHE:-work-data/sc}; DEVICE=${DEVICE:-cuda:0}
ARMS=${ARMS:---arm q0:seed=0:quay=0.5 --arm q1:seed=1:quay=0.5 --arm q2:seed=2:quay=0.5 --arm c2:seed=2 --final q0}
RUN=$(dirname "$CACHE")
nvidia-smi -L 2>&1 | head -2
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 tools/gpu_lease/pack_scenes.py unpack "$PARTS/part0" "$CACHE" || exit 3
MPS=0
if [ "$DEVICE" != cpu ] && command -v nvidia-cuda-mps-control > /dev/null && nvidia-cuda-mps-control -d; then
    MPS=1
fi
probe() {
    rm -rf "$RUN/probe"
    # shellcheck disable=SC2086
    timeout 150 python3 benchmarks/seg_cv_parallel.py --cache "$CACHE" --out "$RUN/probe" --device "$DEVICE" \
        $ARMS --steps 200 --cycle 50 --deadline 140
}
probe; rc=$?; echo "probe rc $rc (MPS=$MPS)"
if [ $rc != 0 ] && [ $MPS = 1 ]; then
    echo quit | nvidia-cuda-mps-control; MPS=0; sleep 2
    probe; rc=$?; echo "probe rc $rc (MPS=0)"
fi
echo $MPS > "$RUN/mps"  # train.sh starts MPS only where the probe kept it
jobs=$(find "$RUN/probe" -name train.log | wc -l)
rm -f "$RUN/decision.args"  # never a stale choice from an earlier probe on this machine
python3 tools/gpu_lease/decide.py "$RUN/probe" "$jobs" "${BUDGET:-430}" "$RUN/decision.args" "${STEPS:-7200}" 150 "$ARMS"
rc=$?
if [ ! -s "$RUN/decision.args" ]; then
    echo "probe.sh: decide.py made no choice (rc $rc); give train.sh its ARMS"; exit 3
fi
[ $rc = 0 ] || echo "probe.sh: unmeasured; decide.py chose the smallest job set"
