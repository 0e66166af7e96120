"""The Sentinel-1 pieces of a run: which scenes are radar, the margin grid for azimuth ghosts, where
the CFAR detector looks for ships over an AOI, and the ships kept on the AOI grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from detect.core.geometry import Detection
from imagery.aoi import Aoi
from imagery.sar import sar_quantity
from imagery.types import Grid, RasterWindow, Scene

#: Sentinel-1 is read this far beyond the AOI grid: an azimuth ghost lies 4.3–6.0 km along track from
#: its source, and is only recognised when the source is on the grid (docs/sar.md).
S1_MARGIN_M = 6500.0

#: AOI zone kinds that are water for the radar detector (where the coarse SAR land mask loses quaysides).
WATER_ZONE_KINDS = ("water", "anchorage", "berth")


def scene_sensor(scene: Scene) -> str:
    """``S1`` for a Sentinel-1 scene (GRD level, a sentinel-1 collection or platform), else ``S2``."""
    if (
        scene.processing_level.upper() == "GRD"
        or scene.collection.lower().startswith("sentinel-1")
        or scene.platform.lower().startswith("sentinel-1")
    ):
        return "S1"
    return "S2"


def margin_grid(grid: Grid, margin_m: float) -> tuple[Grid, tuple[slice, slice]]:
    """``grid`` grown by ``margin_m`` (whole pixels) on every side, and the rows/cols of ``grid`` in it."""
    from affine import Affine

    n = max(0, math.ceil(margin_m / grid.res_m))
    shifted = grid.transform @ Affine.translation(-n, -n)
    wide = Grid(grid.crs, shifted, grid.width + 2 * n, grid.height + 2 * n)
    return wide, (slice(n, n + grid.height), slice(n, n + grid.width))


def s1_water(window: RasterWindow, aoi: Aoi, params: Any = None) -> np.ndarray | None:
    """Where the radar detector looks for ships: the AOI's water-like zones (berths, anchorages: there the
    coarse SAR land mask would swallow ships alongside quays) plus what the SAR land mask calls sea
    elsewhere, so the whole AOI is searched as Sentinel-2 searches it. None (the detector's own SAR land
    mask) for an AOI without such zones."""
    from detect.sar.land import sar_land_mask, water_from_zones
    from imagery.sar import from_db, sar_quantity

    if not any(z.kind in WATER_ZONE_KINDS for z in aoi.zones):
        return None
    zones = water_from_zones(aoi, window.grid, WATER_ZONE_KINDS)
    quantity, units = sar_quantity(window)
    pol = getattr(params, "polarisation", None) or window.band_names[0]
    x = window.band(pol).astype(np.float64)
    if units == "dB":
        x = from_db(x).astype(np.float64)
    valid = np.isfinite(x) & (x > 0) & window.valid_mask
    sea = ~sar_land_mask(np.where(valid, x, np.nan), window.grid.res_m, quantity, params, pol) & valid
    return zones | sea


def detect_sar(
    window: RasterWindow, *, aoi: Aoi, conf: float | None = None, device: str = "cpu"
) -> list[Detection]:
    """Ships in a Sentinel-1 window by the registered ``ship``/``cfar`` detector over ``s1_water``."""
    from detect.core.registry import get_detector

    pol = window.band_names[0]
    detector = get_detector("ship", "cfar", device, **({} if pol == "VV" else {"polarisation": pol}))
    water = s1_water(window, aoi, getattr(detector, "params", None))
    return detector.detect(window, conf=conf, water=water)


def on_grid(detections: Sequence[Detection], grid: Grid) -> list[Detection]:
    """The detections whose centre lies on ``grid``."""
    from detect.sar.detector import detection_pixels

    px = detection_pixels(detections, grid)
    return [
        d
        for d, (col, row) in zip(detections, px, strict=True)
        if 0 <= col < grid.width and 0 <= row < grid.height
    ]


def s1_observation(window: RasterWindow, water: np.ndarray | None = None) -> dict[str, Any]:
    """A scene row for the daily table: S1 sees through cloud, so the observed share is the valid share.

    ``valid_fraction`` is over the whole grid; with ``water`` the observed fraction is over water only.
    """
    sar_quantity(window)
    valid = window.valid_mask
    valid_fraction = float(valid.mean()) if valid.size else 0.0
    observed = valid_fraction
    if water is not None and np.any(water):
        observed = float((valid & water).sum() / np.sum(water))
    acquired: datetime | None = window.acquired
    return {
        "scene": window.scene_id,
        "datetime": acquired,
        "date": acquired.date() if isinstance(acquired, datetime) else None,
        "source": window.source,
        "processing_level": window.processing_level or "GRD",
        "cloud_cover": None,
        "cloud_fraction": 0.0,
        "valid_fraction": valid_fraction,
        "observed_fraction": observed,
        "status": "clear" if observed > 0 else "no_data",
        "reason": "" if observed > 0 else "no valid S1 pixels on the grid",
        "sensor": "S1",
        "polarisations": ",".join(window.band_names),
        "quantity": window.meta.get("quantity"),
    }
