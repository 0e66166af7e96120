"""Read a seg_cv_parallel.py probe's logs (seconds per step at the end of its second stage, and its last
stage's time), project each job set's time for the full run, and write the largest set that fits the budget.
The job sets are the probe's own arguments (``ARMS``, as probe.sh ran them) cut down arm by arm from the end
(``job_sets``).

    python tools/gpu_lease/decide.py PROBE_DIR JOBS_IN_PROBE BUDGET_S OUT_FILE STEPS MID_STEP ARMS
"""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

#: A full run's seconds per step over the probe's median (seg_cv_parallel.py under MPS on one H200, 21 jobs).
#: The probe is short and its jobs start and stop at different times; a full run keeps all 21 busy at once.
#: Session 14: probe median 0.05 s/step, jobs done in 494-531 s (~1.4x); session 15 (four arms, three with
#: quay=0.5): probe median 0.050 s/step, jobs done in 506-551 s and nine ~100 steps short at 560 s (~1.55x).
SLOWDOWN = 1.5


def job_sets(args: str, folds: int = 5) -> tuple[tuple[str, int], ...]:
    """Job sets from seg_cv_parallel.py's ``--arm``/``--final`` arguments, most wanted first: the first k
    arms for k from all down to one, each with the finals of those arms and then without them."""
    words = args.split()
    pairs = list(zip(words[::2], words[1::2], strict=False))
    if len(words) % 2 or any(flag not in ("--arm", "--final") for flag, _ in pairs):
        raise SystemExit(f"decide: ARMS is --arm SPEC and --final NAME pairs, not {args!r}")
    arms = [v for flag, v in pairs if flag == "--arm"]
    finals = [v for flag, v in pairs if flag == "--final"]
    if not arms:
        raise SystemExit(f"decide: ARMS names no --arm: {args!r}")
    unknown = set(finals) - {a.split(":")[0] for a in arms}
    if unknown:
        raise SystemExit(f"decide: --final {' '.join(sorted(unknown))}: no such --arm in {args!r}")
    sets: list[tuple[str, int]] = []
    for k in range(len(arms), 0, -1):
        names = {a.split(":")[0] for a in arms[:k]}
        mine = [f for f in finals if f in names]
        base = " ".join(f"--arm {a}" for a in arms[:k])
        for fin in [mine, []] if mine else [[]]:
            sets.append((" ".join([base, *(f"--final {f}" for f in fin)]), folds * k + len(fin)))
    return tuple(sets)


def main(argv: list[str]) -> int:
    probe, n_probe, budget, out = Path(argv[0]), int(argv[1]), float(argv[2]), Path(argv[3])
    steps, mid = int(argv[4]), int(argv[5])
    sets = job_sets(argv[6])
    rates, lasts = [], []
    for log in probe.glob("*/*/train.log"):
        text = log.read_text()
        if m := re.findall(rf"step {mid}/{mid} loss \S+ ([\d.]+) s/step", text):
            rates.append(float(m[-1]))
        if t := re.findall(r"stage to step \d+ took ([\d.]+) s", text):
            lasts.append(float(t[-1]))
    if not rates or len(rates) < n_probe // 2:
        print(f"decide: {len(rates)} of {n_probe} probe jobs measured; the smallest set")
        out.write_text(sets[-1][0])
        return 1
    r, last = statistics.median(rates), statistics.median(lasts)
    spread = f"{min(rates)}-{max(rates)}"
    print(f"decide: {len(rates)} jobs, {r:.3f} s/step (median; {spread}), last stage {last:.0f} s")
    for args, n in sets:
        projected = steps * r * SLOWDOWN * min(1.0, n / n_probe) + 90 + 2 * last
        print(f"decide: {n} jobs, projected {projected:.0f} s of {budget:.0f}")
        if projected <= budget:
            out.write_text(args)
            return 0
    out.write_text(sets[-1][0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
