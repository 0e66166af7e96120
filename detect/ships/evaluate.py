"""Scoring a detector against COCO-labelled scenes: matching, P/R/F1, AP50, count and length errors.

Truth boxes are mapped from each labelled image's own pixel grid (e.g. EPSG:3857) through lon/lat
into the scene's UTM metres, so detections on the UTM 10 m grid and labels on any grid compare
on the ground.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from shapely.geometry import Polygon

from detect.core.geometry import Detection, mask_corner_points
from detect.core.rle import decode_rle
from imagery.aoi import to_crs, utm_crs_for
from imagery.errors import InputError, MissingBandsError, RasterReadError
from imagery.read import BAND_FILE_RE
from imagery.types import RasterWindow

log = logging.getLogger(__name__)

#: Matching rule: a prediction matches a truth if polygon IoU >= MATCH_IOU or centres <= MATCH_DIST_M apart.
MATCH_IOU = 0.1
MATCH_DIST_M = 30.0
#: Detections kept for AP; P/R/F1 and counts use the detector's own operating threshold.
AP_CONF = 0.01


@dataclass(frozen=True)
class Truth:
    """One labelled object, on the ground: its box polygon (EPSG:4326), centre and length."""

    scene: str
    ann_id: int
    polygon: Polygon  # the labelled box, EPSG:4326
    lon: float
    lat: float
    length_m: float
    length_source: str  # "mask" (minAreaRect of the instance mask) or "box" (longer box side)


# ---------------------------------------------------------------------------------------------- COCO


def _ground_length(corners_px: np.ndarray, transform, to_utm: Transformer) -> float:
    """Longer side of a 4-corner pixel rectangle, in ground metres."""
    xs, ys = transform @ (corners_px[:, 0], corners_px[:, 1])
    ex, ny = to_utm.transform(np.asarray(xs), np.asarray(ys))
    pts = np.stack([ex, ny], 1)
    return float(max(np.hypot(*(pts[1] - pts[0])), np.hypot(*(pts[2] - pts[1]))))


def scene_key(file_name: str) -> str:
    """Scene of a COCO image: the folder of a band file (``genoa/genoa_B04.tif`` → ``genoa``),
    else the file stem (``honolulu_chip.tif`` → ``honolulu_chip``)."""
    p = Path(file_name)
    if BAND_FILE_RE.search(p.name) and p.parent.name:
        return p.parent.name
    return p.stem


def scene_source(images_dir: str | Path, file_name: str) -> Path:
    """The path ``open_raster`` reads for a COCO image: its scene folder or the GeoTIFF itself."""
    p = Path(images_dir) / file_name
    if BAND_FILE_RE.search(p.name) and p.parent != Path(images_dir):
        return p.parent
    return p


def load_coco_truth(
    annotations_path: str | Path, images_dir: str | Path, cities: Iterable[str] | None = None
) -> dict[str, list[Truth]]:
    """Labelled objects per scene key, on the ground (see ``Truth``). Scenes with no labels map to []."""
    annotations_path = Path(annotations_path)
    try:
        coco = json.loads(annotations_path.read_text())
        images = coco["images"]
        anns = coco.get("annotations", [])
    except FileNotFoundError:
        raise InputError(f"no such annotations file: {annotations_path}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{annotations_path} is not a COCO annotations file ({e})") from None
    wanted = set(cities) if cities is not None else None
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    out: dict[str, list[Truth]] = {}
    for im in images:
        key = scene_key(im["file_name"])
        if wanted is not None and key not in wanted and im.get("city") not in wanted:
            continue
        path = Path(images_dir) / im["file_name"]
        try:
            with rasterio.open(path) as src:
                transform, crs = src.transform, src.crs.to_string()
                bounds = src.bounds
        except rasterio.errors.RasterioIOError as e:
            raise RasterReadError(f"cannot read labelled image {path}: {str(e).splitlines()[0]}") from None
        to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        clon, clat = to_ll.transform((bounds.left + bounds.right) / 2, (bounds.bottom + bounds.top) / 2)
        to_utm = Transformer.from_crs(crs, utm_crs_for(clon, clat), always_xy=True)
        truths = []
        for a in by_image.get(im["id"], []):
            x, y, w, h = (float(v) for v in a["bbox"])
            box_px = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
            mx, my = transform @ (box_px[:, 0], box_px[:, 1])
            lon, lat = to_ll.transform(np.asarray(mx), np.asarray(my))
            poly = Polygon(np.stack([lon, lat], 1))
            seg = a.get("segmentation")
            mask = decode_rle(seg) if isinstance(seg, dict) and "counts" in seg else None
            if mask is not None and mask.any():
                rect = cv2.boxPoints(cv2.minAreaRect(mask_corner_points(mask).astype(np.float32)))
                length, source = _ground_length(rect, transform, to_utm), "mask"
            else:
                length, source = _ground_length(box_px, transform, to_utm), "box"
            cx, cy = transform @ (x + w / 2, y + h / 2)
            c_lon, c_lat = to_ll.transform(cx, cy)
            truths.append(Truth(key, int(a["id"]), poly, float(c_lon), float(c_lat), length, source))
        out.setdefault(key, []).extend(truths)
    return out


# ----------------------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class SceneResult:
    """Scores of one scene at the operating threshold, plus AP50 over all ranked detections."""

    scene: str
    n_truth: int
    n_pred: int
    tp: int
    precision: float
    recall: float
    f1: float
    ap50: float
    count_error: int  # predictions − truths
    length_mae_m: float | None  # over matched pairs
    skipped: str = ""  # why the scene was not scored (e.g. missing bands)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


@dataclass(frozen=True)
class EvaluationReport:
    """Per-scene rows and the pooled overall row (P/R/F1/AP50 pooled over all objects)."""

    detector: str
    scenes: tuple[SceneResult, ...]
    overall: SceneResult
    count_mae: float  # mean |count error| over scored scenes
    conf: float
    match: dict[str, float] = field(default_factory=lambda: {"iou": MATCH_IOU, "centre_m": MATCH_DIST_M})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; undefined values (AP of a scene without ships) become None."""
        return _json_safe(
            {
                "detector": self.detector,
                "conf": self.conf,
                "match": dict(self.match),
                "scenes": [asdict(s) for s in self.scenes],
                "overall": asdict(self.overall),
                "count_mae": self.count_mae,
            }
        )

    def table(self) -> str:
        head = (
            f"{'scene':<16}{'truth':>6}{'pred':>6}{'TP':>5}{'P':>7}{'R':>7}{'F1':>7}{'AP50':>7}"
            f"{'cnt':>6}{'lenMAE':>8}"
        )
        lines = [
            f"detector {self.detector}, conf {self.conf:g}, match IoU>={self.match['iou']:g} "
            f"or centre<={self.match['centre_m']:g} m",
            head,
        ]
        for s in (*self.scenes, self.overall):
            if s.skipped:
                lines.append(f"{s.scene:<16}skipped: {s.skipped}")
                continue
            mae = f"{s.length_mae_m:.1f}" if s.length_mae_m is not None else "-"
            lines.append(
                f"{s.scene:<16}{s.n_truth:>6}{s.n_pred:>6}{s.tp:>5}{s.precision:>7.3f}{s.recall:>7.3f}"
                f"{s.f1:>7.3f}{s.ap50:>7.3f}{s.count_error:>+6d}{mae:>8}"
            )
        lines.append(f"count MAE per scene: {self.count_mae:.2f}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Matched:
    """Matching outcome of one scene: per prediction (score order) its truth index or -1."""

    scores: np.ndarray
    match: np.ndarray
    pred_len: np.ndarray
    ap_hit: np.ndarray  # per prediction: true positive at IoU 0.5 on axis-aligned boxes
    n_truth: int


def _utm_polys(geoms: Sequence[Polygon], crs: str) -> np.ndarray:
    return np.array([to_crs(g, crs) for g in geoms], dtype=object)


def _aabb_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of axis-aligned boxes (minx, miny, maxx, maxy)."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _greedy(order_scores: np.ndarray, ok: np.ndarray, pref: np.ndarray) -> np.ndarray:
    """Greedy one-to-one matching in score order: each prediction takes the free eligible truth
    with the highest preference."""
    match = np.full(ok.shape[0], -1, np.int64)
    free = np.ones(ok.shape[1], bool)
    for i in np.argsort(-order_scores, kind="stable"):
        cand = np.flatnonzero(ok[i] & free)
        if cand.size:
            j = cand[np.argmax(pref[i, cand])]
            match[i] = j
            free[j] = False
    return match


def match_scene(preds: Sequence[Detection], truths: Sequence[Truth]) -> _Matched:
    """Match predictions to truths in the scene's UTM metres (see MATCH_IOU, MATCH_DIST_M)."""
    scores = np.array([d.score for d in preds], np.float64)
    pred_len = np.array([d.length_m for d in preds], np.float64)
    n_p, n_t = len(preds), len(truths)
    if n_p == 0 or n_t == 0:
        return _Matched(scores, np.full(n_p, -1, np.int64), pred_len, np.zeros(n_p, bool), n_t)
    lon = np.mean([t.lon for t in truths] + [d.lon for d in preds])
    lat = np.mean([t.lat for t in truths] + [d.lat for d in preds])
    crs = utm_crs_for(float(lon), float(lat))
    pp = _utm_polys([d.polygon for d in preds], crs)
    tp_ = _utm_polys([t.polygon for t in truths], crs)
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    pc = np.stack(tr.transform([d.lon for d in preds], [d.lat for d in preds]), 1)
    tc = np.stack(tr.transform([t.lon for t in truths], [t.lat for t in truths]), 1)
    dist = np.hypot(pc[:, None, 0] - tc[None, :, 0], pc[:, None, 1] - tc[None, :, 1])
    a, b = np.meshgrid(np.arange(n_p), np.arange(n_t), indexing="ij")
    inter = shapely.area(shapely.intersection(pp[a], tp_[b]))
    union = shapely.area(pp)[a] + shapely.area(tp_)[b] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
    ok = (iou >= MATCH_IOU) | (dist <= MATCH_DIST_M)
    # Prefer overlap, then closeness (a scaled distance keeps IoU the primary key).
    match = _greedy(scores, ok, iou - dist * 1e-6)
    aabb_iou = _aabb_iou(shapely.bounds(pp), shapely.bounds(tp_))
    ap_match = _greedy(scores, aabb_iou >= 0.5, aabb_iou)
    return _Matched(scores, match, pred_len, ap_match >= 0, n_t)


def average_precision(scores: np.ndarray, hits: np.ndarray, n_truth: int) -> float:
    """All-point interpolated AP (area under the precision envelope over recall)."""
    if n_truth == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = tp / n_truth
    precision = tp / np.maximum(tp + fp, 1)
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.sum((r[1:] - r[:-1]) * p[1:]))


def _prf(tp: int, n_pred: int, n_truth: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else (1.0 if n_truth == 0 else 0.0)
    r = tp / n_truth if n_truth else 1.0
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f1


def score_scene(
    scene: str,
    preds: Sequence[Detection],
    truths: Sequence[Truth],
    conf: float,
) -> tuple[SceneResult, _Matched, list[float]]:
    """Score one scene; also returns the matching (for pooling) and the length errors (m)."""
    m = match_scene(preds, truths)
    # Matched again at the operating threshold so low-score predictions cannot take truths away.
    op_preds = [d for d in preds if d.score >= conf]
    m_op = match_scene(op_preds, truths)
    tp = int((m_op.match >= 0).sum())
    errs = [abs(m_op.pred_len[i] - truths[j].length_m) for i, j in enumerate(m_op.match) if j >= 0]
    n_pred = len(op_preds)
    p, r, f1 = _prf(tp, n_pred, len(truths))
    result = SceneResult(
        scene=scene,
        n_truth=len(truths),
        n_pred=n_pred,
        tp=tp,
        precision=p,
        recall=r,
        f1=f1,
        ap50=average_precision(m.scores, m.ap_hit, len(truths)),
        count_error=n_pred - len(truths),
        length_mae_m=float(np.mean(errs)) if errs else None,
    )
    return result, m, errs


def summarise(
    detector: str,
    per_scene: dict[str, tuple[list[Detection], list[Truth]]],
    conf: float,
    skipped: dict[str, str] | None = None,
) -> EvaluationReport:
    """Build the report from detections (scored at >= AP_CONF) and truths per scene."""
    rows, all_scores, all_hits, all_errs = [], [], [], []
    n_truth = n_pred = tp = 0
    for scene in sorted(per_scene):
        preds, truths = per_scene[scene]
        row, m, errs = score_scene(scene, preds, truths, conf)
        rows.append(row)
        all_scores.append(m.scores)
        all_hits.append(m.ap_hit)
        all_errs.extend(errs)
        n_truth += row.n_truth
        n_pred += row.n_pred
        tp += row.tp
    for scene, why in sorted((skipped or {}).items()):
        rows.append(SceneResult(scene, 0, 0, 0, math.nan, math.nan, math.nan, math.nan, 0, None, skipped=why))
    p, r, f1 = _prf(tp, n_pred, n_truth)
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    hits = np.concatenate(all_hits) if all_hits else np.zeros(0, bool)
    scored = [s for s in rows if not s.skipped]
    overall = SceneResult(
        scene="overall",
        n_truth=n_truth,
        n_pred=n_pred,
        tp=tp,
        precision=p,
        recall=r,
        f1=f1,
        ap50=average_precision(scores, hits, n_truth),
        count_error=n_pred - n_truth,
        length_mae_m=float(np.mean(all_errs)) if all_errs else None,
    )
    count_mae = float(np.mean([abs(s.count_error) for s in scored])) if scored else math.nan
    return EvaluationReport(detector, tuple(rows), overall, count_mae, conf)


def evaluate(
    detector: Any,
    images_dir: str | Path,
    annotations_path: str | Path,
    cities: Iterable[str] | None = None,
    *,
    conf: float | None = None,
    scale: float | None = None,
    progress: Any = None,
) -> EvaluationReport:
    """Run ``detector`` (a ``detect.detectors.Detector``) on every labelled scene and score it.

    ``conf`` is the operating threshold for P/R/F1/counts (default: the detector's ``conf``);
    AP50 uses every detection down to ``AP_CONF``. Scenes lacking bands the detector needs are
    reported as skipped. ``scale``: reflectance per stored value for every band (sen2ships:
    1/65535; its dark scenes defeat the per-file guess). ``progress``: callable taking a message.
    """
    cities = list(cities) if cities is not None else None
    truth = load_coco_truth(annotations_path, images_dir, cities)
    coco = json.loads(Path(annotations_path).read_text())
    sources = {scene_key(im["file_name"]): scene_source(images_dir, im["file_name"]) for im in coco["images"]}
    if cities is not None:
        known = {im.get("city") or scene_key(im["file_name"]) for im in coco["images"]} | set(sources)
        unknown = sorted(set(cities) - known)
        if unknown:
            raise InputError(
                f"no labelled scene for {', '.join(unknown)}; scenes: {', '.join(sorted(sources))}"
            )
    if not any(truth.values()):  # nothing to find: every score would be a vacuous 1.0
        among = f" among {', '.join(cities)}" if cities else ""
        raise InputError(
            f"no labelled images found in {annotations_path}{among}: {len(truth)} image(s), "
            "none with an annotation; nothing to score"
        )
    op_conf = float(conf if conf is not None else getattr(detector, "conf", 0.25))
    per_scene: dict[str, tuple[list[Detection], list[Truth]]] = {}
    skipped: dict[str, str] = {}
    for key in sorted(truth):
        src = sources[key]
        try:
            window = read_for_detector(src, detector, scale)
        except MissingBandsError as e:
            skipped[key] = str(e)
            continue
        dets = detector.detect(window, conf=min(AP_CONF, op_conf))
        per_scene[key] = (dets, truth[key])
        if progress:
            progress(f"{key}: {sum(d.score >= op_conf for d in dets)} detections, {len(truth[key])} labelled")
    return summarise(getattr(detector, "name", type(detector).__name__), per_scene, op_conf, skipped)


def read_for_detector(path: Path, detector: Any, scale: float | None = None) -> RasterWindow:
    """Read the bands a detector needs (plus B03/B08 for the water mask when present); ``scale``
    (reflectance per stored unit) overrides the file's or the guessed one."""
    from detect.core.inputs import read_window
    from detect.core.water import WATER_BANDS

    required = tuple(getattr(detector, "required_bands", ()))
    return read_window(path, required=required, optional=WATER_BANDS, scale=scale)
