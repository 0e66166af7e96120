"""Cross-validation table of the hull-segmentation ship model (``harborwatch train ships-seg``) beside the
YOLO model's card and the NIR baseline, on the same held-out sen2ships cities.

    python benchmarks/ship_cv_seg.py --cv-dir RUNS/seg [--cv-dir RUNS/seg-paste] [--data SEN2SHIPS_TRAINVAL]
        [--baseline] [--yolo-card weights/ships-s2.json] [--markdown] [--json OUT]

Every row pools the whole held-out scenes of the finished folds (leave-cities-out; each fold's threshold
chosen on two of its own training cities). Rows per run: ``default`` (the shipped detector settings: every
model band the scene has, water check on), ``no_water``, and the same scenes read with only ``B08``, only
true colour, or true colour quantised to 8 bits. ``four-band cities`` restricts a row to the 12 cities with
B02 B03 B04 B08 (what the YOLO model's CV covers), so the two can be compared; the YOLO row is read from its
card (its fold weights are not kept), so it has no recall by length. ``auto`` combines the YOLO card's
folds (four-band cities) with the segmentation model on the other cities, as the default detector ran before
seg v4 (a historical row).

Two columns are moved by no threshold choice, so they compare runs without the noise of each fold's two-city
threshold (about 0.03 F1): ``ap_count``, average precision under the counting rule of P, R and F1 (IoU >= 0.1
or centres <= 30 m; ``ap50`` asks IoU >= 0.5 of the boxes), and ``f1_best``, the pooled F1 at the one
threshold best for these held-out scenes: an upper bound for comparing runs, never a result. Both are empty
for folds scored before session 20 (their records lack the counting hits: score them again).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detect.ships.segment_train import (  # noqa: E402
    LENGTH_CLASSES,
    VARIANTS,
    pool,
    scene_record,
)

FOUR_BAND = ("B02", "B03", "B04", "B08")
COLUMNS = (
    "precision",
    "recall",
    "f1",
    "ap50",
    "ap_count",
    "f1_best",
    "recall_0_80m",
    "recall_80_150m",
    "recall_150_upm",
    "length_mae_m",
    "count_mae",
    "n_truth",
)


def fold_results(cv_dir: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(cv_dir.glob("fold*/result.json")):
        r = json.loads(p.read_text())
        r["fold"] = p.parent.name
        out.append(r)
    return out


def four_band_cities(data: Path) -> set[str]:
    from detect.ships.dataset import available_bands

    return {
        p.name for p in data.iterdir() if p.is_dir() and set(FOUR_BAND) <= set(available_bands(data, p.name))
    }


def baseline_records(data: Path, cities: list[str]) -> dict[str, dict[str, Any]]:
    from ship_cv import read_city as read_for  # the baseline read as ship_cv.py reads it (B08 + water bands)

    from detect.ships.baseline import BaselineDetector
    from detect.ships.evaluate import load_coco_truth
    from imagery.errors import MissingBandsError

    det = BaselineDetector()
    truth = load_coco_truth(data / "annotations_coco.json", data, cities)
    out = {}
    for c in cities:
        try:
            w = read_for(data, c, det)
        except MissingBandsError:  # no B08: the baseline cannot run there
            continue
        out[c] = scene_record(det.detect(w, conf=0.0), truth.get(c, []), det.conf)
    return out


def _round(v: Any, digits: int) -> Any:
    return round(v, digits) if isinstance(v, float) else v


def yolo_card_row(card: Path, label: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    spec = json.loads(card.read_text())
    cv = spec["metrics"]["cv"]
    folds = cv["per_fold"]
    tp = sum(f["tp"] for f in folds.values())
    n_pred = sum(f["n_pred"] for f in folds.values())
    n_truth = sum(f["n_truth"] for f in folds.values())
    p, r = tp / n_pred, tp / n_truth
    pooled = cv.get("pooled") or {}
    row = {
        "run": label,
        "rows": "four-band cities",
        "precision": round(p, 3),
        "recall": round(r, 3),
        "f1": round(2 * p * r / (p + r), 3),
        "ap50": _round(pooled.get("ap50"), 3),
        "length_mae_m": _round(pooled.get("length_mae_m"), 1),
        "count_mae": _round(pooled.get("count_mae"), 2),
        "n_truth": n_truth,
        "tp": tp,
        "n_pred": n_pred,
    }
    return row, folds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cv-dir", action="append", required=True, type=Path)
    ap.add_argument("--data", default=None)
    ap.add_argument("--baseline", action="store_true")
    ap.add_argument("--yolo-card", type=Path, default=REPO / "weights" / "ships-s2.json")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from detect.core.data import data_path
    from imagery.errors import InputError

    try:
        data = data_path("sen2ships", args.data)
    except InputError as e:
        sys.exit(f"ship_cv_seg: {e}")
    four = four_band_cities(data)
    rows: list[dict[str, Any]] = []
    per_fold: dict[str, dict[str, float]] = {}
    first_seg: dict[str, dict[str, Any]] = {}
    held_all: list[str] = []
    first_results: list[dict[str, Any]] = []
    for cv_dir in args.cv_dir:
        results = fold_results(cv_dir)
        if not results:
            print(f"{cv_dir}: no finished folds", file=sys.stderr)
            continue
        held = sorted(c for r in results for c in r["held_out"])
        label = f"{cv_dir.name} (folds {', '.join(r['fold'][4:] for r in results)})"
        for variant in VARIANTS:
            recs = {c: rec for r in results for c, rec in r["variants"].get(variant, {}).items()}
            if not recs:  # a run scored with fewer rows (seg_cv_rescore.py --variants)
                continue
            rows.append({"run": label, "rows": variant, **pool(list(recs.values()))})
            if variant == "default":
                rows.append(
                    {
                        "run": label,
                        "rows": "default, four-band cities",
                        **pool([v for c, v in recs.items() if c in four]),
                    }
                )
                per_fold[label] = {
                    r["fold"]: pool(list(r["variants"]["default"].values()))["f1"] for r in results
                }
                if not first_seg:
                    first_seg, held_all, first_results = recs, held, results
    if args.baseline and held_all:
        base = baseline_records(data, held_all)
        rows.append(
            {"run": "baseline (NIR CFAR)", "rows": "same cities (with B08)", **pool(list(base.values()))}
        )
        rows.append(
            {
                "run": "baseline (NIR CFAR)",
                "rows": "four-band cities",
                **pool([v for c, v in base.items() if c in four]),
            }
        )
        # the issue asks for every fold above the baseline: the baseline on each fold's held-out cities
        per_fold["baseline (NIR CFAR), the first run's folds"] = {
            r["fold"]: pool([base[c] for c in r["held_out"] if c in base])["f1"] for r in first_results
        }
    if args.yolo_card.is_file():
        yrow, _ = yolo_card_row(args.yolo_card, f"yolo v1 ({args.yolo_card.name}, card)")
        rows.append(yrow)
        if first_seg:
            other = [v for c, v in first_seg.items() if c not in four]
            tp = yrow["tp"] + sum(v["tp"] for v in other)
            n_pred = yrow["n_pred"] + sum(v["n_pred"] for v in other)
            n_truth = yrow["n_truth"] + sum(v["n_truth"] for v in other)
            p, r = tp / n_pred, tp / n_truth
            rows.append(
                {
                    "run": "auto (yolo card on four-band cities + seg on the others)",
                    "rows": "all cities",
                    "precision": round(p, 3),
                    "recall": round(r, 3),
                    "f1": round(2 * p * r / (p + r), 3),
                    "n_truth": n_truth,
                }
            )
    head = ["run", "rows", *COLUMNS]
    print(" | ".join(head))
    for row in rows:
        print(" | ".join(str(row.get(k, "")) for k in head))
    for label, f1s in per_fold.items():
        print(f"{label}: per-fold F1 " + ", ".join(f"{k} {v}" for k, v in f1s.items()))
    if args.markdown:
        print()
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in rows:
            print("| " + " | ".join("" if row.get(k) is None else str(row.get(k)) for k in head) + " |")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rows": rows, "per_fold_f1": per_fold, "length_classes_m": LENGTH_CLASSES},
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
