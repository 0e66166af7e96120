"""Two inference-only questions about a trained CV run of the segmentation ship model (``harborwatch train
ships-seg``), answered from its fold models' out-of-fold detections, with the shipped detector settings:

1. How much does the two-city inner split cost? Each fold's threshold chosen as trained (on its two inner
   cities) against one chosen on every out-of-fold scene outside that fold's held-out cities (the other
   folds' held-out cities scored by their own fold models, and this fold's inner cities): eleven or twelve
   cities instead of two. Fold k's held-out labels are never used for fold k's choice, but the other folds'
   models were trained on them, so this is a diagnostic of threshold noise, not the CV protocol.
2. Does a second stage help? A LightGBM rescoring of each hull (the network's probabilities, the hull's
   size and shape, NIR contrast with its surroundings, the open water around it, NDWI, neighbours) trained
   on the same out-of-fold scenes, its threshold chosen by a city-grouped 5-fold CV inside them, then applied
   to fold k's held-out cities.

    python benchmarks/seg_oof_rescore.py --cv-dir RUNS/cvJ [--seeds 0,1,2] [--data SEN2SHIPS_TRAINVAL]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAN = float("nan")
#: Context rings around a hull (pixels): the fender strip, the berth, the basin.
RINGS = (2, 8, 30)
#: Rescoring threshold grid (probabilities of the second stage).
GRID = tuple(round(0.05 + 0.025 * i, 3) for i in range(37))
LGB_PARAMS = dict(
    objective="binary",
    learning_rate=0.03,
    num_leaves=7,
    min_data_in_leaf=20,
    bagging_fraction=0.8,
    bagging_freq=1,
    feature_fraction=0.8,
    lambda_l2=1.0,
    verbose=-1,
    num_threads=1,
)
LGB_ROUNDS = 200


def hull_features(run, hull) -> dict[str, float]:
    """What the second stage sees of one kept hull (``SegPass``, ``Hull``); NaN where a band is absent."""
    from detect.ships.segment import SEG_BANDS

    inst = hull.instance
    h, w = run.prob.shape[1:]
    pad = RINGS[-1]
    r0, r1 = max(0, int(inst.rows.min()) - pad), min(h, int(inst.rows.max()) + pad + 1)
    c0, c1 = max(0, int(inst.cols.min()) - pad), min(w, int(inst.cols.max()) + pad + 1)
    m = np.zeros((r1 - r0, c1 - c0), np.uint8)
    m[inst.rows - r0, inst.cols - c0] = 1
    body = m > 0
    rings = {k: (cv2.dilate(m, np.ones((2 * k + 1,) * 2, np.uint8)) > 0) & ~body for k in RINGS}
    hull_p, core_p = run.prob[0, r0:r1, c0:c1], run.prob[1, r0:r1, c0:c1]
    c = hull.corners
    length, width = sorted((np.hypot(*(c[1] - c[0])), np.hypot(*(c[2] - c[1]))), reverse=True)
    f = {
        "score": inst.score,
        "hull_mean": float(hull_p[body].mean()),
        "core_max": float(core_p[body].max()),
        "core_mean": float(core_p[body].mean()),
        "ring2_hull_prob": float(hull_p[rings[2]].mean()) if rings[2].any() else NAN,
        "ring8_hull_prob": float(hull_p[rings[8]].mean()) if rings[8].any() else NAN,
        "n_px": float(body.sum()),
        "length_px": float(length),
        "width_px": float(width),
        "aspect": float(length / max(width, 1.0)),
        "fill": float(body.sum() / max(length * width, 1.0)),
    }
    for k in ("nir_hull", "nir_max", "nir_std", "contrast2", "contrast8", "water2", "water8", "water30"):
        f[k] = NAN
    f["ndwi_hull"] = f["ndwi_ring8"] = NAN
    if "B08" in run.bands:
        nir = run.reflectance[SEG_BANDS.index("B08"), r0:r1, c0:c1]
        f.update(
            nir_hull=float(nir[body].mean()), nir_max=float(nir[body].max()), nir_std=float(nir[body].std())
        )
        f["contrast2"] = f["nir_hull"] - float(np.median(nir[rings[2]]))
        f["contrast8"] = f["nir_hull"] - float(np.median(nir[rings[8]]))
        if "B03" in run.bands:
            g = run.reflectance[SEG_BANDS.index("B03"), r0:r1, c0:c1]
            nd = (g - nir) / np.maximum(g + nir, 1e-4)
            f["ndwi_hull"], f["ndwi_ring8"] = float(nd[body].mean()), float(np.median(nd[rings[8]]))
    if run.water_core is not None:
        wc = run.water_core[r0:r1, c0:c1]
        for k in RINGS:
            f[f"water{k}"] = float(wc[rings[k]].mean())
    return f


def add_neighbours(feats: list[dict[str, float]], centres: np.ndarray) -> None:
    """Strong hulls (score >= 0.5) within 15 and 40 px of each hull's centre (ships in rows, stacks)."""
    if not len(feats):
        return
    strong = np.array([f["score"] >= 0.5 for f in feats])
    d = np.hypot(*(centres[:, None, :] - centres[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    for f, n15, n40 in zip(feats, ((d <= 15) & strong).sum(1), ((d <= 40) & strong).sum(1), strict=True):
        f["nb15"], f["nb40"] = float(n15), float(n40)


def scene_candidates(det, window):
    """Detections (those of ``det.detect`` at conf 0.05) and their features."""
    run = det.run(window, conf=0.05)
    dets = det.detections(window, run)
    feats = [hull_features(run, h) for h in run.hulls]
    centres = np.array([[h.instance.rows.mean(), h.instance.cols.mean()] for h in run.hulls]).reshape(-1, 2)
    add_neighbours(feats, centres)
    return dets, feats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cv-dir", required=True, type=Path)
    ap.add_argument("--seeds", default="0", help="LightGBM seeds for the rescoring rows")
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    try:
        import lightgbm as lgb
        import torch
    except ImportError as e:
        sys.exit(f"seg_oof_rescore: needs lightgbm and torch ({e})")
    from _seg_cv import cv_inputs

    from detect.ships.evaluate import match_scene
    from detect.ships.segment import SegModel, SegShipDetector, SegSpec, network_for
    from detect.ships.segment_train import (
        THRESHOLDS,
        best_threshold,
        pool,
        read_city,
        scene_record,
    )

    data, plan, truth = cv_inputs("seg_oof_rescore", a.data, a.cv_dir / "scenes", a.threads)
    # (fold, role, city) -> detections, feature rows, match labels
    scenes: dict[tuple[int, str, str], dict] = {}
    t0 = time.perf_counter()
    for k, fold in enumerate(plan):
        path = a.cv_dir / f"fold{k}" / "model.pt"
        if not path.is_file():
            sys.exit(f"seg_oof_rescore: fold {k} not trained: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = network_for(state)  # the run's own width, depth or encoder
        net.load_state_dict(state)
        det = SegShipDetector(SegModel(net.eval(), SegSpec(name=f"fold{k}", base=a.base)), conf=0.0)
        for role, group in (("held", fold["held_out"]), ("inner", fold["inner"])):
            for c in group:
                window = read_city(data, c)
                if window is None:
                    continue
                dets, feats = scene_candidates(det, window)
                tr = truth.get(c, [])
                hit = match_scene(dets, tr).match >= 0
                scenes[(k, role, c)] = {"dets": dets, "feats": feats, "hit": hit, "truth": tr}
        print(f"fold {k}: scored {time.perf_counter() - t0:.0f} s", flush=True)
    names = sorted({n for s in scenes.values() for f in s["feats"] for n in f})

    def matrix(keys):
        rows = [[f.get(n, NAN) for n in names] for key in keys for f in scenes[key]["feats"]]
        hits = [h for key in keys for h in scenes[key]["hit"]]
        return np.asarray(rows, float).reshape(-1, len(names)), np.asarray(hits, int)

    def records(preds: dict, t: float) -> list[dict]:
        return [scene_record(p, scenes[key]["truth"], t) for key, p in preds.items()]

    def rescored(model, key):
        x, _ = matrix([key])
        s = model.predict(x) if len(x) else []
        return [replace(d, score=float(v)) for d, v in zip(scenes[key]["dets"], s, strict=True)]

    def fit(keys, seed):
        x, y = matrix(keys)
        return lgb.train({**LGB_PARAMS, "seed": seed}, lgb.Dataset(x, y, feature_name=names), LGB_ROUNDS)

    seeds = [int(s) for s in a.seeds.split(",")]
    rows = {"inner split (as trained)": [], "threshold on out-of-fold scenes": []}
    rows.update({f"LightGBM rescoring, seed {s}": [] for s in seeds})
    for k, fold in enumerate(plan):
        held = {key: scenes[key]["dets"] for key in scenes if key[:2] == (k, "held")}
        inner = {key: scenes[key]["dets"] for key in scenes if key[:2] == (k, "inner")}
        t_in, _ = best_threshold({t: records(inner, t) for t in THRESHOLDS})
        rows["inner split (as trained)"].append((t_in, records(held, t_in)))
        pool_keys = [key for key in scenes if key[2] not in fold["held_out"]]
        oof = {key: scenes[key]["dets"] for key in pool_keys}
        t_oof, _ = best_threshold({t: records(oof, t) for t in THRESHOLDS})
        rows["threshold on out-of-fold scenes"].append((t_oof, records(held, t_oof)))
        pool_cities = sorted({key[2] for key in pool_keys})
        for seed in seeds:
            perm = list(np.random.default_rng(k).permutation(pool_cities))
            inner_cv = {}
            for g in (perm[i::5] for i in range(5)):
                m = fit([key for key in pool_keys if key[2] not in g], seed)
                inner_cv.update({key: rescored(m, key) for key in pool_keys if key[2] in g})
            t_rs, _ = best_threshold({t: records(inner_cv, t) for t in GRID})
            m = fit(pool_keys, seed)
            rows[f"LightGBM rescoring, seed {seed}"].append(
                (t_rs, records({key: rescored(m, key) for key in held}, t_rs))
            )
    print(f"\n{a.cv_dir.name}: leave-cities-out folds, held-out cities scored by their fold model\n")
    head = ("row", "thresholds", "per-fold F1", "P", "R", "F1", "AP50", "R < 80 m", "R 80–150 m", "R > 150 m")
    print("| " + " | ".join((*head, "length MAE", "truths")) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, per_fold in rows.items():
        s = pool([r for _, recs in per_fold for r in recs])
        ths = ", ".join(f"{t:g}" for t, _ in per_fold)
        f1s = ", ".join(f"{pool(recs)['f1']:.3f}" for _, recs in per_fold)
        print(
            f"| {name} | {ths} | {f1s} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | "
            f"{s['ap50']:.3f} | {s['recall_0_80m']:.2f} | {s['recall_80_150m']:.2f} | "
            f"{s['recall_150_upm']:.2f} | {s['length_mae_m']} m | {s['n_truth']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
