"""Read a seg_cv_parallel.py probe's logs (seconds per step at the end of its second stage, and its last
stage's time), project each job set's time for the full run, and write the largest set that fits the budget.

    python tools/gpu_lease/decide.py PROBE_DIR JOBS_IN_PROBE BUDGET_S OUT_FILE STEPS MID_STEP
"""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

#: Job sets, most wanted first: (arguments of seg_cv_parallel.py, number of processes).
SETS = (
    ("--arm e0:seed=0:eotdl --arm c0:seed=0 --arm e1:seed=1:eotdl --arm c1:seed=1 --final e0", 21),
    ("--arm e0:seed=0:eotdl --arm c0:seed=0 --arm e1:seed=1:eotdl --arm c1:seed=1", 20),
    ("--arm e0:seed=0:eotdl --arm c0:seed=0 --arm e1:seed=1:eotdl --final e0", 16),
    ("--arm e0:seed=0:eotdl --arm c0:seed=0 --final e0", 11),
    ("--arm e0:seed=0:eotdl --arm c0:seed=0", 10),
    ("--arm e0:seed=0:eotdl --final e0", 6),
)


def main(argv: list[str]) -> int:
    probe, n_probe, budget, out = Path(argv[0]), int(argv[1]), float(argv[2]), Path(argv[3])
    steps, mid = int(argv[4]), int(argv[5])
    rates, lasts = [], []
    for log in probe.glob("*/*/train.log"):
        text = log.read_text()
        if m := re.findall(rf"step {mid}/{mid} loss \S+ ([\d.]+) s/step", text):
            rates.append(float(m[-1]))
        if t := re.findall(r"stage to step \d+ took ([\d.]+) s", text):
            lasts.append(float(t[-1]))
    if not rates or len(rates) < n_probe // 2:
        print(f"decide: {len(rates)} of {n_probe} probe jobs measured; no decision")
        return 1
    r, last = statistics.median(rates), statistics.median(lasts)
    spread = f"{min(rates)}-{max(rates)}"
    print(f"decide: {len(rates)} jobs, {r:.3f} s/step (median; {spread}), last stage {last:.0f} s")
    for args, n in SETS:
        projected = steps * r * min(1.0, n / n_probe) + 90 + 2 * last
        print(f"decide: {n} jobs, projected {projected:.0f} s of {budget:.0f}")
        if projected <= budget:
            out.write_text(args)
            return 0
    out.write_text(SETS[-1][0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
