"""Where the radar detector looks: a land mask from the backscatter itself, water from AOI zones, and
the test area (water away from the shore)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from detect.core.water import drop_small, otsu_threshold
from detect.sar.params import SarShipParams
from imagery.errors import InputError
from imagery.types import Grid


def sar_land_mask(
    x: np.ndarray,
    res_m: float,
    quantity: str = "sigma0",
    params: SarShipParams | None = None,
    polarisation: str = "VV",
) -> np.ndarray:
    """Land (True) from backscatter alone: areas whose median backscatter over ``land_block_m`` blocks,
    smoothed over ``land_smooth_blocks`` blocks, is bright.

    The threshold is Otsu's on the smoothed block medians when they are bimodal (class means ≥ 4 dB
    apart); otherwise, for calibrated data, ``land_threshold_db`` (−8 dB lower for cross-pol), and for
    uncalibrated DN² everything is taken as water. Land blobs under ``min_land_m2`` (ships, rocks) are
    dropped and the rest grown by one block (the mask is coarse; give a water mask to see quaysides).
    Medians make a ship (a few bright pixels in a block) leave no mark.
    """
    p = params or SarShipParams()
    blk = max(1, round(p.land_block_m / res_m))
    h, w = x.shape
    hb, wb = -(-h // blk), -(-w // blk)
    padded = np.full((hb * blk, wb * blk), np.nan, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        padded[:h, :w] = np.where(x > 0, 10 * np.log10(x), np.nan)
    blocks = padded.reshape(hb, blk, wb, blk).transpose(0, 2, 1, 3).reshape(hb, wb, blk * blk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blocks outside the swath are all NaN
        med = np.nanmedian(blocks, axis=2)
    filled = np.where(np.isfinite(med), med, np.nanmedian(med) if np.isfinite(med).any() else 0.0)
    smooth = ndimage.median_filter(filled, size=max(1, p.land_smooth_blocks), mode="nearest")
    vals = smooth[np.isfinite(med)]
    land_c = np.zeros(smooth.shape, bool)
    if vals.size:
        thr = otsu_threshold(vals, value_range=(float(vals.min()), float(vals.max()) + 1e-6))
        lo, hi = vals[vals <= thr], vals[vals > thr]
        if lo.size and hi.size and hi.mean() - lo.mean() >= 4.0:
            land_c = smooth > thr
        elif quantity != "dn2":
            land_c = smooth > p.land_threshold_db - (8.0 if polarisation in ("VH", "HV") else 0.0)
    min_blocks = round(p.min_land_m2 / (blk * res_m) ** 2)
    land_c = drop_small(land_c, min_blocks)
    # Block edges fall up to a block off the true shore: grow land by one block to stay on the safe side.
    land_c = cv2.dilate(land_c.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return np.repeat(np.repeat(land_c, blk, 0), blk, 1)[:h, :w]


def water_from_zones(
    aoi: Any, grid: Grid, kinds: Sequence[str] = ("water", "anchorage", "berth")
) -> np.ndarray:
    """Water mask (True = water) from an AOI's water-like zones rasterised on ``grid``."""
    from rasterio.features import geometry_mask

    geoms = [z.area_geometry(grid.crs) for z in aoi.zones if z.kind in kinds]
    if not geoms:
        raise InputError(f"AOI {aoi.name!r} has no zones of kind {', '.join(kinds)} to use as water")
    return geometry_mask(geoms, out_shape=grid.shape, transform=grid.transform, invert=True)


def test_area(water: np.ndarray, valid: np.ndarray, res_m: float, shore_buffer_m: float) -> np.ndarray:
    """Water pixels at least ``shore_buffer_m`` from land (invalid pixels are not land)."""
    land = ~water & valid
    r = math.ceil(shore_buffer_m / res_m)
    if r > 0 and land.any():
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        land = cv2.dilate(land.astype(np.uint8), k).astype(bool)
    return water & valid & ~land
