"""Cloud screening per AOI and scene: SCL classes for L2A, s2cloudless for L1C (2018 has no global L2A).

Cloudy, partial or empty scenes are flagged with a ``CloudScreen`` status, never silently dropped;
the caller decides what to skip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from rasterio.features import geometry_mask

from imagery.aoi import to_crs
from imagery.errors import HarborwatchError
from imagery.types import Grid, RasterWindow, Scene

if TYPE_CHECKING:
    from imagery.aoi import Aoi
    from imagery.cache import Cache

log = logging.getLogger(__name__)

#: SCL classes counted as cloud: 3 cloud shadow, 8/9 cloud medium/high probability, 10 thin cirrus.
SCL_CLOUD = (3, 8, 9, 10)
#: SCL classes without usable data: 0 no data, 1 saturated or defective.
SCL_INVALID = (0, 1)
#: Bands the s2cloudless classifier takes, in its order (TOA reflectance, L1C).
S2CLOUDLESS_BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
#: s2cloudless runs at 60 m: native for B01/B09/B10, 36× fewer pixels than 10 m, and close to the
#: coarse resolution the classifier was trained for; its masks are smooth at that scale anyway.
S2CLOUDLESS_RES_M = 60.0
SCL_RES_M = 20.0  # SCL's native resolution
STATUSES = ("clear", "partial", "cloudy", "nodata", "unknown")


@dataclass(frozen=True)
class CloudScreen:
    """Cloud and valid-data fractions of one scene over one area, and the verdict.

    ``cloud_fraction`` is the share of valid pixels flagged cloud or shadow (None if no mask could be
    made); ``valid_fraction`` the share of the area with data. ``status``: "clear", "partial" (too
    little data), "cloudy", "nodata" or "unknown" (no cloud information).
    """

    status: str
    cloud_fraction: float | None
    valid_fraction: float
    method: str  # "scl", "s2cloudless", "mask" (given) or "none"
    max_cloud: float
    min_valid: float

    @property
    def usable(self) -> bool:
        return self.status in ("clear", "partial")


def scl_cloud_mask(scl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cloud, invalid) bool masks from a Sentinel-2 scene classification layer (NaN counts as 0)."""
    classes = np.nan_to_num(np.asarray(scl, dtype=np.float32), nan=0).astype(np.uint8)
    return np.isin(classes, SCL_CLOUD), np.isin(classes, SCL_INVALID)


def coarse_grid(grid: Grid, res_m: float) -> Grid:
    """The grid over the same area at ``res_m`` (edges snapped outwards)."""
    return Grid.from_bounds(grid.crs, grid.bounds, res_m)


def s2cloudless_mask(
    window: RasterWindow,
    grid: Grid | None = None,
    *,
    threshold: float = 0.4,
    res_m: float = S2CLOUDLESS_RES_M,
    average_over: int = 4,
    dilation_size: int = 2,
) -> np.ndarray:
    """Cloud mask by s2cloudless from L1C TOA bands (``S2CLOUDLESS_BANDS``), on ``grid``.

    Bands finer than ``res_m`` are first averaged onto a ``res_m`` grid; the mask is computed there and
    brought back with nearest neighbour. ``average_over``/``dilation_size`` are in ``res_m`` pixels.
    """
    from s2cloudless import S2PixelCloudDetector

    from imagery.read import reproject_array

    bands = window.select(S2CLOUDLESS_BANDS)
    work_grid = window.grid
    if window.grid.res_m < res_m * 0.99:
        work_grid = coarse_grid(window.grid, res_m)
        bands = np.stack([reproject_array(b, window.transform, window.crs, work_grid) for b in bands])
    finite = np.all(np.isfinite(bands), axis=0)
    detector = S2PixelCloudDetector(
        threshold=threshold, average_over=average_over, dilation_size=dilation_size, all_bands=False
    )
    stack = np.nan_to_num(np.moveaxis(bands, 0, -1), nan=0.0)[np.newaxis].astype(np.float32)
    mask = detector.get_cloud_masks(stack)[0].astype(bool) & finite
    target = grid or window.grid
    if target == work_grid:
        return mask
    up = reproject_array(mask.astype(np.uint8), work_grid.transform, work_grid.crs, target, categorical=True)
    return up.astype(bool)


def screen(
    cloud: np.ndarray | None,
    valid: np.ndarray,
    *,
    max_cloud: float = 0.3,
    min_valid: float = 0.9,
    method: str = "mask",
    area: np.ndarray | None = None,
) -> CloudScreen:
    """Judge one scene: "nodata" if no valid pixel, "cloudy" if more than ``max_cloud`` of the valid
    pixels are cloud, "partial" if less than ``min_valid`` of the area has data, else "clear"
    ("unknown" instead of clear/partial/cloudy when ``cloud`` is None). ``area`` limits the count."""
    inside = np.ones(valid.shape, bool) if area is None else area
    n_area = int(inside.sum())
    n_valid = int((valid & inside).sum())
    valid_fraction = n_valid / n_area if n_area else 0.0
    cloud_fraction = None
    if cloud is not None and n_valid:
        cloud_fraction = float((cloud & valid & inside).sum() / n_valid)
    if n_valid == 0:
        status = "nodata"
    elif cloud_fraction is None:
        status = "unknown"
    elif cloud_fraction > max_cloud:
        status = "cloudy"
    elif valid_fraction < min_valid:
        status = "partial"
    else:
        status = "clear"
    return CloudScreen(status, cloud_fraction, valid_fraction, method if cloud is not None else "none",
                       max_cloud, min_valid)


def window_cloud_mask(window: RasterWindow) -> tuple[np.ndarray | None, np.ndarray, str]:
    """(cloud mask or None, valid mask, method) for a window: SCL if it has it, else s2cloudless if it has
    the bands, else the window's own ``cloud`` mask ("mask", or "none" when it has none). Radar (GRD)
    windows get an all-clear mask: Sentinel-1 sees through cloud."""
    valid = window.valid_mask
    if (window.processing_level or "").upper() == "GRD":
        return np.zeros(window.grid.shape, dtype=bool), valid, "sar"
    if "SCL" in window.band_names:
        cloud, invalid = scl_cloud_mask(window.band("SCL"))
        return cloud, valid & ~invalid, "scl"
    if all(b in window.band_names for b in S2CLOUDLESS_BANDS):
        return s2cloudless_mask(window), valid, "s2cloudless"
    return window.cloud, valid, "mask" if window.cloud is not None else "none"


def screen_window(
    window: RasterWindow, *, max_cloud: float = 0.3, min_valid: float = 0.9, area: np.ndarray | None = None
) -> CloudScreen:
    """Screen a window with SCL if it has it, else s2cloudless if it has the bands, else its own
    ``cloud`` mask, else report "unknown"."""
    cloud, valid, method = window_cloud_mask(window)
    return screen(cloud, valid, max_cloud=max_cloud, min_valid=min_valid, method=method, area=area)


def aoi_mask(aoi: Aoi, grid: Grid) -> np.ndarray:
    """True for the grid pixels whose centre lies inside the AOI polygon."""
    geom = to_crs(aoi.geometry, grid.crs)
    return geometry_mask([geom], out_shape=grid.shape, transform=grid.transform, invert=True)


def aoi_cloud_screen(
    scene: Scene,
    aoi: Aoi,
    cache: Cache | None = None,
    *,
    max_cloud: float = 0.3,
    min_valid: float = 0.9,
) -> CloudScreen:
    """Screen ``scene`` over the AOI polygon at coarse resolution: SCL at 20 m if the scene has it,
    else the s2cloudless bands at 60 m. Status "unknown" (method "none") when neither can be read."""
    from imagery.read import read_window

    if "SCL" in scene.assets:
        bands, res_m = ("SCL",), SCL_RES_M
    elif all(b in scene.assets for b in S2CLOUDLESS_BANDS):
        bands, res_m = S2CLOUDLESS_BANDS, S2CLOUDLESS_RES_M
    else:
        log.info("scene %s has neither SCL nor the s2cloudless bands; cloud fraction unknown", scene.id)
        return CloudScreen("unknown", None, 0.0, "none", max_cloud, min_valid)
    grid = aoi.grid(res_m=res_m)
    try:
        window = read_window(scene, grid, bands, cache=cache)
    except HarborwatchError as e:
        log.warning("cloud fraction of %s over %s unknown: %s", scene.id, aoi.name, e)
        return CloudScreen("unknown", None, 0.0, "none", max_cloud, min_valid)
    return screen_window(window, max_cloud=max_cloud, min_valid=min_valid, area=aoi_mask(aoi, grid))


def aoi_cloud_fraction(scene: Scene, aoi: Aoi, cache: Cache | None = None) -> float | None:
    """Share of the AOI's valid pixels under cloud or shadow in ``scene``; None if it can't be computed."""
    return aoi_cloud_screen(scene, aoi, cache).cloud_fraction
