"""read_window over HTTP range requests: georeferencing, bytes transferred, harmonisation, errors, cache."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import array_bounds
from rasterio.warp import Resampling, calculate_default_transform, reproject
from shapely.geometry import box

from imagery import gdal
from imagery.aoi import Aoi
from imagery.cache import Cache
from imagery.errors import CredentialsError, CrsError, HarborwatchError, MissingBandsError, RasterReadError
from imagery.read import read_window
from imagery.samples import get_sample
from imagery.types import Asset, Grid, Scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rangeserver import RangeServer

SAMPLE = "durban-2023-08-21"
BANDS = ("B02", "B03", "B04", "B08")
WHEN = datetime(2023, 8, 21, 8, 25, tzinfo=timezone.utc)
#: A basin in the Durban chip, well inside it.
AOI = Aoi("durban-basin", "custom", box(31.010, -29.880, 31.020, -29.870))


def _write_cog(path: Path, data: np.ndarray, crs, transform, nodata=0, blocksize=128) -> Path:
    with rasterio.open(path, "w", driver="COG", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype.name, crs=crs, transform=transform, nodata=nodata,
                       compress="DEFLATE", blocksize=blocksize) as dst:
        dst.write(data, 1)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Single-band COGs (as Earth Search serves them) built from the bundled Durban chip, and a server."""
    root = tmp_path_factory.mktemp("cogs")
    with rasterio.open(get_sample(SAMPLE).path) as src:
        dn, crs, transform = src.read(), src.crs, src.transform
    for i, band in enumerate(BANDS):
        _write_cog(root / f"{band}.tif", dn[i], crs, transform)
    # The red band once more in Web Mercator, so the read must reproject.
    h, w = dn.shape[1:]
    t3857, w3, h3 = calculate_default_transform(crs, "EPSG:3857", w, h, *array_bounds(h, w, transform))
    merc = np.zeros((h3, w3), np.uint16)
    reproject(dn[2], merc, src_transform=transform, src_crs=crs, dst_transform=t3857, dst_crs="EPSG:3857",
              src_nodata=0, dst_nodata=0, resampling=Resampling.bilinear)
    _write_cog(root / "B04_3857.tif", merc, "EPSG:3857", t3857)
    # Baseline >= 04.00 products store DN + 1000.
    shifted = np.where(dn[2] > 0, dn[2] + 1000, 0).astype(np.uint16)
    _write_cog(root / "B04_offset.tif", shifted, crs, transform)
    with RangeServer(root) as server:
        yield root, server


def _scene(server: RangeServer, files: dict[str, str], query: str = "", **asset_kw) -> Scene:
    return Scene(
        id="S2B_36JTM_20230821_0_L2A", source="test", collection="sentinel-2-l2a", datetime=WHEN,
        platform="sentinel-2b", processing_level="L2A", cloud_cover=3.0, footprint=AOI.geometry,
        assets={b: Asset(href=server.url(f) + query, band=b, **asset_kw) for b, f in files.items()},
    )


def _reference(path: Path, grid: Grid, resampling=Resampling.bilinear) -> np.ndarray:
    """rasterio's own reprojection of the whole file onto ``grid`` (DN × 1e-4, nodata → NaN)."""
    out = np.full(grid.shape, np.nan, np.float32)
    with rasterio.open(path) as src:
        reproject(src.read(1).astype(np.float32), out, src_transform=src.transform, src_crs=src.crs,
                  src_nodata=0, dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=np.nan,
                  resampling=resampling)
    return out * np.float32(1e-4)


def test_window_on_native_utm_grid_equals_rasterio_reprojection_of_whole_file(served):
    root, server = served
    grid = AOI.grid()
    window = read_window(_scene(server, {b: f"{b}.tif" for b in BANDS}), grid, BANDS)
    assert window.grid == grid and window.transform == grid.transform and window.crs == grid.crs
    assert window.data.shape == (4, *grid.shape) and window.data.dtype == np.float32
    for i, band in enumerate(BANDS):
        np.testing.assert_allclose(window.data[i], _reference(root / f"{band}.tif", grid), atol=1e-6)
    assert window.band_names == BANDS
    assert window.acquired == WHEN and window.scene_id == "S2B_36JTM_20230821_0_L2A"
    assert window.source == "test" and window.processing_level == "L2A"
    assert window.valid_mask.all()


def test_web_mercator_asset_is_reprojected_like_rasterio(served):
    root, server = served
    grid = AOI.grid()
    window = read_window(_scene(server, {"B04": "B04_3857.tif"}), grid, ["B04"])
    ref = _reference(root / "B04_3857.tif", grid)
    assert np.isfinite(ref).all()
    assert float(np.max(np.abs(window.data[0] - ref))) < 1e-5
    # and it lands where the UTM original is: same pixels up to two resamplings
    native = read_window(_scene(server, {"B04": "B04.tif"}), grid, ["B04"]).data[0]
    assert np.corrcoef(native.ravel(), window.data[0].ravel())[0, 1] > 0.9


def test_only_the_window_is_transferred_with_range_requests(served):
    root, server = served
    server.clear()
    read_window(_scene(server, {"B04": "B04.tif"}, query="?fresh=range-test"), AOI.grid(), ["B04"])
    gets = [r for r in server.requests if r.method == "GET"]
    assert gets and all(r.status == 206 and r.range for r in gets)
    size = (root / "B04.tif").stat().st_size
    assert server.bytes_sent < 0.6 * size, (server.bytes_sent, size)


def test_rerun_with_cache_makes_zero_requests(served, tmp_path):
    _, server = served
    cache = Cache(tmp_path / "cache")
    grid = AOI.grid()
    files = {b: f"{b}.tif" for b in BANDS}
    server.clear()
    first = read_window(_scene(server, files, query="?sig=first"), grid, BANDS, cache=cache)
    assert len(server.requests) > 0 and cache.misses == 4

    # Re-signed URLs (new query strings) defeat GDAL's in-process HTTP cache but not ours.
    server.clear()
    again = read_window(_scene(server, files, query="?sig=second"), grid, BANDS, cache=cache)
    assert server.requests == []
    assert cache.hits == 4
    np.testing.assert_array_equal(first.data, again.data)
    np.testing.assert_array_equal(first.valid, again.valid)
    assert all(r["cached"] for r in again.meta["reads"].values())

    # Control: without our cache the same read does go to the server.
    read_window(_scene(server, files, query="?sig=third"), grid, BANDS)
    assert len(server.requests) > 0


def test_offset_harmonisation_makes_baselines_agree_and_clips_negatives(served):
    _, server = served
    grid = AOI.grid()
    old = read_window(_scene(server, {"B04": "B04.tif"}), grid, ["B04"])  # baseline 02.14
    new = read_window(_scene(server, {"B04": "B04_offset.tif"}, offset_dn=-1000.0), grid, ["B04"])  # 05.00
    np.testing.assert_allclose(new.data, old.data, atol=1e-6)
    # a wrong (doubled) offset drives dark water below zero: clipped to 0, never negative
    over = read_window(_scene(server, {"B04": "B04.tif"}, offset_dn=-1000.0), grid, ["B04"])
    assert float(np.nanmin(over.data)) == 0.0 and (over.data == 0).any()


def test_coarse_grid_reads_an_overview_and_averages(served):
    root, server = served
    grid = AOI.grid(res_m=40.0)
    window = read_window(_scene(server, {"B04": "B04.tif"}), grid, ["B04"])
    assert window.meta["reads"]["B04"]["overview_factor"] > 1  # 400 px COG: overviews 2 and 4
    ref = _reference(root / "B04.tif", grid, Resampling.average)
    assert float(np.nanmedian(np.abs(window.data[0] - ref))) < 0.003


def test_nodata_becomes_nan_and_invalid(tmp_path):
    with rasterio.open(get_sample(SAMPLE).path) as src:
        dn, crs, transform = src.read(3), src.crs, src.transform
    dn[:, :200] = 0  # the western half has no data
    path = _write_cog(tmp_path / "B04.tif", dn, crs, transform)
    scene = Scene("x", "local", "c", WHEN, "sentinel-2a", "L2A", None, None,
                  {"B04": Asset(str(path), "B04")})
    grid = Grid(crs.to_string(), transform, 400, 400)
    window = read_window(scene, grid, ["B04"])
    assert np.isnan(window.data[0][:, :200]).all() and np.isfinite(window.data[0][:, 200:]).all()
    assert window.valid_fraction == pytest.approx(0.5)


def test_missing_band_is_named():
    scene = Scene("x", "test", "c", WHEN, "s", "L2A", None, None, {"B04": Asset("/nonexistent.tif", "B04")})
    with pytest.raises(MissingBandsError, match="B08"):
        read_window(scene, AOI.grid(), ["B04", "B08"])


def test_requester_pays_s3_is_a_credentials_error_naming_free_alternatives():
    scene = Scene("x", "earth-search", "sentinel-2-l1c", WHEN, "s", "L1C", None, None,
                  {"B04": Asset("s3://sentinel-s2-l1c/tiles/36/J/TM/2023/8/21/0/B04.jp2", "B04")})
    with pytest.raises(CredentialsError) as e:
        read_window(scene, AOI.grid(), ["B04"])
    assert "requester-pays" in str(e.value) and "gcp-public-data-sentinel-2" in str(e.value)
    assert isinstance(e.value, PermissionError)


@pytest.mark.parametrize("name, expected", [
    ("missing.tif", "404"),
    ("truncated.tif", "TIFFReadEncodedTile"),
    ("junk.tif", "not recognized"),
])
def test_broken_remote_files_give_one_line_read_errors(served, name, expected):
    root, server = served
    if name == "truncated.tif":
        (root / name).write_bytes((root / "B04.tif").read_bytes()[:60_000])
    elif name == "junk.tif":
        (root / name).write_bytes(b"this is not a GeoTIFF\n" * 50)
    scene = _scene(server, {"B04": name}, query="?sig=SECRET")
    with pytest.raises(RasterReadError) as e:
        read_window(scene, AOI.grid(), ["B04"])
    msg = str(e.value)
    assert "\n" not in msg and expected in msg and "SECRET" not in msg and name in msg


def test_file_without_crs_is_a_crs_error(tmp_path):
    path = tmp_path / "B04.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint16",
                       transform=Affine(10, 0, 0, 0, -10, 80)) as dst:
        dst.write(np.ones((1, 8, 8), np.uint16))
    scene = Scene("x", "local", "c", WHEN, "s", "L2A", None, None, {"B04": Asset(str(path), "B04")})
    with pytest.raises(CrsError, match="no CRS"):
        read_window(scene, AOI.grid(), ["B04"])


def test_asset_in_another_crs_than_the_scene_says_is_a_crs_error():
    sample = get_sample(SAMPLE)
    scene = Scene("x", "local", "c", WHEN, "s", "L2A", None, None,
                  {"B04": Asset(str(sample.path), "B04")}, crs="EPSG:32651")
    with pytest.raises(CrsError, match="EPSG:32736") as e:
        read_window(scene, AOI.grid(), ["B04"])
    assert isinstance(e.value, HarborwatchError)


def test_grid_outside_the_asset_gives_an_all_invalid_window(served):
    _, server = served
    far = Aoi("far", "custom", box(31.5, -29.5, 31.51, -29.49))
    window = read_window(_scene(server, {"B04": "B04.tif"}), far.grid(crs="EPSG:32736"), ["B04"])
    assert window.valid_fraction == 0.0 and np.isnan(window.data).all()


def test_transient_503_is_retried(served, monkeypatch):
    _, server = served
    monkeypatch.setitem(gdal.CLOUD_OPTIONS, "GDAL_HTTP_RETRY_DELAY", "0.1")
    server.clear()
    server.fail("B08.tif", 503)
    window = read_window(_scene(server, {"B08": "B08.tif"}, query="?retry=1"), AOI.grid(), ["B08"])
    assert np.isfinite(window.data).all()
    assert [r.status for r in server.requests][:2] == [503, 200]


def test_changed_local_file_is_read_again_not_served_stale_from_cache(tmp_path):
    with rasterio.open(get_sample(SAMPLE).path) as src:
        dn, crs, transform = src.read(3), src.crs, src.transform
    path = _write_cog(tmp_path / "B04.tif", dn, crs, transform)
    scene = Scene("x", "local", "c", WHEN, "s", "L2A", None, None, {"B04": Asset(str(path), "B04")})
    cache = Cache(tmp_path / "cache")
    grid = AOI.grid()
    before = read_window(scene, grid, ["B04"], cache=cache).data
    _write_cog(path, (dn // 2).astype(np.uint16), crs, transform)
    after = read_window(scene, grid, ["B04"], cache=cache).data
    assert cache.misses == 2 and cache.hits == 0
    np.testing.assert_allclose(after, before / 2, atol=0.51e-4)  # DN // 2


@pytest.mark.network
def test_live_window_of_a_real_earth_search_cog():
    """A 2 km window of a full-size Sentinel-2 L2A COG on AWS (anonymous), read by ranges, SCL included."""
    base = ("https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/29/R/KH/2020/2/"
            "S2A_29RKH_20200219_0_L2A")
    scene = Scene("S2A_29RKH_20200219_0_L2A", "earth-search", "sentinel-2-l2a",
                  datetime(2020, 2, 19, 11, 21, 37, tzinfo=timezone.utc), "sentinel-2a", "L2A", 8.0, None,
                  {b: Asset(f"{base}/{b}.tif", b, scale=1.0 if b == "SCL" else 1e-4) for b in ("B04", "SCL")},
                  crs="EPSG:32629")
    grid = Grid("EPSG:32629", Affine(10, 0, 250000, 0, -10, 2750000), 200, 200)
    window = read_window(scene, grid, ["B04", "SCL"])
    assert window.valid_fraction > 0.9
    assert 0.0 < float(np.nanmedian(window.band("B04"))) < 0.6
