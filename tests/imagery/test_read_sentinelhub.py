"""Sentinel Hub (Copernicus Data Space) reads: the Process API request we build, and parsing its answer."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import numpy as np
import pytest
from shapely.geometry import box

from imagery.aoi import Aoi
from imagery.cache import Cache
from imagery.errors import CredentialsError, InputError
from imagery.read import read_sentinelhub, read_window, sentinelhub_evalscript, sentinelhub_request
from imagery.types import Asset, Scene

LONGKOU = Aoi("longkou-test", "port", box(120.20, 37.60, 120.36, 37.72))
WHEN = datetime(2018, 5, 20, 2, 41, 2, tzinfo=timezone.utc)
SERVICE = "https://sh.dataspace.copernicus.eu"


def _scene(bands=("B02", "B04", "SCL"), collection="sentinel-2-l2a") -> Scene:
    def request(band: str) -> dict:
        return {
            "api": "process", "service_url": SERVICE, "process_url": f"{SERVICE}/api/v1/process",
            "data_collection": collection, "data_collection_name": "SENTINEL2_L2A",
            "time_interval": ("2018-05-20T02:40:02+00:00", "2018-05-20T02:42:02+00:00"),
            "band": band, "units": "DN" if band == "SCL" else "REFLECTANCE", "harmonize_values": True,
        }

    return Scene(
        id="S2A_MSIL2A_20180520T024541_N0208_R132_T51SWD", source="sentinelhub", collection=collection,
        datetime=WHEN, platform="sentinel-2a", processing_level="L2A", cloud_cover=12.0,
        footprint=LONGKOU.geometry,
        assets={b: Asset(href=f"{SERVICE}/api/v1/process#{collection}/x/{b}", band=b, scale=1.0, nodata=None,
                         request=request(b)) for b in bands},
        crs="EPSG:32651",
    )


def _config():
    from sentinelhub import SHConfig

    cfg = SHConfig(use_defaults=True)
    cfg.sh_client_id, cfg.sh_client_secret, cfg.sh_base_url = "test-id", "test-secret", SERVICE
    return cfg


def test_request_asks_for_the_exact_grid_as_float32_reflectance():
    grid = LONGKOU.grid()
    req = sentinelhub_request(_scene(), grid, ["B02", "B04", "SCL"], _config())
    payload = req.payload
    bounds = payload["input"]["bounds"]
    assert bounds["bbox"] == list(grid.bounds)
    assert bounds["properties"]["crs"].endswith("/EPSG/0/32651")
    assert (payload["output"]["width"], payload["output"]["height"]) == (grid.width, grid.height)
    data = payload["input"]["data"][0]
    assert data["type"] == "sentinel-2-l2a"
    assert data["dataFilter"]["timeRange"] == {"from": "2018-05-20T02:40:02Z", "to": "2018-05-20T02:42:02Z"}
    assert data["processing"]["harmonizeValues"] is True
    script = payload["evalscript"]
    assert script.startswith("//VERSION=3")
    assert '"B02", "B04", "SCL", "dataMask"' in script
    assert '"REFLECTANCE", "REFLECTANCE", "DN", "DN"' in script
    assert 'sampleType: "FLOAT32"' in script and "bands: 4" in script
    assert req.download_list[0].url == f"{SERVICE}/api/v1/process"


def test_evalscript_returns_bands_in_order_then_datamask():
    script = sentinelhub_evalscript(["B08", "B03"])
    assert "return [s.B08, s.B03, s.dataMask];" in script
    assert json.dumps(["REFLECTANCE", "REFLECTANCE", "DN"]) in script


def test_grid_too_large_for_one_process_request_is_an_input_error():
    big = Aoi("big", "custom", box(120.0, 37.5, 120.4, 37.8))
    with pytest.raises(InputError, match="2500 pixels a side"):
        sentinelhub_request(_scene(), big.grid(), ["B04"], _config())


def test_response_is_parsed_with_datamask_as_nodata(monkeypatch):
    from sentinelhub import SentinelHubRequest

    grid = LONGKOU.grid(res_m=60.0)
    h, w = grid.shape
    answer = np.zeros((h, w, 3), np.float32)
    answer[..., 0] = 0.12
    answer[0, 0, 0] = -0.01  # harmonised L2A can dip below zero
    answer[..., 1] = 8  # SCL cloud (medium probability)
    answer[..., 2] = 1
    answer[:, : w // 2, 2] = 0  # no data in the western half
    monkeypatch.setattr(SentinelHubRequest, "get_data", lambda self, **kw: [answer])
    out = read_sentinelhub(_scene(), grid, ["B04", "SCL"], _config())
    assert np.isnan(out["B04"][:, : w // 2]).all()
    assert np.allclose(out["B04"][1:, w // 2 :], 0.12)
    assert out["SCL"].dtype == np.uint8 and (out["SCL"][:, : w // 2] == 0).all()
    assert (out["SCL"][:, w // 2 :] == 8).all()


def test_read_window_sends_process_api_assets_to_sentinelhub_and_caches(monkeypatch, tmp_path):
    calls = []

    def fake(scene, grid, bands, config=None):
        calls.append(tuple(bands))
        return {b: np.full(grid.shape, 0.2 if b != "SCL" else 4, np.float32) for b in bands}

    monkeypatch.setattr("imagery.read.read_sentinelhub", fake)
    cache = Cache(tmp_path)
    grid = LONGKOU.grid(res_m=60.0)
    first = read_window(_scene(), grid, ["B02", "SCL"], cache=cache)
    again = read_window(_scene(), grid, ["B02", "SCL"], cache=cache)
    assert calls == [("B02", "SCL")]  # one request for all bands; the rerun came from the cache
    np.testing.assert_array_equal(first.data, again.data)
    assert first.valid_mask.all()


def test_missing_credentials_is_a_one_line_credentials_error(monkeypatch, tmp_path):
    for var in ("SH_CLIENT_ID", "SH_CLIENT_SECRET", "HARBORWATCH_CDSE_CLIENT_ID",
                "HARBORWATCH_CDSE_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HARBORWATCH_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(CredentialsError) as e:
        read_window(_scene(), LONGKOU.grid(res_m=60.0), ["B04"])
    assert "SH_CLIENT_ID" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.network
def test_live_process_api_read_over_longkou():
    if not (os.environ.get("SH_CLIENT_ID") or os.environ.get("HARBORWATCH_CDSE_CLIENT_ID")):
        pytest.skip("needs CDSE credentials")
    window = read_window(_scene(bands=("B04", "SCL")), LONGKOU.grid(res_m=60.0), ["B04", "SCL"])
    assert window.valid_fraction > 0.5
    assert 0.0 <= float(np.nanmedian(window.band("B04"))) < 0.5
