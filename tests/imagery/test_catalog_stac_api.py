"""Any STAC API as a source (``--source stac:URL``): band mapping from keys, common names, ``eo:bands``
and ``raster:bands``, and ``harborwatch search`` / ``run`` end to end against a local replay of recorded
Earth Search v1 responses, with the COGs served by the range server."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

from imagery.catalog import get_catalog
from imagery.errors import InputError
from imagery.sources.stac_api import StacApiCatalog, asset_band

try:
    from test_catalog_stac import ES, ES_2020, ES_L2A, ES_URL, PC, PC_S2, StacApi, load
except ImportError:  # tests/imagery is a package
    from .test_catalog_stac import ES, ES_2020, ES_L2A, ES_URL, PC, PC_S2, StacApi, load

from tests.rangeserver import RangeServer

COGS = Path(__file__).resolve().parents[1] / "fixtures" / "cog" / "S2A_29RKH_20200219_0_L2A"
#: Inside the 12.8 km crop of tile 29RKH that tests/fixtures/cog holds.
AOI_BBOX = "-11.06,25.07,-10.99,25.13"


def test_stac_source_is_chosen_by_prefix_and_needs_an_http_url():
    cat = get_catalog("stac:http://127.0.0.1:9/v1")
    assert isinstance(cat, StacApiCatalog) and cat.url == "http://127.0.0.1:9/v1"
    with pytest.raises(InputError, match="STAC API"):
        get_catalog("stac:not-a-url")


@pytest.mark.parametrize(
    ("key", "asset", "band"),
    [
        ("red", {"href": "x.tif"}, "B04"),
        ("B8A", {"href": "x.tif"}, "B8A"),
        ("B8A_20m", {"href": "x.tif"}, "B8A"),
        ("b4", {"href": "x.tif"}, "B04"),
        ("vv", {"href": "x.tif"}, "VV"),
        ("band-7", {"href": "x.tif", "eo:bands": [{"name": "B08"}]}, "B08"),
        ("data-3", {"href": "x.tif", "eo:bands": [{"name": "x", "common_name": "swir16"}]}, "B11"),
        ("data-4", {"href": "x.tif", "bands": [{"name": "y", "eo:common_name": "blue"}]}, "B02"),
    ],
)
def test_band_comes_from_key_common_name_or_eo_bands(key, asset, band):
    assert asset_band(key, asset)[0] == band


def test_visual_metadata_and_jp2_twins_are_not_bands():
    visual = {"href": "v.tif", "eo:bands": [{"common_name": c} for c in ("red", "green", "blue")]}
    assert asset_band("visual", visual) is None
    assert asset_band("red-jp2", {"href": "s3://b/x.jp2"}) is None
    assert asset_band("granule_metadata", {"href": "m.xml", "type": "application/xml"}) is None


def test_recorded_earth_search_and_planetary_computer_items_read_as_scenes():
    es = StacApiCatalog("http://127.0.0.1:9/v1").item_to_scene(load(ES / "items" / ES_L2A))
    assert es.source == "stac" and es.processing_level == "L2A"
    assert {"B02", "B03", "B04", "B08", "B11", "SCL"} <= set(es.bands)
    assert all(a.href.startswith("https://") for a in es.assets.values())  # COGs, not the s3 JP2 twins
    assert es.assets["B04"].scale == pytest.approx(1e-4)
    pc = StacApiCatalog("http://127.0.0.1:9/v1").item_to_scene(load(PC / "items" / PC_S2))
    assert {"B02", "B03", "B04", "B08", "SCL"} <= set(pc.bands)
    assert pc.assets["B04"].offset_dn == -1000.0  # baseline >= 04.00, no raster:bands: ESA's rule


def test_anonymous_s3_hrefs_are_kept():
    item = load(ES / "items" / ES_L2A)
    item = copy.deepcopy(item)
    item["assets"]["red"]["href"] = "s3://some-open-bucket/tile/B04.tif"
    scene = StacApiCatalog("http://127.0.0.1:9/v1").item_to_scene(item)
    assert scene.assets["B04"].href == "s3://some-open-bucket/tile/B04.tif"


def replay_item(cogs: RangeServer) -> dict:
    """The recorded 2020 Earth Search item, its red/nir/scl assets pointed at the served COG crops
    (the other assets, on the public bucket, are dropped: nothing here reaches the network)."""
    item = copy.deepcopy(load(ES / "items" / ES_2020))
    files = {"red": "B04.tif", "nir": "B08.tif", "scl": "SCL.tif"}
    item["assets"] = {k: {**item["assets"][k], "href": cogs.url(f)} for k, f in files.items()}
    return item


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from detect.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def test_search_and_run_through_the_cli_against_a_local_stac_replay(tmp_path, capsys):
    with RangeServer(COGS) as cogs:
        item = replay_item(cogs)
        with StacApi(ES / "landing.json", ES_URL, [item]) as api:
            source = f"stac:{api.url}"
            rc, out, err = run_cli(
                [
                    "search",
                    "--aoi",
                    AOI_BBOX,
                    "--start",
                    "2020-02-19",
                    "--end",
                    "2020-02-19",
                    "--source",
                    source,
                    "--collection",
                    "sentinel-2-l2a",
                    "--json",
                ],
                capsys,
            )
            assert rc == 0, err
            [found] = json.loads(out)
            assert found["id"] == "S2A_29RKH_20200219_0_L2A"
            run_dir = tmp_path / "run"
            rc, out, err = run_cli(
                [
                    "run",
                    "--aoi",
                    AOI_BBOX,
                    "--start",
                    "2020-02-19",
                    "--end",
                    "2020-02-19",
                    "--source",
                    source,
                    "--collection",
                    "sentinel-2-l2a",
                    "--method",
                    "baseline",
                    "--out",
                    str(run_dir),
                    "--json",
                ],
                capsys,
            )
            assert rc == 0, err
    assert api.search_bodies and api.search_bodies[0]["collections"] == ["sentinel-2-l2a"]
    assert any(r.range for r in cogs.requests)  # pixels came as ranged reads of the served COGs
    scenes = pd.read_csv(run_dir / "scenes.csv")
    assert list(scenes["scene"]) == ["S2A_29RKH_20200219_0_L2A"]
    assert (scenes["source"].iloc[0], scenes["status"].iloc[0]) == ("stac", "clear")  # SCL read too
    daily = pd.read_csv(run_dir / "daily_counts.csv")
    assert list(daily["date"]) == ["2020-02-19"] and list(daily["status"]) == ["observed"]
