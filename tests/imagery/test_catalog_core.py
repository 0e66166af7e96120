"""What every source shares: period parsing, coverage rules, AOI coverage, the factory and the CLI."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timezone

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from imagery.aoi import Aoi
from imagery.catalog import get_catalog, search
from imagery.errors import CoverageError, InputError
from imagery.sources.base import Catalog, aoi_coverage, check_coverage, parse_period
from imagery.sources.cdse import SentinelHubCatalogSource
from imagery.sources.earth_search import EarthSearchCatalog
from imagery.sources.local import LocalCatalog
from imagery.sources.planetary_computer import PlanetaryComputerCatalog

LONGKOU = Aoi(name="longkou", kind="port", geometry=box(120.20, 37.60, 120.36, 37.72))


def test_dates_are_whole_utc_days_with_inclusive_end():
    t0, t1 = parse_period("2018-05-01", "2018-06-30")
    assert t0 == datetime(2018, 5, 1, tzinfo=timezone.utc)
    assert t1 == datetime(2018, 6, 30, 23, 59, 59, 999999, tzinfo=timezone.utc)
    assert parse_period(date(2018, 5, 1), date(2018, 5, 1))[1].hour == 23
    naive = parse_period(datetime(2018, 5, 1, 12), datetime(2018, 5, 2, 12))[0]
    assert naive.tzinfo is not None and naive.hour == 12


def test_bad_dates_are_input_errors():
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        parse_period("2018-13-01", "2018-06-30")
    with pytest.raises(InputError, match="before start"):
        parse_period("2018-06-30", "2018-05-01")


def test_period_before_sentinel2_is_a_coverage_error():
    t0, t1 = parse_period("2014-01-01", "2015-01-01")
    with pytest.raises(CoverageError, match="2015-06-23"):
        check_coverage(LONGKOU, t0, t1, "sentinel-2-l1c", "earth-search")


def test_aoi_outside_sentinel2_latitudes_is_a_coverage_error():
    antarctic = Aoi(name="ross", kind="custom", geometry=box(170, -78, 171, -77))
    t0, t1 = parse_period("2020-01-01", "2020-02-01")
    with pytest.raises(CoverageError, match="56° S"):
        check_coverage(antarctic, t0, t1, "sentinel-2-l2a", "planetary-computer")
    check_coverage(antarctic, t0, t1, "sentinel-1-grd", "planetary-computer")  # SAR is not limited


def test_future_period_is_a_coverage_error():
    t0, t1 = parse_period("2099-01-01", "2099-01-02")
    with pytest.raises(CoverageError, match="future"):
        check_coverage(LONGKOU, t0, t1, "sentinel-2-l1c", "earth-search")


def test_2018_l2a_on_earth_search_warns_to_use_l1c(caplog):
    t0, t1 = parse_period("2018-05-01", "2018-06-30")
    with caplog.at_level(logging.WARNING, logger="imagery.catalog"):
        check_coverage(LONGKOU, t0, t1, "sentinel-2-l2a", "earth-search")
    assert "sentinel-2-l1c" in caplog.text and "December 2018" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imagery.catalog"):
        check_coverage(LONGKOU, t0, t1, "sentinel-2-l2a", "planetary-computer")  # PC has global L2A from 2016
    assert caplog.text == ""


def test_aoi_coverage_is_measured_in_utm():
    aoi = Aoi(name="sq", kind="custom", geometry=box(120.0, 37.0, 120.2, 37.2))
    assert aoi_coverage(aoi, box(119, 36, 121, 38)) == pytest.approx(1.0)
    assert aoi_coverage(aoi, box(120.1, 36, 121, 38)) == pytest.approx(0.5, abs=0.01)
    assert aoi_coverage(aoi, box(10, 10, 11, 11)) == 0.0


def test_factory_knows_every_source_and_alias(tmp_path):
    assert isinstance(get_catalog("earth-search"), EarthSearchCatalog)
    assert isinstance(get_catalog("planetary-computer"), PlanetaryComputerCatalog)
    assert isinstance(get_catalog("pc"), PlanetaryComputerCatalog)
    assert isinstance(get_catalog("sentinelhub"), SentinelHubCatalogSource)
    assert isinstance(get_catalog("cdse"), SentinelHubCatalogSource)
    local = get_catalog(f"local:{tmp_path}")
    assert isinstance(local, LocalCatalog)
    for cat in (get_catalog("earth-search"), local):
        assert isinstance(cat, Catalog)
    with pytest.raises(InputError, match="planetary-computer"):
        get_catalog("landsatlook")
    gcp = get_catalog("earth-search:gcp")
    assert isinstance(gcp, EarthSearchCatalog) and gcp.l1c_hrefs == "gcp"
    with pytest.raises(InputError, match="unknown source"):
        get_catalog("planetary-computer:gcp")


def _write_chip(folder, when: str) -> None:
    folder.mkdir(parents=True)
    # 1 km at 10 m in UTM 51N on the Longkou coal docks.
    profile = {"driver": "GTiff", "width": 100, "height": 100, "count": 2, "dtype": "uint16",
               "crs": "EPSG:32651", "transform": Affine(10, 0, 259600, 0, -10, 4171040)}
    with rasterio.open(folder / "chip.tif", "w", **profile) as dst:
        dst.write(np.full((2, 100, 100), 500, np.uint16))
        dst.set_band_description(1, "B04")
        dst.set_band_description(2, "B08")
    sidecar = {"id": folder.name, "datetime": when, "platform": "sentinel-2a", "processing_level": "L1C",
               "cloud_cover": 20}
    (folder / "scene.json").write_text(json.dumps(sidecar))


def test_top_level_search_accepts_an_aoi_spec(tmp_path):
    _write_chip(tmp_path / "a", "2018-05-20T02:33:21Z")
    scenes = search("120.27,37.64,120.29,37.66", "2018-05-01", "2018-06-30", collection="sentinel-2-l1c",
                    source=f"local:{tmp_path}", max_cloud=60)
    assert [s.id for s in scenes] == ["a"] and 0 < scenes[0].properties["aoi_coverage"] < 1


def _run_cli(argv, capsys):
    from detect.cli import main

    with pytest.raises(SystemExit) as code:
        main(argv)
    out = capsys.readouterr()
    return code.value.code, out.out, out.err


def test_cli_search_json_lists_acquisitions(tmp_path, capsys):
    _write_chip(tmp_path / "a", "2018-05-20T02:33:21Z")
    _write_chip(tmp_path / "b", "2018-06-04T02:33:19Z")
    rc, out, _ = _run_cli(["search", "--aoi", "120.27,37.64,120.29,37.66", "--start", "2018-05-01",
                           "--end", "2018-06-30", "--collection", "sentinel-2-l1c", "--max-cloud", "60",
                           "--source", f"local:{tmp_path}", "--json"], capsys)
    assert rc == 0
    rows = json.loads(out)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[0]["datetime"] == "2018-05-20T02:33:21Z" and rows[0]["processing_level"] == "L1C"
    assert rows[0]["cloud_cover_pct"] == 20 and 0 < rows[0]["aoi_coverage_pct"] < 100


def test_cli_search_human_table_and_limit(tmp_path, capsys):
    _write_chip(tmp_path / "a", "2018-05-20T02:33:21Z")
    _write_chip(tmp_path / "b", "2018-06-04T02:33:19Z")
    rc, out, _ = _run_cli(["search", "--aoi", "120.27,37.64,120.29,37.66", "--start", "2018-05-01",
                           "--end", "2018-06-30", "--collection", "sentinel-2-l1c", "--limit", "1",
                           "--source", f"local:{tmp_path}"], capsys)
    assert rc == 0
    lines = out.strip().splitlines()
    assert "tile cloud%" in lines[0] and len(lines) == 2 and lines[1].startswith("2018-05-20T02:33:21Z")


def test_cli_no_scenes_prints_a_message_and_exits_0(tmp_path, capsys):
    _write_chip(tmp_path / "a", "2018-05-20T02:33:21Z")
    rc, out, err = _run_cli(["search", "--aoi", "120.27,37.64,120.29,37.66", "--start", "2019-01-01",
                             "--end", "2019-01-31", "--collection", "sentinel-2-l1c",
                             "--source", f"local:{tmp_path}"], capsys)
    assert rc == 0 and out == "" and "no sentinel-2-l1c scenes" in err


def test_cli_coverage_error_is_one_line_exit_2(capsys):
    rc, _, err = _run_cli(["search", "--aoi", "120.27,37.64,120.29,37.66", "--start", "2014-01-01",
                             "--end", "2014-12-31", "--collection", "sentinel-2-l1c"], capsys)
    assert rc == 2 and "2015-06-23" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _write_scl_scene(folder, when: str, scl_value: int) -> None:
    folder.mkdir(parents=True)
    profile = {"driver": "GTiff", "width": 50, "height": 50, "count": 1, "dtype": "uint8", "nodata": 0,
               "crs": "EPSG:32651", "transform": Affine(20, 0, 259600, 0, -20, 4171040)}
    with rasterio.open(folder / f"{folder.name}_SCL.tif", "w", **profile) as dst:
        dst.write(np.full((1, 50, 50), scl_value, np.uint8))
    profile |= {"dtype": "uint16", "width": 100, "height": 100,
                "transform": Affine(10, 0, 259600, 0, -10, 4171040)}
    with rasterio.open(folder / f"{folder.name}_B04.tif", "w", **profile) as dst:
        dst.write(np.full((1, 100, 100), 800, np.uint16))
    sidecar = {"datetime": when, "platform": "sentinel-2a", "processing_level": "L2A", "cloud_cover": 50}
    (folder / "scene.json").write_text(json.dumps(sidecar))


def test_cli_aoi_clouds_reports_cloud_and_valid_fraction_over_the_aoi(tmp_path, capsys):
    _write_scl_scene(tmp_path / "cloudy", "2018-05-20T02:33:21Z", 9)  # SCL 9: cloud, high probability
    _write_scl_scene(tmp_path / "clear", "2018-06-04T02:33:19Z", 6)  # SCL 6: water
    rc, out, _ = _run_cli(["search", "--aoi", "120.276,37.648,120.282,37.652", "--start", "2018-05-01",
                           "--end", "2018-06-30", "--collection", "sentinel-2-l2a", "--aoi-clouds",
                           "--source", f"local:{tmp_path}", "--json"], capsys)
    assert rc == 0
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["cloudy"]["aoi_cloud_pct"] == 100.0 and rows["clear"]["aoi_cloud_pct"] == 0.0
    assert rows["clear"]["aoi_valid_pct"] == 100.0


def test_cli_aoi_clouds_of_a_scene_without_a_cloud_mask_says_valid_unknown_not_zero(capsys):
    """A scene with neither SCL nor the s2cloudless bands read nothing, yet its AOI valid share printed as
    0.0 % (the screen's placeholder) while `run` measured it as 100 %."""
    rc, out, _ = _run_cli(["search", "--aoi", "8.8776,44.3879,8.9239,44.4211", "--start", "2023-07-10",
                           "--end", "2023-07-10", "--source", "samples", "--aoi-clouds", "--json"], capsys)
    assert rc == 0
    (row,) = json.loads(out)
    assert row["cloud_status"] == "unknown" and row["aoi_valid_pct"] is None and row["aoi_cloud_pct"] is None
