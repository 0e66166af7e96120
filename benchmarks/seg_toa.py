"""How much does the segmentation ship model lose on top-of-atmosphere (Level-1C) input, and does dark-object
subtraction (``detect.core.haze``) win it back? Inference only, over trained CV runs (``fold<k>/model.pt``),
the shipped detector settings (every model band the scene has, water check on).

The 2018 cases (Longkou) exist only as L1C, but the model was trained on L2A, and no L1C scene with
labelled ships is at hand. So each held-out L2A scene is also turned into a simulated L1C one,
``rho_toa = rho_path + T * rho_boa`` per band (``benchmarks/_toa.py``: single-scattering path reflectance of
air and of an aerosol layer of optical depth ``--aot`` at 550 nm, two-way diffuse transmittance T, nadir
view, sun ``--sun-zenith`` degrees from zenith). This is a sensitivity test, not a measurement on real L1C.
Each fold's threshold is chosen on its inner cities as read (L2A), as the shipped model's was, and every
condition is scored at it.
Dark-object subtraction runs inside the detector (``SegShipDetector(haze="on")``, which ``auto`` does on
L1C), down to the median dark level of the fold's training cities
(``detect.ships.segment_train.dark_reference``), as the shipped spec's ``dark_reference`` is over all of
them. Records are cached in ``--cache``, so a rerun only re-tabulates.

    python benchmarks/seg_toa.py --cv-dir RUN/c0 --cv-dir RUN/c1 --cache RUN/toa [--aot 0.1,0.5] [--folds 0,1]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))  # _toa, also where the script is imported by path

from _toa import atmosphere, simulate_toa  # noqa: E402

from detect.ships.segment import SEG_BANDS  # noqa: E402

DARK = "+ dark subtraction"


def conditions(aots: list[float]) -> dict[str, tuple[float | None, bool]]:
    """{name: (aerosol optical depth of the simulated L1C, or None: the scene as read; dark subtraction)}."""
    out: dict[str, tuple[float | None, bool]] = {"L2A": (None, False), f"L2A {DARK}": (None, True)}
    for a in aots:
        out[f"L1C aot {a:g}"] = (a, False)
        out[f"L1C aot {a:g} {DARK}"] = (a, True)
    return out


def fold_records(run: Path, f: int, fold: dict, data: Path, truth: dict, cache: Path, a) -> dict:
    """{"threshold", "reference", "held": {condition: [scene records at the threshold]}} of one fold model,
    from the cache where it is there (a condition missing there is added)."""
    from _seg_cv import fold_model, read_records

    from detect.ships.segment import SegShipDetector
    from detect.ships.segment_train import (
        VARIANTS,
        best_threshold,
        detect_cities,
        read_city,
        records_by_threshold,
        scene_record,
    )
    from imagery.atomic import atomic_write_json

    path = cache / run.name / f"fold{f}-sz{a.sun_zenith:g}.json"
    out = read_records(path) if path.is_file() else {"held": {}}
    todo = {k: v for k, v in conditions(a.aots).items() if k not in out["held"]}
    if not todo:
        return out
    seg = fold_model(run, f)
    if "threshold" not in out:
        inner = detect_cities(seg, data, fold["inner"], VARIANTS["default"], truth)
        out["threshold"] = best_threshold(records_by_threshold(inner))[0]
    if "reference" not in out:
        out["reference"] = fold_reference(data, tuple(fold["fit"] + fold["inner"]))
    seg = seg.with_spec(replace(seg.spec, dark_reference=out["reference"]))
    # each held-out city read once, for every condition (San Francisco's bands cannot be scored: None)
    windows = [w for w in (read_city(data, c) for c in fold["held_out"]) if w is not None]
    for name, (aot, dark) in todo.items():
        det = SegShipDetector(seg, conf=0.0, water_mask=True, haze="on" if dark else "off")
        recs = []
        for w in windows:
            seen = w if aot is None else simulate_toa(w, aot, a.sun_zenith)
            recs.append(
                scene_record(det.detect(seen, conf=0.05), truth.get(w.scene_id, []), out["threshold"])
            )
        out["held"][name] = recs
        atomic_write_json(path, out)
    return out


@functools.cache
def fold_reference(data: Path, cities: tuple[str, ...]) -> dict[str, float]:
    """``dark_reference`` of a fold's training cities, computed once per process (the same for every run)."""
    from detect.ships.segment_train import dark_reference

    return dark_reference(data, cities)


def main(argv: list[str] | None = None) -> int:
    from _seg_cv import add_run_arguments, run_inputs

    from detect.ships.segment_train import pool

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(ap)
    ap.add_argument("--aot", default="0.1,0.5", help="aerosol optical depths (550 nm) of the simulated L1C")
    ap.add_argument(
        "--sun-zenith", type=float, default=25.0, help="degrees (Longkou at 10:30 in May-June: ~20-25)"
    )
    a = ap.parse_args(argv)
    a.aots = [float(x) for x in a.aot.split(",") if x]
    data, plan, truth, folds = run_inputs("seg_toa", ap, a)
    print("Path reflectance / transmittance per band at this sun zenith:")
    for aot in [0.0, *a.aots]:
        cells = [
            f"{b} {atmosphere(b, aot, a.sun_zenith)[0]:.3f} / {atmosphere(b, aot, a.sun_zenith)[1]:.2f}"
            for b in SEG_BANDS
        ]
        print(f"- aot {aot:g}: " + ", ".join(cells))
    runs = [r.name for r in a.cv_dir]
    scores: dict[str, dict[str, dict]] = {}
    for run in a.cv_dir:
        recs = {f: fold_records(run, f, plan[f], data, truth, a.cache, a) for f in folds}
        held = {k: [x for f in folds for x in recs[f]["held"][k]] for k in conditions(a.aots)}
        scores[run.name] = {k: pool(v) for k, v in held.items()}
    print(f"\nPooled held-out F1 (AP50, recall < 80 m) per run, folds {a.folds}; thresholds chosen on")
    print("the L2A inner cities\n")
    print("| input | " + " | ".join(runs) + " | mean F1 | mean AP50 |")
    print("|---" * (len(runs) + 3) + "|")
    for k in conditions(a.aots):
        cells = [scores[r][k] for r in runs]
        text = " | ".join(f"{c['f1']:.3f} ({c['ap50']:.3f}, {c['recall_0_80m']:.2f})" for c in cells)
        mf1 = statistics.mean(c["f1"] for c in cells)
        map50 = statistics.mean(c["ap50"] for c in cells)
        print(f"| {k} | {text} | {mf1:.3f} | {map50:.3f} |")
    print("\nPaired F1 differences over the runs (mean, sd, runs up / down):")
    for k, base in paired_rows(a.aots):
        d = [scores[r][k]["f1"] - scores[r][base]["f1"] for r in runs]
        sd = statistics.stdev(d) if len(d) > 1 else 0.0
        up, down = sum(x > 0 for x in d), sum(x < 0 for x in d)
        print(f"- {k} against {base}: {statistics.mean(d):+.3f} (sd {sd:.3f}; {up} up, {down} down)")
    return 0


def paired_rows(aots: list[float]) -> list[tuple[str, str]]:
    """(row, the row it changes one thing of): each simulated L1C against L2A, each dark subtraction
    against the same input without it."""
    rows = [(f"L1C aot {x:g}", "L2A") for x in aots]
    return rows + [(f"{k} {DARK}", k) for k in ("L2A", *(f"L1C aot {x:g}" for x in aots))]


if __name__ == "__main__":
    raise SystemExit(main())
