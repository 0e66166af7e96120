"""Cloud screening: SCL classes, s2cloudless on L1C bands, verdicts, and per-AOI fractions."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.features import geometry_mask
from rasterio.warp import Resampling, reproject
from shapely.geometry import box

from imagery.aoi import Aoi, to_crs
from imagery.clouds import (
    S2CLOUDLESS_BANDS,
    aoi_cloud_fraction,
    aoi_cloud_screen,
    s2cloudless_mask,
    scl_cloud_mask,
    screen,
    screen_window,
)
from imagery.types import Asset, Grid, RasterWindow, Scene

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "cog" / "S2A_29RKH_20200219_0_L2A"
WHEN = datetime(2020, 2, 19, 11, 21, tzinfo=timezone.utc)
# Typical TOA reflectance in s2cloudless band order (B01 B02 B04 B05 B08 B8A B09 B10 B11 B12).
THICK_CLOUD = [0.55, 0.55, 0.56, 0.57, 0.60, 0.60, 0.35, 0.12, 0.45, 0.35]
DARK_WATER = [0.10, 0.08, 0.04, 0.03, 0.02, 0.015, 0.005, 0.001, 0.01, 0.005]


def test_scl_classes_for_cloud_and_invalid():
    scl = np.arange(12, dtype=np.uint8).reshape(3, 4)
    cloud, invalid = scl_cloud_mask(scl)
    assert sorted(scl[cloud].tolist()) == [3, 8, 9, 10]
    assert sorted(scl[invalid].tolist()) == [0, 1]
    cloud_f, invalid_f = scl_cloud_mask(np.array([[np.nan, 9.0]], np.float32))
    assert invalid_f.tolist() == [[True, False]] and cloud_f.tolist() == [[False, True]]


def _l1c_window(size_px: int = 120, res_m: float = 10.0) -> RasterWindow:
    """Dark water with a bright flat cloud in the middle third."""
    grid = Grid("EPSG:32651", Affine(res_m, 0, 250020, 0, -res_m, 4178460), size_px, size_px)
    data = np.empty((10, size_px, size_px), np.float32)
    data[:] = np.array(DARK_WATER, np.float32)[:, None, None]
    lo, hi = size_px // 3, 2 * size_px // 3
    data[:, lo:hi, lo:hi] = np.array(THICK_CLOUD, np.float32)[:, None, None]
    return RasterWindow(data=data, band_names=S2CLOUDLESS_BANDS, grid=grid)


def test_s2cloudless_flags_a_bright_cloud_patch_and_not_dark_water():
    window = _l1c_window()
    mask = s2cloudless_mask(window)  # 10 m in, computed at 60 m, mask back on the 10 m grid
    assert mask.shape == window.grid.shape and mask.dtype == bool
    assert mask[55:65, 55:65].all()
    assert not mask[:20, :20].any() and not mask[-20:, -20:].any()
    third = window.grid.width // 3
    # the patch plus s2cloudless's dilation (2 pixels of 60 m = 12 pixels of 10 m on each side)
    assert third**2 < mask.sum() < (third + 2 * 12 + 6) ** 2


def test_screen_window_uses_s2cloudless_for_l1c_bands():
    verdict = screen_window(_l1c_window(), max_cloud=0.05)
    assert verdict.method == "s2cloudless" and verdict.status == "cloudy"
    assert 0.1 < verdict.cloud_fraction < 0.4


@pytest.mark.parametrize("cloud_share, valid_share, expected", [
    (0.0, 1.0, "clear"),
    (0.5, 1.0, "cloudy"),
    (0.1, 0.5, "partial"),
    (0.6, 0.5, "cloudy"),
    (0.0, 0.0, "nodata"),
])
def test_screen_verdicts(cloud_share, valid_share, expected):
    n = 100
    valid = np.arange(n) < valid_share * n
    cloud = np.arange(n) < cloud_share * valid_share * n
    verdict = screen(cloud.reshape(10, 10), valid.reshape(10, 10), max_cloud=0.3, min_valid=0.9)
    assert verdict.status == expected
    assert verdict.valid_fraction == pytest.approx(valid_share)
    if valid_share:
        assert verdict.cloud_fraction == pytest.approx(cloud_share)


def test_no_cloud_information_is_unknown_not_clear():
    grid = Grid("EPSG:32651", Affine(10, 0, 0, 0, -10, 0), 4, 4)
    window = RasterWindow(data=np.ones((1, 4, 4), np.float32), band_names=("B04",), grid=grid)
    verdict = screen_window(window)
    assert verdict.status == "unknown" and verdict.cloud_fraction is None and verdict.method == "none"
    assert not verdict.usable


def _fixture_aoi() -> Aoi:
    with rasterio.open(FIXTURE / "SCL.tif") as src:
        left, bottom, right, top = src.bounds
        crs = src.crs.to_string()
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_ll.transform(left + 2000, bottom + 2000)
    lon1, lat1 = to_ll.transform(right - 3000, top - 2500)
    return Aoi("fixture", "custom", box(lon0, lat0, lon1, lat1))


def _l2a_scene(**assets: str) -> Scene:
    return Scene(
        "S2A_29RKH_20200219_0_L2A", "test", "sentinel-2-l2a", WHEN, "sentinel-2a", "L2A", 8.0, None,
        {b: Asset(str(FIXTURE / f), b, scale=1.0 if b == "SCL" else 1e-4) for b, f in assets.items()},
        crs="EPSG:32629",
    )


def test_aoi_cloud_fraction_from_real_scl_counts_only_inside_the_aoi():
    aoi = _fixture_aoi()
    fraction = aoi_cloud_fraction(_l2a_scene(SCL="SCL.tif", B04="B04.tif"), aoi)
    # independent reckoning: rasterio's nearest-neighbour SCL on the AOI's 20 m grid, inside the polygon
    grid = aoi.grid(res_m=20.0)
    scl = np.zeros(grid.shape, np.uint8)
    with rasterio.open(FIXTURE / "SCL.tif") as src:
        reproject(src.read(1), scl, src_transform=src.transform, src_crs=src.crs,
                  dst_transform=grid.transform, dst_crs=grid.crs, resampling=Resampling.nearest,
                  src_nodata=0, dst_nodata=0)
    inside = geometry_mask([to_crs(aoi.geometry, grid.crs)], grid.shape, grid.transform, invert=True)
    valid = inside & ~np.isin(scl, (0, 1))
    expected = np.isin(scl, (3, 8, 9, 10))[valid].mean()
    assert 0.05 < expected < 0.95  # the fixture crop really is partly cloudy
    assert fraction == pytest.approx(expected, abs=1e-9)
    verdict = aoi_cloud_screen(_l2a_scene(SCL="SCL.tif"), aoi, max_cloud=0.99)
    assert verdict.method == "scl" and verdict.status == "clear" and verdict.valid_fraction == 1.0


def test_aoi_cloud_fraction_is_none_when_it_cannot_be_computed():
    aoi = _fixture_aoi()
    assert aoi_cloud_fraction(_l2a_scene(B04="B04.tif"), aoi) is None
    paid = Scene(
        "S2A_29RKH_20200219_0_L1C", "earth-search", "sentinel-2-l1c", WHEN, "sentinel-2a", "L1C", 8.0, None,
        {b: Asset(f"s3://sentinel-s2-l1c/tiles/29/R/KH/2020/2/19/0/{b}.jp2", b) for b in S2CLOUDLESS_BANDS},
    )
    assert aoi_cloud_fraction(paid, aoi) is None


def test_aoi_cloud_screen_runs_s2cloudless_on_local_l1c_bands(tmp_path):
    window = _l1c_window(size_px=90, res_m=20.0)
    assets = {}
    for i, band in enumerate(S2CLOUDLESS_BANDS):
        path = tmp_path / f"T51SWD_{band}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=90, height=90, count=1, dtype="uint16",
                           crs=window.crs, transform=window.transform, nodata=0) as dst:
            dst.write(np.round(window.data[i] * 10000).astype(np.uint16), 1)
        assets[band] = Asset(str(path), band)
    scene = Scene("L1C", "local", "sentinel-2-l1c", WHEN, "sentinel-2a", "L1C", None, None, assets)
    to_ll = Transformer.from_crs(window.crs, "EPSG:4326", always_xy=True)
    left, bottom, right, top = window.grid.bounds
    aoi = Aoi("l1c", "custom", box(*to_ll.transform(left, bottom), *to_ll.transform(right, top)))
    verdict = aoi_cloud_screen(scene, aoi, max_cloud=0.05)
    assert verdict.method == "s2cloudless" and verdict.status == "cloudy"
    assert 0.05 < verdict.cloud_fraction < 0.4
