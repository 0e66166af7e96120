"""How a fold's score threshold is chosen on its two inner cities, compared over several trained CV runs of
the segmentation model (inference only; the shipped detector settings: every model band a scene has, water
check on). Each fold model's detections on its inner and held-out cities are kept at every threshold of the
training grid (cached in ``--cache``, so a rerun only re-tabulates); each rule then picks a threshold from the
inner cities alone, and the held-out cities are pooled at it, per run.

Rules: ``max`` (training's: the best inner F1, the lowest threshold on ties), ``smooth`` (the best mean inner
F1 of a threshold and its two grid neighbours), ``count`` (the inner detections' count closest to the inner
ships' count, the highest threshold on ties), and ``fixed 0.95`` (no choice: the shipped v6 threshold, for
reference; it was itself taken from v6's CV).

    python benchmarks/seg_threshold_rules.py --cv-dir RUN/c0 --cv-dir RUN/c1 --cache RUN/thr \\
        [--folds 0,1] [--misses]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detect.ships.segment_train import VARIANTS, best_threshold, pool  # noqa: E402


def rule_max(inner: dict[float, list]) -> float:
    return best_threshold(inner)[0]


def rule_smooth(inner: dict[float, list]) -> float:
    ts = sorted(inner)
    f1 = [pool(inner[t])["f1"] for t in ts]
    best, best_v = ts[0], -1.0
    for i, t in enumerate(ts):
        near = f1[max(0, i - 1) : i + 2]
        v = sum(near) / len(near)
        if v > best_v + 1e-9:
            best, best_v = t, v
    return best


def rule_count(inner: dict[float, list]) -> float:
    best, best_d = max(inner), float("inf")
    for t in sorted(inner, reverse=True):
        p = pool(inner[t])
        d = abs(p["n_pred"] - p["n_truth"])
        if d < best_d:
            best, best_d = t, d
    return best


RULES = {"max": rule_max, "smooth": rule_smooth, "count": rule_count, "fixed 0.95": lambda inner: 0.95}


def fold_records(run: Path, f: int, fold: dict, data: Path, truth: dict, cache: Path) -> dict:
    """{"inner"|"held": {threshold: [scene records]}} of one fold model, from the cache when it is there."""
    from _seg_cv import fold_model, read_records

    from detect.ships.segment_train import detect_cities, records_by_threshold
    from imagery.atomic import atomic_write_json

    path = cache / run.name / f"fold{f}.json"
    if path.is_file():
        return read_records(path)
    seg = fold_model(run, f)
    out = {}
    for part, cities in (("inner", fold["inner"]), ("held", fold["held_out"])):
        found = detect_cities(seg, data, cities, VARIANTS["default"], truth)
        out[part] = records_by_threshold(found)
    atomic_write_json(path, out)
    return out


def main(argv: list[str] | None = None) -> int:
    from _seg_cv import add_run_arguments, run_inputs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(ap)
    ap.add_argument("--misses", action="store_true", help="per city: ships every run finds, and none finds")
    a = ap.parse_args(argv)
    data, plan, truth, folds = run_inputs("seg_threshold_rules", ap, a)
    table: dict[str, dict[str, float]] = {r: {} for r in RULES}
    chosen: dict[str, dict[str, list[float]]] = {r: {} for r in RULES}
    for run in a.cv_dir:
        recs = {f: fold_records(run, f, plan[f], data, truth, a.cache) for f in folds}
        for name, rule in RULES.items():
            ts = [rule(recs[f]["inner"]) for f in folds]
            held = [r for f, t in zip(folds, ts, strict=True) for r in recs[f]["held"][t]]
            table[name][run.name] = pool(held)["f1"]
            chosen[name][run.name] = ts
    runs = [r.name for r in a.cv_dir]
    print(f"\nPooled held-out F1 per run (folds {a.folds}), threshold chosen on each fold's inner cities\n")
    print("| rule | " + " | ".join(runs) + " | mean | sd |")
    print("|---" * (len(runs) + 3) + "|")
    for name in RULES:
        v = [table[name][r] for r in runs]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        cells = " | ".join(f"{x:.3f}" for x in v)
        print(f"| {name} | {cells} | {statistics.mean(v):.3f} | {sd:.3f} |")
    print("\nThresholds chosen (per fold):")
    for name in RULES:
        print(f"- {name}: " + "; ".join(f"{r} {' '.join(str(t) for t in chosen[name][r])}" for r in runs))
    if a.misses:
        print_misses(a.cv_dir, folds, plan, data, a.cache, chosen["max"])
    return 0


def scored_cities(data: Path, cities: list[str]) -> list[str]:
    """The held-out cities a fold is scored on, in order: those whose bands the detector takes (as
    ``read_city``; San Francisco's B02 B03 B11 it refuses)."""
    from detect.ships.dataset import available_bands
    from detect.ships.segment import SEG_BANDS, usable_bands

    return [c for c in cities if usable_bands([b for b in SEG_BANDS if b in available_bands(data, c)])]


def print_misses(
    runs: list[Path], folds: list[int], plan: list, data: Path, cache: Path, chosen: dict
) -> None:
    """Per held-out city: its ships found by every run, by none, and by some, at training's thresholds."""
    from detect.ships.segment_train import LENGTH_CLASSES

    hits: dict[str, list[list[bool]]] = {}
    lengths: dict[str, list[float]] = {}
    for run in runs:
        for i, f in enumerate(folds):
            recs = fold_records(run, f, plan[f], data, {}, cache)["held"][chosen[run.name][i]]
            for c, r in zip(scored_cities(data, plan[f]["held_out"]), recs, strict=True):
                hits.setdefault(c, []).append(r["truth_matched"])
                lengths[c] = r["truth_len"]
    n = len(runs)
    print(f"\nShips found at training's thresholds by all {n} runs, by none, by some:\n")
    print("| city | ships | all | none | some |\n|---|---|---|---|---|")
    by_class = {k: [0, 0, 0] for k in LENGTH_CLASSES}
    for c in sorted(hits):
        k = [sum(h[i] for h in hits[c]) for i in range(len(lengths[c]))]
        every, none = sum(x == n for x in k), sum(x == 0 for x in k)
        print(f"| {c} | {len(k)} | {every} | {none} | {len(k) - every - none} |")
        for length, x in zip(lengths[c], k, strict=True):
            cls = next(lc for lc in LENGTH_CLASSES if lc[0] <= length < lc[1])
            by_class[cls][0] += 1
            by_class[cls][1] += x == n
            by_class[cls][2] += x == 0
    for (lo, hi), (total, every, none) in by_class.items():
        print(f"- {lo:.0f}-{hi:.0f} m: {total} ships, {every} found by all runs, {none} by none")


if __name__ == "__main__":
    raise SystemExit(main())
