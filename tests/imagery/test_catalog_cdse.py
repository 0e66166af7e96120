"""Copernicus Data Space via sentinelhub, against a 127.0.0.1 server mimicking the token and Catalog APIs."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from shapely.geometry import box

from imagery.aoi import Aoi
from imagery.catalog import get_catalog
from imagery.config import load_cdse_credentials
from imagery.errors import CatalogError, CredentialsError
from imagery.http import RetryPolicy
from imagery.sources.cdse import SentinelHubCatalogSource

try:
    from test_http import ScriptedServer
except ImportError:  # tests/imagery is a package
    from .test_http import ScriptedServer  # type: ignore[no-redef]

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/stac/sentinel-hub/catalog_search_s2l2a.json"
SECRET = "cdse-secret-0123456789"
TOKEN = "header.eyJzdWIiOiJ0ZXN0In0.signature"
AOI = Aoi(name="tyrrhenian", kind="custom", geometry=box(12.0, 41.0, 12.1, 41.1))
TINY = RetryPolicy(retries=1, backoff_s=0.001, timeout_s=5.0)


class ShApi(ScriptedServer):
    def __init__(self, token_status: int = 200, search_status: int = 200) -> None:
        self.token_status, self.search_status = token_status, search_status
        self.search_bodies: list[dict] = []
        self.token_forms: list[dict] = []
        super().__init__(self._route)

    def _route(self, method, path, body):
        route = urlsplit(path).path
        if route == "/oauth/token" and method == "POST":
            self.token_forms.append({k: v[0] for k, v in parse_qs(body.decode()).items()})
            if self.token_status != 200:
                err = {"error": "unauthorized_client", "error_description": "Invalid client secret"}
                return self.token_status, {}, json.dumps(err).encode()
            token = {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}
            return 200, {}, json.dumps(token).encode()
        if route == "/api/v1/catalog/1.0.0/search" and method == "POST":
            if self.search_status != 200:
                return self.search_status, {}, json.dumps(
                    {"error": {"status": 400, "reason": "Bad Request", "message": "Invalid filter"}}).encode()
            self.search_bodies.append(json.loads(body))
            return 200, {}, FIXTURE.read_bytes()
        return 404, {}, b'{"error": "not found"}'


@pytest.fixture
def insecure_oauth(monkeypatch):
    # oauthlib refuses plain-http token URLs; the test server is http on 127.0.0.1.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def source(srv: ShApi) -> SentinelHubCatalogSource:
    return SentinelHubCatalogSource("test-client-id", SECRET, base_url=srv.url,
                                    token_url=srv.url + "/oauth/token", retry=TINY)


def test_catalog_search_returns_scenes_with_process_api_assets(insecure_oauth):
    with ShApi() as srv:
        scenes = source(srv).search(AOI, "2020-04-01", "2020-05-31", collection="sentinel-2-l2a",
                                    max_cloud=20)
    [form] = srv.token_forms
    assert form["grant_type"] == "client_credentials" and form["client_id"] == "test-client-id"
    [body] = srv.search_bodies
    assert body["collections"] == ["sentinel-2-l2a"]
    assert body["datetime"].startswith("2020-04-01T00:00:00") and body["datetime"].split("/")[1].startswith(
        "2020-05-31T23:59:59")
    assert body["intersects"]["type"] == "Polygon"
    assert "eo:cloud_cover <= 20" in body["filter"]
    search_headers = srv.headers[-1]
    assert search_headers.get("Authorization") == f"Bearer {TOKEN}"

    [s] = scenes
    assert s.id == "S2B_MSIL2A_20200430T100019_N0214_R122_T33TTF_20200430T131222"
    assert s.source == "sentinelhub" and s.collection == "sentinel-2-l2a"
    assert s.datetime == datetime(2020, 4, 30, 10, 9, 22, tzinfo=timezone.utc)
    assert (s.platform, s.processing_level) == ("sentinel-2b", "L2A")
    assert (s.crs, s.processing_baseline) == ("EPSG:32633", "02.14")
    assert s.cloud_cover == pytest.approx(6.76)
    assert s.footprint.geom_type == "MultiPolygon" and s.properties["aoi_coverage"] == pytest.approx(1.0)
    b04 = s.assets["B04"]
    assert b04.offset_dn == 0 and b04.scale == 1.0  # Sentinel Hub returns harmonised reflectance
    req = b04.request
    assert req["api"] == "process" and req["band"] == "B04" and req["units"] == "REFLECTANCE"
    assert req["data_collection"] == "sentinel-2-l2a" and req["service_url"] == srv.url
    t0, t1 = (datetime.fromisoformat(t) for t in req["time_interval"])
    assert t0 < s.datetime < t1
    assert "SCL" in s.assets and "B10" not in s.assets


def test_rejected_client_is_a_one_line_credentials_error_without_the_secret(insecure_oauth):
    with ShApi(token_status=401) as srv, pytest.raises(CredentialsError) as err:
        source(srv).search(AOI, "2020-04-01", "2020-05-31", collection="sentinel-2-l2a")
    msg = str(err.value)
    assert "\n" not in msg and SECRET not in msg
    # no bare status code in the words (the local server's URL may hold "401" in its random port)
    words = re.sub(r"https?://\S+", "", msg)
    assert "rejected the OAuth client" in msg and "Invalid client secret" in msg and "401" not in words


def test_catalog_error_is_one_line(insecure_oauth):
    with ShApi(search_status=400) as srv, pytest.raises(CatalogError) as err:
        source(srv).search(AOI, "2020-04-01", "2020-05-31", collection="sentinel-2-l2a")
    assert "400" in str(err.value) and "\n" not in str(err.value)


def test_missing_credentials_fail_before_any_request(monkeypatch, tmp_path):
    for var in ("SH_CLIENT_ID", "SH_CLIENT_SECRET", "HARBORWATCH_CDSE_CLIENT_ID",
                "HARBORWATCH_CDSE_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HARBORWATCH_CONFIG", str(tmp_path / "none.toml"))
    cat = get_catalog("cdse")
    with pytest.raises(CredentialsError, match="SH_CLIENT_ID"):
        cat.search(AOI, "2018-05-01", "2018-06-30", collection="sentinel-2-l1c")


def test_source_repr_never_shows_the_secret(tmp_path):
    creds = load_cdse_credentials("test-client-id", SECRET, env={}, config_path=tmp_path / "none.toml")
    assert SECRET not in repr(SentinelHubCatalogSource(credentials=creds))


def test_sentinel1_scenes_ask_for_linear_power(insecure_oauth):
    src = SentinelHubCatalogSource("test-client-id", SECRET, base_url="http://127.0.0.1:9",
                                   token_url="http://127.0.0.1:9/t")
    feature = json.loads(FIXTURE.read_text())["features"][0]
    s = src.feature_to_scene(feature, "sentinel-1-grd")
    assert s.bands == ("VV", "VH") and s.assets["VV"].request["units"] == "LINEAR_POWER"
    assert s.processing_level == "GRD"
