"""Training data and training for the truck detector: simulated moving trucks injected into real
sen2ships road pixels, per-pixel features, a LightGBM classifier, and its sidecar spec.

Run ``harborwatch train trucks [--data SEN2SHIPS_ROOT]``
(default ``$HARBORWATCH_DATA/sen2ships``) (or ``python -m detect.trucks.train``;
a few minutes on 2 CPU cores).
Cities are split, never pixels: TRAIN_CITIES fit the model, VAL_CITIES choose the threshold, and
HELDOUT_CITIES are only used by benchmarks/truck_eval.py.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from detect.trucks.detector import (
    FEATURE_NAMES,
    TRUCK_BANDS,
    TruckCandidate,
    TruckDetector,
    TruckModelSpec,
    candidates_from_probability,
    pixel_features,
)
from detect.trucks.sim import SimulatedTruck, add_haze, find_roads, inject_trucks
from imagery.atomic import atomic_path, atomic_write_json
from imagery.errors import InputError
from imagery.read import open_raster

log = logging.getLogger(__name__)

TRAIN_CITIES = ("algiers", "athens", "casablanca", "cartagena", "gdynia", "hedland", "honolulu", "klang")
VAL_CITIES = ("genoa",)
HELDOUT_CITIES = ("marseille", "valencia", "durban")
#: sen2ships stores reflectance × 65535 (its LICENSE-NOTES); say so rather than let a heuristic guess.
SEN2SHIPS_SCALE = 1.0 / 65535.0
MODEL_NAME = "trucks-s2"
#: Seed stream of the haze draws in ``build_set`` (kept apart from the sampling stream).
HAZE_STREAM = 7


@dataclass(frozen=True, eq=False)
class SimScene:
    """One real scene with trucks injected: the data (4, H, W) in TRUCK_BANDS order and the truth."""

    city: str
    data: np.ndarray
    trucks: tuple[SimulatedTruck, ...]
    gsd_m: float


def load_city(
    data_root: str | Path, city: str, cache_dir: str | Path | None = None
) -> tuple[np.ndarray, float]:
    """A sen2ships city's B02, B03, B04, B08 on its UTM 10 m grid, as (4, H, W) reflectance, and the GSD."""
    if cache_dir is not None:
        cached = Path(cache_dir) / f"{city}.npy"
        if cached.exists():
            return np.load(cached), 10.0
    folder = Path(data_root) / "trainval" / city
    if not folder.is_dir():
        raise InputError(f"no sen2ships city folder {folder}")
    window = open_raster(folder, bands=list(TRUCK_BANDS), scale=SEN2SHIPS_SCALE)
    data = window.data.astype(np.float32)
    if cache_dir is not None:
        with atomic_path(Path(cache_dir) / f"{city}.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, data)
    return data, window.grid.res_m


def simulate_scene(data: np.ndarray, city: str, seed: int, n_trucks: int, gsd_m: float = 10.0) -> SimScene:
    """Inject up to ``n_trucks`` trucks at least 8 px apart into a whole scene's road pixels."""
    rng = np.random.default_rng(seed)
    roads = find_roads(data, TRUCK_BANDS)
    out, trucks = inject_trucks(
        data, TRUCK_BANDS, rng, n_trucks, roads=roads, gsd_m=gsd_m, min_separation_px=8.0
    )
    return SimScene(city=city, data=out, trucks=tuple(trucks), gsd_m=gsd_m)


def label_maps(
    shape: tuple[int, int], trucks: tuple[SimulatedTruck, ...], ignore_px: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """(positive, ignore) masks: the pixel nearest each truck's midpoint, and its neighbours within
    ``ignore_px`` that are neither positive nor a fair negative."""
    pos = np.zeros(shape, bool)
    ign = np.zeros(shape, bool)
    h, w = shape
    for t in trucks:
        r, c = round(t.row), round(t.col)
        if 0 <= r < h and 0 <= c < w:
            pos[r, c] = True
            ign[max(r - ignore_px, 0) : r + ignore_px + 1, max(c - ignore_px, 0) : c + ignore_px + 1] = True
    return pos, ign & ~pos


def sample_pixels(
    scene: SimScene, rng: np.random.Generator, n_random: int, n_road: int
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels for every positive plus random and road-pixel negatives of one scene."""
    feats = pixel_features(scene.data)
    shape = scene.data.shape[1:]
    pos, ign = label_maps(shape, scene.trucks)
    valid = np.all(np.isfinite(scene.data), axis=0).ravel()
    roads = find_roads(scene.data, TRUCK_BANDS).mask.ravel()
    neg_ok = valid & ~pos.ravel() & ~ign.ravel()
    pos_idx = np.flatnonzero(pos.ravel() & valid)
    all_neg = np.flatnonzero(neg_ok)
    road_neg = np.flatnonzero(neg_ok & roads)
    rand = rng.choice(all_neg, size=min(n_random, all_neg.size), replace=False)
    road = rng.choice(road_neg, size=min(n_road, road_neg.size), replace=False)
    idx = np.unique(np.concatenate([pos_idx, rand, road]))
    y = pos.ravel()[idx].astype(np.int8)
    return feats[idx], y


def build_set(
    data_root: str | Path,
    cities: tuple[str, ...],
    *,
    seed: int,
    rounds: int,
    n_trucks: int,
    n_random: int,
    n_road: int,
    cache_dir: str | Path | None = None,
    haze: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of ``rounds`` simulated copies of each city; a share ``haze`` of the copies is
    seen through a random atmosphere (``detect.trucks.sim.add_haze``), as Level-1C scenes are."""
    xs, ys = [], []
    for ci, city in enumerate(cities):
        data, gsd = load_city(data_root, city, cache_dir)
        for k in range(rounds):
            s = seed + 1000 * ci + k
            scene = simulate_scene(data, city, s, n_trucks, gsd)
            hz = np.random.default_rng([s, HAZE_STREAM])  # its own stream: haze 0 keeps the old samples
            hazy = haze > 0 and hz.random() < haze
            if hazy:
                scene = replace(scene, data=add_haze(scene.data, TRUCK_BANDS, hz))
            x, y = sample_pixels(scene, np.random.default_rng(s), n_random, n_road)
            log.info(
                "%s round %d%s: %d trucks, %d samples",
                city,
                k,
                " (hazy)" if hazy else "",
                len(scene.trucks),
                len(y),
            )
            xs.append(x)
            ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def dark_reference(
    data_root: str | Path, cities: tuple[str, ...], cache_dir: str | Path | None = None
) -> dict[str, float]:
    """Median over ``cities`` (sen2ships L2A, whole scenes) of each band's dark level
    (``detect.core.haze.dark_levels``): the level dark-object subtraction brings a Level-1C scene back to."""
    from detect.core.haze import dark_levels

    levels: dict[str, list[float]] = {}
    for city in cities:
        data, _ = load_city(data_root, city, cache_dir)
        valid = np.all(np.isfinite(data), axis=0)
        for b, v in dark_levels(data, TRUCK_BANDS, valid).items():
            levels.setdefault(b, []).append(v)
    return {b: round(float(np.median(levels[b])), 4) for b in TRUCK_BANDS if b in levels}


def fit(x: np.ndarray, y: np.ndarray, *, seed: int = 0, num_rounds: int = 300) -> Any:
    """A LightGBM binary classifier (truck midpoint vs not); positives up-weighted to balance the classes."""
    import lightgbm as lgb

    n_pos = max(int(y.sum()), 1)
    weight = np.where(y == 1, (len(y) - n_pos) / n_pos / 4.0, 1.0)
    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 40,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "num_threads": 2,
        "seed": seed,
        "verbose": -1,
    }
    ds = lgb.Dataset(x, label=y, weight=weight, feature_name=list(FEATURE_NAMES))
    return lgb.train(params, ds, num_boost_round=num_rounds)


def save_model(booster: Any, out_dir: str | Path, spec_fields: dict[str, Any]) -> Path:
    """Write ``<name>.lgbm.txt`` and ``<name>.json`` (with the sha256 of the model file) atomically."""
    out_dir = Path(out_dir)
    model_path = out_dir / f"{MODEL_NAME}.lgbm.txt"
    text = booster.model_to_string()
    with atomic_path(model_path) as tmp:
        tmp.write_text(text)
    sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
    spec = TruckModelSpec(
        name=MODEL_NAME,
        model_file=model_path.name,
        bands=TRUCK_BANDS,
        feature_names=FEATURE_NAMES,
        sha256=sha,
        **spec_fields,
    )
    spec_path = out_dir / f"{MODEL_NAME}.json"
    atomic_write_json(spec_path, spec.to_json())
    return spec_path


#: Committed test chips (row0, col0, size) on the UTM 10 m grid of a held-out sen2ships city.
FIXTURE_CHIPS = {
    "marseille-water": ("marseille", 540, 200, 96),
    "marseille-city": ("marseille", 540, 800, 128),
}


def write_chip(data: np.ndarray, grid: Any, path: str | Path, description: str) -> Path:
    """A small 4-band GeoTIFF (uint16 reflectance × 10000, bands named) that ``open_raster`` reads by name."""
    import rasterio

    dn = np.clip(np.rint(np.nan_to_num(data, nan=0.0) * 10000.0), 0, 65535).astype(np.uint16)
    profile = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": dn.shape[0],
        "height": dn.shape[1],
        "width": dn.shape[2],
        "crs": grid.crs,
        "transform": grid.transform,
        "compress": "deflate",
        "predictor": 2,
        "nodata": 0,
    }
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(dn)
        for i, band in enumerate(TRUCK_BANDS, start=1):
            dst.set_band_description(i, band)
        dst.update_tags(
            REFLECTANCE_SCALE="0.0001",
            DESCRIPTION=description,
            ATTRIBUTION="Contains modified Copernicus Sentinel data 2023, processed by Sentinel Hub; "
            "sen2ships (MIT, Copyright (c) 2023 ShipDetectionExperts)",
        )
    return Path(path)


def write_fixtures(data_root: str | Path, out_dir: str | Path) -> list[Path]:
    """Cut FIXTURE_CHIPS out of their cities (on the UTM 10 m grid) into ``out_dir``."""
    from affine import Affine

    from imagery.types import Grid

    written = []
    for name, (city, r0, c0, size) in FIXTURE_CHIPS.items():
        window = open_raster(
            Path(data_root) / "trainval" / city, bands=list(TRUCK_BANDS), scale=SEN2SHIPS_SCALE
        )
        t = window.grid.transform
        grid = Grid(crs=window.grid.crs, transform=t * Affine.translation(c0, r0), width=size, height=size)
        chip = window.data[:, r0 : r0 + size, c0 : c0 + size]
        desc = f"sen2ships {city} B02,B03,B04,B08 on UTM 10 m, rows {r0}:{r0 + size}, cols {c0}:{c0 + size}"
        written.append(write_chip(chip, grid, Path(out_dir) / f"{name}.tif", desc))
    return written


@dataclass(frozen=True)
class MatchResult:
    """Detections matched to injected trucks within ``tol_px`` of the midpoint (greedy by score)."""

    tp: int
    fp: int
    fn: int
    speed_errors_kmh: tuple[float, ...]
    heading_errors_deg: tuple[float, ...]
    travel_sense_correct: int
    found: tuple[bool, ...] = ()  # per injected truck, in input order

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def match(
    cands: list[TruckCandidate], trucks: tuple[SimulatedTruck, ...], gsd_m: float, tol_px: float = 2.0
) -> MatchResult:
    """Greedy one-to-one matching of candidates (highest score first) to the nearest unmatched truck."""
    free = list(range(len(trucks)))
    tp = fp = sense_ok = 0
    speed_err: list[float] = []
    head_err: list[float] = []
    for c in sorted(cands, key=lambda c: -c.score):
        best, best_d = None, tol_px
        for j in free:
            d = math.hypot(c.row - trucks[j].row, c.col - trucks[j].col)
            if d <= best_d:
                best, best_d = j, d
        if best is None:
            fp += 1
            continue
        free.remove(best)
        tp += 1
        t = trucks[best]
        speed_err.append(c.speed_kmh(gsd_m) - t.speed_kmh)
        dh = abs((c.travel_bearing_deg % 180.0) - t.heading_deg)
        head_err.append(min(dh, 180.0 - dh))
        db = abs(c.travel_bearing_deg - t.travel_bearing_deg) % 360.0
        sense_ok += int(min(db, 360.0 - db) < 90.0)
    return MatchResult(
        found=tuple(j not in free for j in range(len(trucks))),
        tp=tp,
        fp=fp,
        fn=len(free),
        speed_errors_kmh=tuple(speed_err),
        heading_errors_deg=tuple(head_err),
        travel_sense_correct=sense_ok,
    )


def combine(results: list[MatchResult]) -> MatchResult:
    return MatchResult(
        tp=sum(r.tp for r in results),
        fp=sum(r.fp for r in results),
        fn=sum(r.fn for r in results),
        speed_errors_kmh=tuple(e for r in results for e in r.speed_errors_kmh),
        heading_errors_deg=tuple(e for r in results for e in r.heading_errors_deg),
        travel_sense_correct=sum(r.travel_sense_correct for r in results),
        found=tuple(f for r in results for f in r.found),
    )


def summarise(r: MatchResult) -> dict[str, Any]:
    se = np.abs(np.asarray(r.speed_errors_kmh)) if r.speed_errors_kmh else np.array([np.nan])
    he = np.asarray(r.heading_errors_deg) if r.heading_errors_deg else np.array([np.nan])
    return {
        "tp": r.tp,
        "fp": r.fp,
        "fn": r.fn,
        "precision": round(r.precision, 3),
        "recall": round(r.recall, 3),
        "f1": round(r.f1, 3),
        "speed_abs_err_kmh_median": round(float(np.median(se)), 1),
        "speed_bias_kmh": round(
            float(np.mean(r.speed_errors_kmh)) if r.speed_errors_kmh else float("nan"), 1
        ),
        "heading_err_deg_median": round(float(np.median(he)), 1),
        "travel_sense_correct": round(r.travel_sense_correct / r.tp, 3) if r.tp else None,
    }


def best_threshold(
    detector: TruckDetector, scenes: list[SimScene]
) -> tuple[float, dict[float, dict[str, Any]]]:
    """The threshold with the best F1 over ``scenes`` and the whole table.

    Thresholds: 0.30–0.95 in steps of 0.05, then 0.97, 0.98, 0.99.
    """
    probs = [(s, detector.probability(s.data)) for s in scenes]
    table: dict[float, dict[str, Any]] = {}
    for thr in (*np.round(np.arange(0.30, 0.96, 0.05), 2), 0.97, 0.98, 0.99):
        res = [match(candidates_from_probability(s.data, p, float(thr)), s.trucks, s.gsd_m) for s, p in probs]
        table[float(thr)] = summarise(combine(res))
    best = max(table, key=lambda t: table[t]["f1"])
    return best, table


# ----------------------------------------------------------------------------- YOLO comparison
#: YOLO sees RGB chips of CHIP_PX pixels upsampled ×YOLO_UPSAMPLE (objects are 1–3 px at 10 m).
CHIP_PX = 48
YOLO_UPSAMPLE = 4
YOLO_BANDS = ("B04", "B03", "B02")


def _truck_box_px(t: SimulatedTruck, gsd_m: float) -> tuple[float, float, float, float]:
    """Axis-aligned (row0, col0, row1, col1) around the rainbow: B02→B04 offset + 15 m long, 10 m wide."""
    from detect.trucks.sim import BAND_DELAY_S, bearing_to_pixel_vector

    half_len = (t.speed_kmh / 3.6 * (BAND_DELAY_S["B04"] - BAND_DELAY_S["B02"]) + 15.0) / gsd_m / 2.0
    d_row, d_col = bearing_to_pixel_vector(t.travel_bearing_deg)
    hr = abs(d_row) * half_len + abs(d_col) * 0.5
    hc = abs(d_col) * half_len + abs(d_row) * 0.5
    return t.row - hr, t.col - hc, t.row + hr, t.col + hc


def yolo_chip(data: np.ndarray) -> np.ndarray:
    """(4, h, w) reflectance in TRUCK_BANDS order → (h·k, w·k, 3) uint8 RGB, nearest-neighbour upsampled."""
    from detect.core.bands import default_normalisation, normalise

    rgb = np.stack([data[TRUCK_BANDS.index(b)] for b in YOLO_BANDS])
    img = normalise(rgb, default_normalisation(YOLO_BANDS))
    return np.repeat(np.repeat(img, YOLO_UPSAMPLE, axis=0), YOLO_UPSAMPLE, axis=1)


def write_yolo_set(
    scenes: list[SimScene], out_dir: str | Path, rng: np.random.Generator, per_scene: int
) -> Path:
    """Chips centred near random trucks (plus a share of random chips) as a YOLO detect dataset."""
    import cv2

    out_dir = Path(out_dir)
    (out_dir / "images" / "train").mkdir(parents=True, exist_ok=True)
    (out_dir / "labels" / "train").mkdir(parents=True, exist_ok=True)
    n = 0
    for si, sc in enumerate(scenes):
        h, w = sc.data.shape[1:]
        for i in range(per_scene):
            if i % 4 == 3:  # a quarter of the chips anywhere: land, water, city without trucks
                r0, c0 = int(rng.integers(0, h - CHIP_PX)), int(rng.integers(0, w - CHIP_PX))
            else:
                t = sc.trucks[int(rng.integers(len(sc.trucks)))]
                r0 = int(np.clip(round(t.row) - rng.integers(6, CHIP_PX - 6), 0, h - CHIP_PX))
                c0 = int(np.clip(round(t.col) - rng.integers(6, CHIP_PX - 6), 0, w - CHIP_PX))
            chip = sc.data[:, r0 : r0 + CHIP_PX, c0 : c0 + CHIP_PX]
            if not np.isfinite(chip).all():
                continue
            lines = []
            for t in sc.trucks:
                a, b, c, d = _truck_box_px(t, sc.gsd_m)
                a, b, c, d = a - r0 + 0.5, b - c0 + 0.5, c - r0 + 0.5, d - c0 + 0.5  # pixel edges
                if not (0 <= t.row - r0 < CHIP_PX and 0 <= t.col - c0 < CHIP_PX):
                    continue
                a, b, c, d = max(a, 0), max(b, 0), min(c, CHIP_PX), min(d, CHIP_PX)
                cy, cx, bh, bw = (
                    (a + c) / 2 / CHIP_PX,
                    (b + d) / 2 / CHIP_PX,
                    (c - a) / CHIP_PX,
                    (d - b) / CHIP_PX,
                )
                lines.append(f"0 {cx:.5f} {cy:.5f} {bw:.5f} {bh:.5f}")
            name = f"{sc.city}_{si}_{i}"
            cv2.imwrite(str(out_dir / "images" / "train" / f"{name}.png"), yolo_chip(chip)[:, :, ::-1])
            (out_dir / "labels" / "train" / f"{name}.txt").write_text(
                "\n".join(lines) + ("\n" if lines else "")
            )
            n += 1
    data_yaml = out_dir / "data.yaml"
    data_yaml.write_text(
        f"path: {out_dir.resolve()}\ntrain: images/train\nval: images/train\nnames:\n  0: truck\n"
    )
    log.info("wrote %d YOLO chips to %s", n, out_dir)
    return data_yaml


def yolo_candidates(model: Any, data: np.ndarray, conf: float) -> list[TruckCandidate]:
    """Tile a scene into CHIP_PX chips, run YOLO (via detect.ships.model), and fit each box's signature."""
    from scipy import ndimage

    from detect.trucks.detector import fit_signature

    x = np.where(np.isfinite(data), data, 0.0).astype(np.float32)
    an02 = x[0] - ndimage.median_filter(x[0], size=7)
    an04 = x[2] - ndimage.median_filter(x[2], size=7)
    h, w = x.shape[1:]
    step = CHIP_PX - 8  # 8 px overlap; duplicates removed below
    origins = [
        (r, c)
        for r in range(0, max(h - CHIP_PX, 0) + 1, step)
        for c in range(0, max(w - CHIP_PX, 0) + 1, step)
    ]
    found: list[tuple[float, float, float]] = []
    for i in range(0, len(origins), 32):
        batch = origins[i : i + 32]
        # BGR, as training read its PNG chips back with cv2 (see detect.ships.model.YoloModel.predict)
        chips = np.stack([yolo_chip(x[:, r : r + CHIP_PX, c : c + CHIP_PX])[:, :, ::-1] for r, c in batch])
        for (r0, c0), rows in zip(batch, model.predict(chips, conf=conf, iou=0.3), strict=True):
            for cx, cy, _bw, _bh, _th, score, _cls in rows:
                found.append((r0 + cy / YOLO_UPSAMPLE - 0.5, c0 + cx / YOLO_UPSAMPLE - 0.5, float(score)))
    found.sort(key=lambda f: -f[2])
    kept: list[tuple[float, float, float]] = []
    for f in found:
        if all(max(abs(f[0] - k[0]), abs(f[1] - k[1])) >= 2.5 for k in kept):
            kept.append(f)
    out = []
    for r, c, score in kept:
        fr, fc, d_row, d_col = fit_signature(an02, an04, r, c)
        out.append(TruckCandidate(row=fr, col=fc, score=score, d_row=d_row, d_col=d_col))
    return out


def yolo_experiment(
    data_root: str | Path,
    out_dir: str | Path,
    *,
    cache_dir: str | Path,
    seed: int = 0,
    rounds: int = 2,
    n_trucks: int = 400,
    epochs: int = 8,
    chips_per_scene: int = 60,
) -> Path:
    """Train YOLO (yolov8n, from scratch) on ×4 RGB chips of the same simulated training cities; returns
    the written weights."""
    from detect.core.bands import default_normalisation
    from detect.core.weights import ModelSpec
    from detect.ships.model import TrainConfig, train_yolo, write_model

    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    scenes = []
    for ci, city in enumerate(TRAIN_CITIES):
        data, gsd = load_city(data_root, city, cache_dir)
        for k in range(rounds):
            scenes.append(simulate_scene(data, city, seed + 1000 * ci + k, n_trucks, gsd))
    data_yaml = write_yolo_set(scenes, out / "data", rng, chips_per_scene)
    cfg = TrainConfig(arch="yolov8n.yaml", epochs=epochs, imgsz=CHIP_PX * YOLO_UPSAMPLE, batch=16)
    pt = train_yolo(data_yaml, out / "train", cfg)
    spec = ModelSpec(
        name="trucks-s2-yolo",
        task="detect",
        bands=YOLO_BANDS,
        imgsz=CHIP_PX * YOLO_UPSAMPLE,
        gsd_m=10.0 / YOLO_UPSAMPLE,
        normalisation=default_normalisation(YOLO_BANDS),
        class_names=("truck",),
    )
    target, _ = write_model(pt, spec, out)
    log.info("YOLO comparison model: %s", target)
    return target


def train_truck_model(
    data_root: str | Path,
    out_dir: str | Path,
    *,
    cache_dir: str | Path,
    seed: int = 0,
    rounds: int = 2,
    n_trucks: int = 400,
    num_rounds: int = 300,
    haze: float = 0.0,
) -> Path:
    """Fit the truck classifier on simulated trucks in TRAIN_CITIES (a share ``haze`` of the copies under
    a random atmosphere), choose its threshold on VAL_CITIES
    and write ``<MODEL_NAME>.lgbm.txt`` and its spec into ``out_dir``; returns the spec's path.
    ``harborwatch train trucks`` (and ``python -m detect.trucks.train``) calls this."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)

    x, y = build_set(
        data_root,
        TRAIN_CITIES,
        seed=seed,
        rounds=rounds,
        n_trucks=n_trucks,
        n_random=20000,
        n_road=20000,
        cache_dir=cache_dir,
        haze=haze,
    )
    log.info("training on %d samples, %d positives", len(y), int(y.sum()))
    booster = fit(x, y, seed=seed, num_rounds=num_rounds)
    training = {
        "train_cities": list(TRAIN_CITIES),
        "val_cities": list(VAL_CITIES),
        "heldout_cities": list(HELDOUT_CITIES),
        "seed": seed,
        "rounds": rounds,
        "trucks_per_round": n_trucks,
        "samples": len(y),
        "positives": int(y.sum()),
        "boosting_rounds": num_rounds,
        "haze": haze,
    }
    reference = dark_reference(data_root, TRAIN_CITIES, cache_dir)
    spec_path = save_model(
        booster, out_dir, {"threshold": 0.5, "training": training, "dark_reference": reference}
    )
    detector = TruckDetector.load(spec_path)
    val = []
    for c in VAL_CITIES:
        data, gsd = load_city(data_root, c, cache_dir)
        val.append(simulate_scene(data, c, seed + 7, n_trucks, gsd))
    thr, table = best_threshold(detector, val)
    log.info("validation threshold %.2f: %s", thr, table[thr])
    return save_model(
        booster,
        out_dir,
        {
            "threshold": thr,
            "training": training,
            "dark_reference": reference,
            "metrics": {"validation": {"cities": list(VAL_CITIES), **table[thr]}},
        },
    )


if __name__ == "__main__":  # the one definition of the options is the CLI's `harborwatch train trucks`
    from detect.cli import main

    main(["train", "trucks", *sys.argv[1:]])
