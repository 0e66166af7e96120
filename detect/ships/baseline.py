"""Classical ship detector: NIR brightness over water against a local background (CFAR-like).

For each water pixel, the background is the mean and standard deviation of water pixels in a
square annulus (outside a guard square that holds the ship itself), computed with box filters so
the cost does not depend on the window sizes. Pixels brighter than ``mean + k·σ`` (and by at
least ``min_contrast`` reflectance) form connected components; those of ship size become oriented
boxes (``cv2.minAreaRect``). It needs only B08 (plus B03 for the water mask), so it also serves
scenes the YOLO model cannot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from detect.core.geometry import Detection
from detect.core.registry import boxes_to_detections
from detect.core.water import water_mask
from imagery.types import RasterWindow


@dataclass(frozen=True)
class BaselineParams:
    """CFAR parameters, in ground units so they hold at any grid resolution.

    ``guard_m``: half-size of the guard square around a pixel, excluded from the background (must
    exceed half the longest ship). ``background_m``: half-size of the outer square. ``k``: threshold
    in background standard deviations. ``min_contrast``: minimum brightness above the background,
    reflectance. ``sigma_floor``: lower bound on σ (calm water has almost none). ``min_px`` /
    ``max_length_m`` / ``min_length_m``: component size filter. ``min_background_frac``: share of
    the annulus that must be water for the statistics to count. ``reach_m``: how far from open
    water (the undilated mask) a candidate pixel may lie; small, so quays and roofs stay out.
    ``grow_frac``: hysteresis; pixels above ``grow_frac`` × both thresholds join a component that
    holds a pixel above the full thresholds, so a ship's dimmer bow and stern count in its length.
    """

    band: str = "B08"
    guard_m: float = 250.0
    background_m: float = 450.0
    k: float = 8.0
    min_contrast: float = 0.06
    sigma_floor: float = 0.004
    min_px: int = 6
    min_length_m: float = 40.0
    max_length_m: float = 400.0
    min_background_frac: float = 0.2
    reach_m: float = 30.0
    grow_frac: float = 0.7


def _box_sum(x: np.ndarray, half: int) -> np.ndarray:
    size = 2 * half + 1
    return cv2.boxFilter(x, cv2.CV_64F, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)


def cfar_contrast(
    nir: np.ndarray, water: np.ndarray, guard_px: int, outer_px: int, sigma_floor: float, min_frac: float
) -> tuple[np.ndarray, np.ndarray]:
    """(z, excess): standardised brightness ``(x − μ) / σ`` and ``x − μ`` against the water annulus.

    Pixels whose annulus holds too little water get z = 0.
    """
    x = np.where(water, np.nan_to_num(nir, nan=0.0), 0.0).astype(np.float64)
    w = water.astype(np.float64)
    sums = []
    for arr in (w, x, x * x):
        sums.append(_box_sum(arr, outer_px) - _box_sum(arr, guard_px))
    n, s1, s2 = sums
    ring = (2 * outer_px + 1) ** 2 - (2 * guard_px + 1) ** 2
    ok = n >= max(1.0, min_frac * ring)
    nn = np.maximum(n, 1.0)
    mu = s1 / nn
    sigma = np.sqrt(np.maximum(s2 / nn - mu * mu, 0.0))
    sigma = np.maximum(sigma, sigma_floor)
    excess = np.nan_to_num(nir, nan=0.0) - mu
    z = np.where(ok, excess / sigma, 0.0)
    return z.astype(np.float32), np.where(ok, excess, 0.0).astype(np.float32)


def _grow(mask: np.ndarray, radius_px: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1, 2 * radius_px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def _bright(nir: np.ndarray, water: np.ndarray) -> np.ndarray:
    """Pixels of the water mask far brighter than its median (the ships filled into it), kept out
    of the background statistics."""
    vals = nir[water]
    if vals.size == 0:
        return np.zeros(nir.shape, bool)
    med = float(np.nanmedian(vals))
    mad = float(np.nanmedian(np.abs(vals - med))) + 1e-6
    return np.nan_to_num(nir, nan=0.0) > med + 10.0 * mad


class BaselineDetector:
    """CFAR ship detector implementing ``detect.detectors.Detector``.

    Score: ``1 − exp(−(z̄ − k) / k)`` from the component's mean contrast z̄ (in σ), so 0 at the
    threshold and → 1 for much brighter objects; ``conf`` filters on it.
    """

    classes = ("ship",)
    required_bands = ("B08",)

    def __init__(self, params: BaselineParams | None = None, conf: float = 0.05) -> None:
        self.params = params or BaselineParams()
        self.conf = conf
        self.name = "baseline:cfar-nir"
        self.required_bands = (self.params.band,)

    def detect(self, window: RasterWindow, *, conf: float | None = None) -> list[Detection]:
        conf = self.conf if conf is None else conf
        p = self.params
        res = window.grid.res_m
        nir = window.band(p.band)
        wm = water_mask(window)
        valid = window.valid_mask
        # Background from open water only; candidates anywhere on the dilated mask (ships at quays).
        open_water = (wm.core & ~_bright(nir, wm.core)) if wm.available and wm.core is not None else valid
        near_water = valid
        if wm.available and wm.core is not None:
            r = round(p.reach_m / res)
            near_water = valid & (_grow(wm.core, r) if r > 0 else wm.core)
        guard = max(1, round(p.guard_m / res))
        outer = max(guard + 1, round(p.background_m / res))
        z, excess = cfar_contrast(nir, open_water, guard, outer, p.sigma_floor, p.min_background_frac)
        seed = (z > p.k) & (excess > p.min_contrast) & near_water
        # Hysteresis: a ship's dimmer ends join its component if connected to a seed pixel.
        grow = (z > p.k * p.grow_frac) & (excess > p.min_contrast * p.grow_frac) & near_water
        n, labels, stats, _ = cv2.connectedComponentsWithStats(grow.astype(np.uint8), connectivity=8)
        seeded = np.zeros(n, bool)
        seeded[labels[seed]] = True
        boxes = []
        for i in range(1, n):
            if not seeded[i] or stats[i, cv2.CC_STAT_AREA] < p.min_px:
                continue
            x0, y0 = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_TOP]
            bw, bh = stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]
            if max(bw, bh) * res > 2 * p.max_length_m:  # cheap reject before the exact test
                continue
            sub = labels[y0 : y0 + bh, x0 : x0 + bw] == i
            rows, cols = np.nonzero(sub)
            # Fit the rectangle to pixel corners so a 3×1 blob measures 30 m × 10 m, not 20 m × 0.
            pts = np.concatenate(
                [np.stack([cols + x0 + dc, rows + y0 + dr], 1) for dc in (0, 1) for dr in (0, 1)]
            ).astype(np.float32)
            (cx, cy), (rw, rh), ang = cv2.minAreaRect(pts)
            length_m = max(rw, rh) * res
            if not p.min_length_m <= length_m <= p.max_length_m:
                continue
            zbar = float(z[y0 : y0 + bh, x0 : x0 + bw][sub].mean())
            score = 1.0 - math.exp(-(zbar - p.k) / p.k)
            if score < conf:
                continue
            boxes.append([cx, cy, rw, rh, math.radians(ang), score, 0.0])
        arr = np.asarray(boxes, np.float32).reshape(-1, 7)
        # Candidates are taken on water only, so every box is on water when a mask exists.
        on_water = np.ones(len(arr), bool) if wm.available else None
        return boxes_to_detections(window, arr, self.classes, self.name, on_water=on_water, keep_land=True)
