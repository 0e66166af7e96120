"""The Sentinel-1 ship detector: CFAR over the test area, vessel clustering, rejection of azimuth
ghosts and fixed structures, ``Detection`` records (``SarShipDetector``: ship / cfar). See docs/sar.md."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pyproj import Transformer

from detect.core.geometry import Detection, detection_from_pixel_box
from detect.sar.cfar import CfarResult, cfar, masked_mean
from detect.sar.land import sar_land_mask, test_area
from detect.sar.params import AmbiguityParams, SarShipParams
from imagery.errors import InputError, MissingBandsError
from imagery.sar import from_db, sar_quantity
from imagery.types import Grid, RasterWindow


@dataclass(frozen=True, eq=False)
class SarDetectionResult:
    """Vessels found, candidates rejected (with ``rejected`` property saying why), masks used."""

    detections: list[Detection]
    rejected: list[Detection]
    cfar: CfarResult
    water: np.ndarray
    land_mask_source: str

    @property
    def area_tested_km2(self) -> float:
        """Water area actually tested (away from shore, with enough clutter around)."""
        return self.cfar.n_tested * self.cfar.res_m**2 / 1e6


def _linear_band(window: RasterWindow, pol: str) -> tuple[np.ndarray, str]:
    quantity, units = sar_quantity(window)
    if pol not in window.band_names:
        raise MissingBandsError(
            [pol], f"{window.scene_id or 'SAR window'} (bands: {', '.join(window.band_names)})"
        )
    x = window.band(pol).astype(np.float64)
    if units == "dB":
        x = from_db(x).astype(np.float64)
    return np.where(np.isfinite(x) & (x > 0), x, np.nan), quantity


def _fixed_pixels(points: Sequence[tuple[float, float]], grid: Grid) -> np.ndarray:
    """(col, row) float pixel positions of lon/lat points on ``grid``."""
    if not len(points):
        return np.zeros((0, 2))
    lon, lat = np.asarray(points, dtype=float).T
    x, y = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True).transform(lon, lat)
    col, row = ~grid.transform @ (np.asarray(x), np.asarray(y))
    return np.stack([col, row], axis=1)


def _ambiguity_check(
    cx: float, cy: float, peak: float, y_all: np.ndarray, res_m: float, bearing_deg: float, a: AmbiguityParams
) -> tuple[bool, float, float]:
    """(is ghost, brightest source found / peak in dB, share of the search strip inside the grid)."""
    lo, hi = a.displacement_m()
    along = np.arange(lo - a.along_tol_m, hi + a.along_tol_m + res_m, res_m)
    across = np.arange(-a.across_tol_m, a.across_tol_m + res_m, res_m)
    aa, cc = np.meshgrid(np.concatenate([along, -along]), across)
    b = math.radians(bearing_deg)
    # metres east / north → pixel col / row on a north-up grid
    east = aa * math.sin(b) + cc * math.cos(b)
    north = aa * math.cos(b) - cc * math.sin(b)
    cols = np.floor(cx + east / res_m).astype(int)
    rows = np.floor(cy - north / res_m).astype(int)
    h, w = y_all.shape
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    coverage = float(inside.mean())
    if not inside.any():
        return False, float("nan"), 0.0
    vals = y_all[rows[inside], cols[inside]]
    if not np.isfinite(vals).any():
        return False, float("nan"), coverage
    src = float(np.nanmax(vals))
    ratio_db = 10 * math.log10(src / peak) if src > 0 and peak > 0 else float("nan")
    return bool(ratio_db >= a.min_ratio_db), ratio_db, coverage


def detect_ships_sar(
    window: RasterWindow,
    params: SarShipParams | None = None,
    *,
    water: np.ndarray | Any | None = None,
    fixed_points: Sequence[tuple[float, float]] = (),
    fixed_mask: np.ndarray | None = None,
    azimuth_bearing_deg: float | None = None,
) -> SarDetectionResult:
    """Find vessels in a SAR window (``imagery.sar.read_s1``): Detections of class ``ship``, ``sensor="S1"``.

    ``water``: bool array on the grid (True = water) or a ``detect.core.water.WaterMask`` (its core is used);
    without it a SAR land mask is made (``sar_land_mask``). ``fixed_points``: (lon, lat) of known
    structures; ``fixed_mask``: bool array of structure pixels. ``azimuth_bearing_deg`` (direction of
    increasing azimuth, default from the window's meta) enables azimuth-ambiguity rejection.
    """
    p = params or SarShipParams()
    grid = window.grid
    res = grid.res_m
    x, quantity = _linear_band(window, p.polarisation)
    valid = np.isfinite(x) & window.valid_mask
    if water is None:
        water_mask = ~sar_land_mask(x, res, quantity, p, p.polarisation) & valid
        source = "sar"
    else:
        arr = getattr(water, "core", None)
        arr = arr if arr is not None else getattr(water, "mask", water)
        water_mask = np.asarray(arr, bool)
        if water_mask.shape != grid.shape:
            raise InputError(f"water mask shape {water_mask.shape} does not match the grid {grid.shape}")
        source = "given"
    area = test_area(water_mask, valid, res, p.shore_buffer_m)
    res_cfar = cfar(x, area, res, p.cfar)
    t = res_cfar.windows_px[0]
    y_all = masked_mean(np.nan_to_num(x), valid, t) if t > 1 else np.where(valid, x, np.nan)
    bearing = (
        azimuth_bearing_deg if azimuth_bearing_deg is not None else window.meta.get("azimuth_bearing_deg")
    )
    fixed_px = _fixed_pixels(fixed_points, grid)

    # Hits closer than the target window are one vessel: single-pixel hits (auto's K test in heavy-tailed
    # clutter) are scattered along a hull, not a blob like the target-window mean's.
    hits = res_cfar.hits.astype(np.uint8)
    grouped = cv2.dilate(hits, np.ones((t, t), np.uint8)) if t > 1 else hits
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
    labels = np.where(res_cfar.hits, labels, 0)
    kept: list[Detection] = []
    rejected: list[Detection] = []
    half = t // 2 + 1
    h, w = x.shape
    for i in range(1, n):
        c0, r0 = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_TOP]
        c1, r1 = c0 + stats[i, cv2.CC_STAT_WIDTH], r0 + stats[i, cv2.CC_STAT_HEIGHT]
        rs, cs = slice(max(0, r0 - half), min(h, r1 + half)), slice(max(0, c0 - half), min(w, c1 + half))
        comp = labels[rs, cs] == i
        near = cv2.dilate(comp.astype(np.uint8), np.ones((t, t), np.uint8)).astype(bool)
        pix_thr = res_cfar.pixel_threshold[rs, cs]
        pix_fill = float(np.nanmin(np.where(comp, pix_thr, np.nan)))
        # Vessel pixels: single pixels above their own threshold near the hit (the target-window mean
        # blurs the extent by the target window).
        ship = near & (np.nan_to_num(x[rs, cs]) > np.where(np.isfinite(pix_thr), pix_thr, pix_fill))
        peak = np.unravel_index(np.nanargmax(np.where(comp, x[rs, cs], -np.inf)), comp.shape)
        ship[peak] = True
        # Lone clutter pixels beside the hull would skew the box: keep pieces of 2+ pixels and the peak's.
        _, parts, sizes, _ = cv2.connectedComponentsWithStats(ship.astype(np.uint8), connectivity=8)
        keep = sizes[:, cv2.CC_STAT_AREA] >= 2
        keep[0], keep[parts[peak]] = False, True
        ship = keep[parts]
        rr, cc = np.nonzero(ship)
        if rr.size < p.min_pixels:
            continue
        rr = rr + rs.start
        cc = cc + cs.start
        corners = np.concatenate([np.stack([cc + dc, rr + dr], 1) for dr in (0, 1) for dc in (0, 1)]).astype(
            np.float32
        )
        box = cv2.boxPoints(cv2.minAreaRect(corners))
        y_comp = np.where(labels[rs, cs] == i, res_cfar.statistic[rs, cs], -np.inf)
        k = int(np.argmax(y_comp))
        pr, pc = np.unravel_index(k, y_comp.shape)
        peak_y = float(y_comp.flat[k])
        thr_at = float(res_cfar.threshold[rs, cs][pr, pc])
        clutter = float(res_cfar.clutter_mean[rs, cs][pr, pc])
        margin_db = 10 * math.log10(peak_y / thr_at) if thr_at > 0 else 0.0
        peak_x = float(np.max(x[rr, cc]))
        props: dict[str, Any] = {
            "polarisation": p.polarisation,
            "n_pixels": int(rr.size),
            "peak_scr_db": round(10 * math.log10(peak_x / clutter), 2) if clutter > 0 else None,
            "scr_db": round(10 * math.log10(float(np.mean(x[rr, cc])) / clutter), 2) if clutter > 0 else None,
            "cfar_margin_db": round(margin_db, 2),
            "clutter_db": round(10 * math.log10(clutter), 2) if clutter > 0 and quantity != "dn2" else None,
            "peak_db": round(10 * math.log10(peak_x), 2) if quantity != "dn2" else None,
            "quantity": quantity,
            "land_mask": source,
        }
        det = detection_from_pixel_box(
            grid,
            box,
            "ship",
            score=min(1.0, max(0.0, 0.5 + margin_db / 20.0)),
            scene=window.scene_id,
            acquired=window.acquired,
            sensor="S1",
            detector="cfar",
            properties=props,
        )
        cx, cy = float(cc.mean() + 0.5), float(rr.mean() + 0.5)
        reason = None
        if det.length_m > p.max_length_m:
            reason = "too_large"
        elif (fixed_mask is not None and fixed_mask[int(cy), int(cx)]) or (
            len(fixed_px)
            and np.min(np.hypot(fixed_px[:, 0] - cx, fixed_px[:, 1] - cy)) * res <= p.fixed_radius_m
        ):
            reason = "fixed_structure"
        elif p.ambiguity is not None and bearing is not None:
            # Source and ghost compared in one statistic (auto may have tested single pixels here).
            peak_mean = float(np.max(np.where(labels[rs, cs] == i, y_all[rs, cs], -np.inf)))
            ghost, ratio_db, cover = _ambiguity_check(
                cx, cy, peak_mean, y_all, res, float(bearing), p.ambiguity
            )
            det = det.with_properties(ambiguity_search_coverage=round(cover, 2))
            if ghost:
                reason = "azimuth_ambiguity"
                det = det.with_properties(ambiguity_source_ratio_db=round(ratio_db, 1))
        if reason:
            rejected.append(det.with_properties(rejected=reason))
        else:
            kept.append(det)
    return SarDetectionResult(
        detections=kept, rejected=rejected, cfar=res_cfar, water=water_mask, land_mask_source=source
    )


class SarShipDetector:
    """The ``Detector`` protocol over ``detect_ships_sar`` (registered as ship / cfar)."""

    name = "cfar"
    classes = ("ship",)

    def __init__(self, params: SarShipParams | None = None, **kw: Any) -> None:
        self.params = params or SarShipParams(**kw)
        self.required_bands = (self.params.polarisation,)

    def detect(self, window: RasterWindow, *, conf: float | None = None, **kw: Any) -> list[Detection]:
        found = detect_ships_sar(window, self.params, **kw).detections
        return [d for d in found if conf is None or d.score >= conf]


def detection_pixels(detections: Sequence[Detection], grid: Grid) -> np.ndarray:
    """(col, row) float pixel positions of detection centres on ``grid``."""
    return _fixed_pixels([(d.lon, d.lat) for d in detections], grid)
