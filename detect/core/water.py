"""Water masks from NDWI (B03, B08), so ship detectors ignore roofs, car parks and fields.

The raw NDWI mask is cleaned (opening, small water blobs removed, small land holes such as
ships filled) and dilated by ``dilate_m`` so ships moored at quays still have their centre on water.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from imagery.types import RasterWindow

#: Bands the mask needs.
WATER_BANDS = ("B03", "B08")
#: Fixed NDWI threshold used when Otsu's is implausible (McFeeters NDWI: water > 0).
DEFAULT_THRESHOLD = 0.0
#: Otsu thresholds outside this range mean the scene is (nearly) all water or all land.
OTSU_RANGE = (-0.2, 0.3)


@dataclass(frozen=True, eq=False)
class WaterMask:
    """A boolean mask on a window's grid; ``available`` is False when bands were missing,
    in which case ``mask`` is all True (nothing is filtered) and ``reason`` says why."""

    mask: np.ndarray
    available: bool
    threshold: float | None = None
    reason: str = ""
    #: The mask before dilation (open water, ships filled in); None when unavailable.
    core: np.ndarray | None = None

    @property
    def water_fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def contains(self, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """True where pixel positions (float col, row; pixel corners at integers) fall on water.
        Positions outside the grid count as not on water."""
        cols = np.asarray(cols, dtype=np.float64)
        rows = np.asarray(rows, dtype=np.float64)
        c = np.floor(cols).astype(np.int64)
        r = np.floor(rows).astype(np.int64)
        h, w = self.mask.shape
        inside = (c >= 0) & (c < w) & (r >= 0) & (r < h)
        out = np.zeros(c.shape, bool)
        out[inside] = self.mask[r[inside], c[inside]]
        return out


def ndwi_array(green: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """McFeeters NDWI = (green − nir) / (green + nir) of two reflectance arrays (B03, B08), without warnings;
    NaN (0/0) or ±inf where the sum is 0, for the caller to map."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (green - nir) / (green + nir)


def ndwi(window: RasterWindow) -> np.ndarray:
    """McFeeters NDWI = (B03 − B08) / (B03 + B08); NaN where invalid."""
    out = ndwi_array(window.band("B03").astype(np.float32), window.band("B08").astype(np.float32))
    out[~np.isfinite(out)] = np.nan
    return out


def otsu_threshold(
    values: np.ndarray, bins: int = 256, value_range: tuple[float, float] = (-1.0, 1.0)
) -> float:
    """Otsu's threshold of finite values (maximises between-class variance)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return DEFAULT_THRESHOLD
    hist, edges = np.histogram(v, bins=bins, range=value_range)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def _disk(radius_px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1, 2 * radius_px + 1))


def drop_small(mask: np.ndarray, min_px: int) -> np.ndarray:
    """Remove 8-connected True blobs smaller than ``min_px`` pixels."""
    if min_px <= 1 or not mask.any():
        return mask
    _n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    big = stats[:, cv2.CC_STAT_AREA] >= min_px
    big[0] = False
    return big[labels]


def water_mask(
    window: RasterWindow,
    *,
    threshold: float | str = "otsu",
    open_px: int = 1,
    min_water_m2: float = 20_000.0,
    max_hole_m2: float = 60_000.0,
    dilate_m: float = 90.0,
) -> WaterMask:
    """Water mask of a window.

    ``threshold``: an NDWI value, or ``"otsu"`` (per scene, clamped to ``OTSU_RANGE`` else
    ``DEFAULT_THRESHOLD``). ``open_px``: opening radius that removes specks. ``min_water_m2``:
    water blobs smaller than this (pools, wet roofs) are dropped. ``max_hole_m2``: land holes
    smaller than this inside water (ships, buoys; a 400 m × 60 m ship is 24 000 m²) become water.
    ``dilate_m``: growth into land so ships at quays keep their centre on water.
    """
    missing = [b for b in WATER_BANDS if b not in window.band_names]
    if missing:
        return WaterMask(
            mask=np.ones(window.grid.shape, bool),
            available=False,
            reason=f"no water mask: missing band(s) {', '.join(missing)}",
        )
    index = ndwi(window)
    if isinstance(threshold, str):
        if threshold != "otsu":
            raise ValueError(f"threshold must be a number or 'otsu', got {threshold!r}")
        t = otsu_threshold(index)
        if not OTSU_RANGE[0] <= t <= OTSU_RANGE[1]:
            t = DEFAULT_THRESHOLD
    else:
        t = float(threshold)
    px_area = window.grid.res_m**2
    water = np.nan_to_num(index, nan=-1.0) > t
    if open_px > 0:
        water = cv2.morphologyEx(water.astype(np.uint8), cv2.MORPH_OPEN, _disk(open_px)).astype(bool)
    water = drop_small(water, round(min_water_m2 / px_area))
    # Fill small land holes (ships) by removing small land blobs that do not touch invalid data.
    land = ~water & window.valid_mask
    holes = land & ~drop_small(land, round(max_hole_m2 / px_area))
    core = (water | holes) & window.valid_mask
    radius = round(dilate_m / window.grid.res_m)
    grown = cv2.dilate(core.astype(np.uint8), _disk(radius)).astype(bool) if radius > 0 else core
    return WaterMask(mask=grown & window.valid_mask, available=True, threshold=t, core=core)
