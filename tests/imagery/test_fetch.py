"""fetch(): one COG per acquisition with band names and tags, a manifest, failures recorded, resume."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from detect.cli import main
from imagery.aoi import Aoi
from imagery.cache import Cache
from imagery.fetch import fetch
from imagery.read import open_raster, read_window
from imagery.samples import get_sample, sample_scene
from imagery.types import Asset

SAMPLE = "durban-2023-08-21"
AOI = Aoi("durban-port", "port", box(31.005, -29.885, 31.030, -29.862))
BANDS = ("B02", "B03", "B04", "B08")


@pytest.fixture(scope="module")
def scl_file(tmp_path_factory):
    """An SCL layer on the sample's grid: cloud (9) west of the chip's middle column, vegetation (4) east."""
    path = tmp_path_factory.mktemp("scl") / "SCL.tif"
    with rasterio.open(get_sample(SAMPLE).path) as src:
        crs, transform = src.crs, src.transform
    scl = np.full((400, 400), 4, np.uint8)
    scl[:, :200] = 9
    with rasterio.open(path, "w", driver="GTiff", width=400, height=400, count=1, dtype="uint8", crs=crs,
                       transform=transform, nodata=0) as dst:
        dst.write(scl, 1)
    return path


def _scenes(scl_file):
    clear = sample_scene(SAMPLE)
    broken = replace(clear, id="S2B_broken", datetime=clear.datetime + timedelta(days=5),
                     assets={b: Asset(str(scl_file.parent / "missing.tif"), b) for b in BANDS})
    cloudy = replace(clear, id="S2A_cloudy", datetime=clear.datetime + timedelta(days=10),
                     assets={**clear.assets, "SCL": Asset(str(scl_file), "SCL", scale=1.0)})
    return clear, broken, cloudy


def test_fetch_writes_named_cogs_and_a_manifest_and_records_failures(tmp_path, scl_file):
    clear, broken, cloudy = _scenes(scl_file)
    out = tmp_path / "out"
    result = fetch(AOI, [cloudy, broken, clear], out, BANDS, Cache(tmp_path / "cache"))

    assert [r.scene_ids[0] for r in result.records] == [clear.id, broken.id, cloudy.id]  # by time
    first, failed, last = result.records
    assert (first.outcome, first.status, first.cloud_method) == ("written", "unknown", "none")
    assert failed.outcome == "failed" and "missing.tif" in failed.error and failed.path is None
    assert (last.outcome, last.status, last.cloud_method) == ("written", "cloudy", "scl")
    assert 0.3 < last.cloud_fraction < 0.8 and last.valid_fraction == 1.0

    tif = out / first.path
    with rasterio.open(tif) as src:
        assert src.descriptions == BANDS
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        tags = src.tags()
        assert tags["SCENE_ID"] == clear.id and tags["DATETIME"].startswith("2023-08-21T08:25")
        assert tags["PROCESSING_LEVEL"] == "L2A" and tags["REFLECTANCE_SCALE"] == "0.0001"
        assert src.crs.to_string() == AOI.utm_crs and src.res == (10.0, 10.0)
        assert (src.height, src.width) == AOI.grid().shape
    with rasterio.open(out / last.path) as src:
        assert float(src.tags()["CLOUD_FRACTION"]) == last.cloud_fraction
        assert src.tags()["CLOUD_STATUS"] == "cloudy"

    # the file holds what read_window read, to the 1e-4 quantum of the stored DN
    written = open_raster(tif)
    direct = read_window(clear, AOI.grid(), BANDS)
    assert written.grid == direct.grid
    np.testing.assert_allclose(written.data, direct.data, atol=0.51e-4)

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["bands"] == list(BANDS) and len(manifest["acquisitions"]) == 3
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert [r["outcome"] for r in rows] == ["written", "failed", "written"]
    assert rows[2]["status"] == "cloudy" and float(rows[2]["cloud_fraction"]) == last.cloud_fraction
    assert not list(out.glob(".*part"))


def test_second_fetch_skips_finished_work(tmp_path, scl_file, monkeypatch):
    clear, broken, cloudy = _scenes(scl_file)
    out = tmp_path / "out"
    fetch(AOI, [clear, broken, cloudy], out, BANDS)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")}
    assert len(mtimes) == 2

    reads = []

    def counting_read(scene, *args, **kwargs):
        reads.append(scene.id)
        return read_window(scene, *args, **kwargs)

    monkeypatch.setattr("imagery.fetch.read_window", counting_read)
    again = fetch(AOI, [clear, broken, cloudy], out, BANDS)
    assert [r.outcome for r in again.records] == ["exists", "failed", "exists"]
    assert reads == [broken.id]  # only the failed acquisition is tried again
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")} == mtimes
    assert again.records[2].status == "cloudy"  # the manifest keeps the verdicts of the first run

    # another grid (resolution) into the same folder is new work, not a resume
    coarser = fetch(AOI, [clear], out, BANDS, res_m=20.0)
    assert coarser.records[0].outcome == "written"
    with rasterio.open(out / coarser.records[0].path) as src:
        assert src.res == (20.0, 20.0)


def test_tiles_of_one_datatake_are_mosaicked_into_one_file(tmp_path):
    sample = get_sample(SAMPLE)
    with rasterio.open(sample.path) as src:
        dn, profile = src.read(), src.profile
    halves = []
    for name, cols in (("west", slice(0, 200)), ("east", slice(200, 400))):
        part = np.zeros_like(dn)
        part[:, :, cols] = dn[:, :, cols]
        path = tmp_path / f"{name}.tif"
        with rasterio.open(path, "w", **{**profile, "driver": "GTiff"}) as dst:
            dst.write(part)
            dst.descriptions = BANDS
        halves.append(path)
    base = sample_scene(SAMPLE)
    west = replace(base, id="T36JTM", assets={b: Asset(str(halves[0]), b) for b in BANDS})
    east = replace(base, id="T36JUM", datetime=base.datetime + timedelta(seconds=20),
                   assets={b: Asset(str(halves[1]), b) for b in BANDS})
    result = fetch(AOI, [west, east], tmp_path / "out", BANDS)
    assert len(result.records) == 1
    record = result.records[0]
    assert record.scene_ids == ("T36JTM", "T36JUM") and record.valid_fraction == 1.0
    whole = fetch(AOI, [base], tmp_path / "whole", BANDS).records[0]
    np.testing.assert_array_equal(open_raster(tmp_path / "out" / record.path).data,
                                  open_raster(tmp_path / "whole" / whole.path).data)


def test_cli_fetch_on_the_bundled_samples(tmp_path, capsys):
    west, south, east, north = AOI.bbox
    args = ["fetch", "--aoi", f"{west},{south},{east},{north}", "--start", "2023-08-21",
            "--end", "2023-08-21", "--source", "samples", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "c"), "--json"]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["counts"]["written"] == 1
    assert result["acquisitions"][0]["scene_ids"] == [SAMPLE]


@pytest.mark.parametrize("aoi, bands, expected", [
    ("not-an-aoi", "B02,B03,B04,B08", "not-an-aoi"),
    ("31.005,-29.885,31.03,-29.862", "B02,B99", "B99"),
])
def test_cli_fetch_bad_input_is_one_line_and_exit_2(tmp_path, capsys, aoi, bands, expected):
    with pytest.raises(SystemExit) as e:
        main(["fetch", "--aoi", aoi, "--start", "2023-08-21", "--end", "2023-08-21", "--bands", bands,
              "--source", "samples", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harborwatch: error:") and "\n" not in err and expected in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_l1c_acquisition_is_screened_with_s2cloudless(tmp_path):
    from pyproj import Transformer

    from imagery.clouds import S2CLOUDLESS_BANDS
    from imagery.types import Scene

    # 1.2 km of dark water at 20 m with a bright flat cloud over its middle third (TOA reflectance)
    cloud = dict(zip(S2CLOUDLESS_BANDS, [0.55, 0.55, 0.56, 0.57, 0.60, 0.60, 0.35, 0.12, 0.45, 0.35],
                     strict=True))
    water = dict(zip(S2CLOUDLESS_BANDS, [0.10, 0.08, 0.04, 0.03, 0.02, 0.015, 0.005, 0.001, 0.01, 0.005],
                     strict=True))
    cloud["B03"], water["B03"] = 0.55, 0.06
    transform = rasterio.transform.from_origin(250020, 4178460, 20, 20)
    assets = {}
    for band in cloud:
        dn = np.full((90, 90), round(water[band] * 10000), np.uint16)
        dn[30:60, 30:60] = round(cloud[band] * 10000)
        path = tmp_path / f"T51SWD_{band}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=90, height=90, count=1, dtype="uint16",
                           crs="EPSG:32651", transform=transform, nodata=0) as dst:
            dst.write(dn, 1)
        assets[band] = Asset(str(path), band)
    scene = Scene("S2A_MSIL1C_20180520", "local", "sentinel-2-l1c", get_sample(SAMPLE).datetime,
                  "sentinel-2a", "L1C", None, None, assets)
    to_ll = Transformer.from_crs("EPSG:32651", "EPSG:4326", always_xy=True)
    aoi = Aoi("l1c-water", "custom", box(*to_ll.transform(250020, 4178460 - 1800),
                                         *to_ll.transform(250020 + 1800, 4178460)))
    record = fetch(aoi, [scene], tmp_path / "out", BANDS, max_cloud=0.05).records[0]
    assert record.outcome == "written" and record.cloud_method == "s2cloudless"
    # the cloud covers 1/9 of the AOI; s2cloudless dilates its mask by 120 m
    assert record.status == "cloudy" and 0.09 < record.cloud_fraction < 0.35, record
