"""Leave-cities-out cross-validation table for the Sentinel-2 vessel model, beside the CFAR baseline.

Each fold's model (from ``python -m detect.ships.train`` / ``harborwatch train``) is run with
``detect.ships.ShipDetector`` on the WHOLE scenes of the cities it never saw and scored with
``detect.ships.evaluate`` (IoU >= 0.1 or centre <= 30 m, AP50, count error, length MAE). The baseline is
scored on the same scenes. Prints per-fold and pooled rows; ``--out`` writes JSON.

    python benchmarks/ship_cv.py --cv-dir work-data/cv/B04-B03-B02-B08 --cv-dir work-data/cv/B04-B03-B02 \
        [--data SEN2SHIPS_TRAINVAL] --baseline --out work-data/cv/ship_cv.json \
        [--write-card weights/ships-s2.json]

``--data`` defaults to ``$HARBORWATCH_DATA/sen2ships/trainval`` (docs/data.md). ``--write-card`` puts the
first ``--cv-dir``'s per-fold and pooled rows (and the baseline's) into the metrics block of that model
spec, so every number of the card comes from this command.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from detect.core.water import WATER_BANDS
from detect.ships.baseline import BaselineDetector
from detect.ships.dataset import SEN2SHIPS_SCALE, available_bands
from detect.ships.evaluate import AP_CONF, EvaluationReport, load_coco_truth, scene_key, summarise
from detect.ships.model import YoloModel
from detect.ships.yolo import ShipDetector
from imagery.atomic import atomic_write_json
from imagery.errors import MissingBandsError
from imagery.read import open_raster

log = logging.getLogger("ship_cv")

#: Operating thresholds scored from the same detections (the detector runs once at AP_CONF).
CONF_SWEEP = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)


def read_city(data: Path, city: str, detector: Any):
    """A city's bands for ``detector`` (plus the water-mask bands) with the sen2ships scale given explicitly.

    ``detect.ships.evaluate.read_for_detector`` lets ``open_raster`` guess the scale per file, which mixes
    1e-4 and 1/65535 within one sen2ships scene; here every band gets reflectance × 65535 → 0–1.
    """
    have = available_bands(data, city)
    required = tuple(detector.required_bands)
    missing = [b for b in required if b not in have]
    if missing:
        raise MissingBandsError(missing, f"{city} (bands present: {', '.join(have)})")
    bands = list(dict.fromkeys([*required, *(b for b in WATER_BANDS if b in have)]))
    return open_raster(data / city, bands, scale=SEN2SHIPS_SCALE, scene_id=city)


def detect_scenes(
    detector: Any, data: Path, coco: dict[str, Any], cities: list[str]
) -> tuple[dict, dict, float]:
    """Run a detector on the named cities' whole scenes: ({scene: (detections, truths)}, skipped, seconds)."""
    ann = data / "annotations_coco.json"
    truth = load_coco_truth(ann, data, cities)
    city_of = {
        scene_key(im["file_name"]): im.get("city") or scene_key(im["file_name"]) for im in coco["images"]
    }
    per_scene, skipped, seconds = {}, {}, 0.0
    for key in sorted(truth):
        try:
            window = read_city(data, city_of[key], detector)
        except MissingBandsError as e:
            skipped[key] = str(e)
            continue
        t0 = time.perf_counter()
        dets = detector.detect(window, conf=AP_CONF)
        seconds += time.perf_counter() - t0
        per_scene[key] = (dets, truth[key])
    return per_scene, skipped, seconds


def row(
    label: str, fold: str, cities: list[str], rep: EvaluationReport, seconds: float | None = None
) -> dict:
    o = rep.overall
    return {
        "detector": label,
        "fold": fold,
        "cities": cities,
        "conf": rep.conf,
        "n_truth": o.n_truth,
        "n_pred": o.n_pred,
        "tp": o.tp,
        "precision": o.precision,
        "recall": o.recall,
        "f1": o.f1,
        "ap50": o.ap50,
        "count_mae": rep.count_mae,
        "length_mae_m": o.length_mae_m,
        "detect_seconds": seconds,
        "scenes": [
            {
                "scene": s.scene,
                "n_truth": s.n_truth,
                "n_pred": s.n_pred,
                "tp": s.tp,
                "f1": s.f1,
                "count_error": s.count_error,
                "length_mae_m": s.length_mae_m,
                "skipped": s.skipped,
            }
            for s in rep.scenes
        ],
    }


def best_conf(per_scene: dict, name: str) -> dict[str, float]:
    """Pooled F1 at each threshold of CONF_SWEEP (all folds' held-out scenes together)."""
    return {f"{c:g}": summarise(name, per_scene, c).overall.f1 for c in CONF_SWEEP}


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'detector':<28}{'fold':<7}{'truth':>6}{'pred':>6}{'TP':>5}{'P':>7}{'R':>7}{'F1':>7}"
        f"{'AP50':>7}{'cntMAE':>8}{'lenMAE':>8}  held-out cities"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        mae = f"{r['length_mae_m']:.1f}" if r["length_mae_m"] is not None else "-"
        lines.append(
            f"{r['detector']:<28}{r['fold']:<7}{r['n_truth']:>6}{r['n_pred']:>6}{r['tp']:>5}{r['precision']:>7.3f}"
            f"{r['recall']:>7.3f}{r['f1']:>7.3f}{r['ap50']:>7.3f}{r['count_mae']:>8.2f}{mae:>8}"
            f"  {', '.join(r['cities'])}"
        )
    return "\n".join(lines)


def format_markdown(rows: list[dict]) -> str:
    """The same table as Markdown, for model cards."""
    lines = [
        "| detector | fold | held-out cities | truth | pred | TP | P | R | F1 | AP50 | count MAE "
        "| length MAE (m) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mae = f"{r['length_mae_m']:.1f}" if r["length_mae_m"] is not None else "–"
        lines.append(
            f"| {r['detector']} | {r['fold']} | {', '.join(r['cities'])} | {r['n_truth']} | {r['n_pred']} "
            f"| {r['tp']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['ap50']:.3f} "
            f"| {r['count_mae']:.2f} | {mae} |"
        )
    return "\n".join(lines)


def run(
    cv_dirs: list[Path],
    data: Path,
    conf: float,
    baseline: bool,
    device: str,
    refine: bool = True,
    tta: bool = False,
) -> dict[str, Any]:
    coco = json.loads((data / "annotations_coco.json").read_text())
    rows: list[dict] = []
    sweeps: dict[str, dict[str, float]] = {}
    baseline_done: dict[str, tuple] = {}
    for cv_dir in cv_dirs:
        report = json.loads((cv_dir / "cv.json").read_text())
        bands = ",".join(report["bands"])
        label = f"yolo {bands}" + (" +tta" if tta else "") + ("" if refine else " (box geometry)")
        base_label = f"baseline (vs {bands})"
        pooled: dict = {}
        pooled_base: dict = {}
        fold_cities: list[str] = []
        for fold in report["folds"]:
            i, held = fold["fold"], fold["held_out"]
            pt = cv_dir / f"fold{i}" / f"ships-s2-fold{i}.pt"
            if not pt.is_file():
                log.warning("%s fold %d: no weights yet, skipped", cv_dir.name, i)
                continue
            det = ShipDetector(YoloModel.load(str(pt), device=device), conf=conf, refine=refine, tta=tta)
            per_scene, skipped, secs = detect_scenes(det, data, coco, held)
            pooled.update(per_scene)
            fold_cities += held
            rows.append(row(label, str(i), held, summarise(det.name, per_scene, conf, skipped), secs))
            log.info("%s fold %d done (%.1f s detect)", label, i, secs)
            if baseline:
                key = ",".join(held)
                if key not in baseline_done:
                    b = BaselineDetector()
                    baseline_done[key] = detect_scenes(b, data, coco, held)
                b_scenes, b_skipped, b_secs = baseline_done[key]
                pooled_base.update(b_scenes)
                rows.append(
                    row(
                        base_label,
                        str(i),
                        held,
                        summarise("baseline", b_scenes, BaselineDetector().conf, b_skipped),
                        b_secs,
                    )
                )
        if pooled:
            rows.append(row(label, "pooled", fold_cities, summarise(label, pooled, conf)))
            sweeps[label] = best_conf(pooled, label)
        if pooled_base:
            rows.append(
                row(
                    base_label,
                    "pooled",
                    fold_cities,
                    summarise("baseline", pooled_base, BaselineDetector().conf),
                )
            )
    return {
        "conf": conf,
        "rows": rows,
        "f1_by_conf": sweeps,
        "match": {"iou": 0.1, "centre_m": 30.0},
        "data": str(data),
    }


def write_card(spec_path: Path, result: dict[str, Any], command: str) -> None:
    """Rewrite ``metrics.cv`` of a model spec from ``run``'s rows (the first detector's folds and pooled
    row, the baseline's pooled row), keeping the rest of the spec."""
    spec = json.loads(spec_path.read_text())
    rows = result["rows"]
    first = next((r["detector"] for r in rows if not r["detector"].startswith("baseline")), None)
    keep = (
        "cities",
        "n_truth",
        "n_pred",
        "tp",
        "precision",
        "recall",
        "f1",
        "ap50",
        "count_mae",
        "length_mae_m",
    )
    folds = {
        r["fold"]: {k: r[k] for k in keep} for r in rows if r["detector"] == first and r["fold"] != "pooled"
    }
    pooled = next((r for r in rows if r["detector"] == first and r["fold"] == "pooled"), None)
    base = next((r for r in rows if r["detector"].startswith("baseline") and r["fold"] == "pooled"), None)
    spec.setdefault("metrics", {})["cv"] = {
        "command": command,
        "folds_completed": sorted(folds),
        "conf": result["conf"],
        "match": result["match"],
        "per_fold": folds,
        "pooled": {k: pooled[k] for k in keep} if pooled else None,
        "baseline_pooled": {k: base[k] for k in keep} if base else None,
        "f1_by_conf": result["f1_by_conf"].get(first, {}),
    }
    atomic_write_json(spec_path, spec, default=lambda o: float(o) if isinstance(o, np.floating) else str(o))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--cv-dir", action="append", required=True, type=Path, help="a `train --out` folder (repeatable)"
    )
    p.add_argument(
        "--data", default=None, help="sen2ships trainval (default $HARBORWATCH_DATA/sen2ships/trainval)"
    )
    p.add_argument("--write-card", type=Path, help="model spec JSON whose metrics.cv block to rewrite")
    p.add_argument("--conf", type=float, default=0.25, help="operating threshold for P/R/F1/counts")
    p.add_argument("--baseline", action="store_true", help="score the CFAR baseline on the same scenes")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--no-refine",
        action="store_true",
        help="keep the network's box geometry (no outline from the pixels, detect.ships.refine)",
    )
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation (detect.ships.tta)")
    p.add_argument("--out", type=Path, help="write the table as JSON here")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from detect.core.data import data_path
    from imagery.errors import InputError

    try:
        data = data_path("sen2ships", args.data)
    except InputError as e:
        sys.exit(f"ship_cv: {e}")
    result = run(
        args.cv_dir,
        data,
        args.conf,
        args.baseline,
        args.device,
        refine=not args.no_refine,
        tta=args.tta,
    )
    print(format_table(result["rows"]))
    if args.markdown:
        print()
        print(format_markdown(result["rows"]))
    for label, sweep in result["f1_by_conf"].items():
        best = max(sweep, key=sweep.get)
        print(
            f"{label}: pooled F1 by conf "
            + " ".join(f"{c}:{f:.3f}" for c, f in sweep.items())
            + f"  (best {best})"
        )
    if args.write_card:
        write_card(
            args.write_card, result, " ".join(["python", "benchmarks/ship_cv.py", *(argv or sys.argv[1:])])
        )
    if args.out:
        atomic_write_json(
            args.out, result, default=lambda o: float(o) if isinstance(o, np.floating) else str(o)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
