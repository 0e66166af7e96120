"""Earth Search and Planetary Computer sources against recorded real responses served from 127.0.0.1."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from shapely.geometry import box, shape

from imagery.aoi import Aoi
from imagery.catalog import get_catalog
from imagery.errors import CatalogError, CredentialsError, RateLimitError
from imagery.http import RetryPolicy, make_session
from imagery.sources.access import ensure_readable
from imagery.sources.earth_search import EarthSearchCatalog, gcp_l1c_hrefs, granule_dir
from imagery.sources.planetary_computer import PlanetaryComputerCatalog, SasSigner
from imagery.types import Asset

try:
    from test_http import ScriptedServer
except ImportError:  # tests/imagery is a package
    from .test_http import ScriptedServer  # type: ignore[no-redef]

STAC = Path(__file__).resolve().parents[1] / "fixtures" / "stac"
ES = STAC / "earth-search-v1"
PC = STAC / "planetary-computer"
ES_URL = "https://earth-search.aws.element84.com/v1"
PC_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
DAY = ("2025-07-31", "2025-07-31")
TINY = RetryPolicy(retries=3, backoff_s=0.001, backoff_max_s=0.002, timeout_s=5.0)

ES_L2A = "sentinel-2-l2a__S2B_24MUV_20250731_0_L2A.json"
ES_L1C = "sentinel-2-l1c__S2B_24MUV_20250731_0_L1C.json"
ES_C1 = "sentinel-2-c1-l2a__S2B_T24MUV_20250731T130245_L2A.json"
ES_S1 = "sentinel-1-grd__S1A_IW_GRDH_1SSH_20250731T135702_20250731T135722_060328_077F7E.json"
ES_2020 = "static-item__sentinel-2-l2a__S2A_29RKH_20200219_0_L2A.json"
PC_S2 = "sentinel-2-l2a__S2B_MSIL2A_20250312T014549_R074_T53NKG_20250312T041213.json"
PC_S1 = "sentinel-1-grd__S1A_IW_GRDH_1SDV_20250312T052236_20250312T052301_058267_073394.json"
PC_2019 = "odc-stac__S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json"
PC_2015 = "sentinel-2-l2a__S2A_MSIL2A_20150704T101006_R022_T35XQA_20210411T133707.json"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def aoi_inside(item: dict, half_deg: float = 0.01, name: str = "test") -> Aoi:
    """A small AOI around a point inside the item's footprint."""
    p = shape(item["geometry"]).representative_point()
    return Aoi(name=name, kind="custom", geometry=box(p.x - half_deg, p.y - half_deg, p.x + half_deg,
                                                      p.y + half_deg))


class StacApi(ScriptedServer):
    """A STAC API on 127.0.0.1: the recorded landing page (links rewritten), /conformance, /search
    answering with the given items (by collection; the server ignores geometry, time and query as
    some real servers do), and the PC SAS token endpoint. ``fail`` scripts error answers for /search."""

    def __init__(self, landing: Path, real_url: str, items: list[dict], fail: list | None = None,
                 sas_body: bytes | None = None, page_size: int | None = None) -> None:
        self.items = items
        self.page_size = page_size
        self.fail = list(fail or [])
        self.search_bodies: list[dict] = []
        self.sas_calls: list[str] = []
        self._landing_text = landing.read_text(encoding="utf-8")
        self._real = real_url
        self._sas = sas_body
        super().__init__(self._route)

    def _route(self, method: str, path: str, body: bytes):
        route = urlsplit(path).path.rstrip("/")
        if route == "":
            text = self._landing_text.replace(self._real, self.url)
            return 200, {}, text.encode()
        if route == "/conformance":
            return 200, {}, json.dumps({"conformsTo": json.loads(self._landing_text)["conformsTo"]}).encode()
        if route == "/search":
            if self.fail:
                return self.fail.pop(0)
            params = json.loads(body or b"{}")
            self.search_bodies.append(params)
            wanted = params.get("collections")
            feats = [i for i in self.items if not wanted or i.get("collection") in wanted]
            links = []
            if self.page_size:  # Earth Search style: POST "next" link whose body carries the cursor
                start = int(params.get("next", 0))
                stop = start + self.page_size
                if stop < len(feats):
                    links.append({"rel": "next", "method": "POST", "merge": False,
                                  "href": f"{self.url}/search", "body": {"next": str(stop)}})
                feats = feats[start:start + self.page_size]
            page = {"type": "FeatureCollection", "features": feats, "links": links}
            return 200, {}, json.dumps(page).encode()
        if route.startswith("/api/sas/v1/token/") and self._sas is not None:
            self.sas_calls.append(route)
            return 200, {}, self._sas
        return 404, {}, json.dumps({"code": "NotFound", "description": f"{route} not found"}).encode()


def es_catalog(srv: StacApi, **kw) -> EarthSearchCatalog:
    return get_catalog("earth-search", url=srv.url, session=make_session(TINY), **kw)  # type: ignore[return-value]


# -- Earth Search ------------------------------------------------------------------------------------

def test_earth_search_l2a_maps_common_names_to_sentinel_bands_and_reads_metadata():
    item = load(ES / "items" / ES_L2A)
    aoi = aoi_inside(item)
    with StacApi(ES / "landing.json", ES_URL, [item]) as srv:
        scenes = es_catalog(srv).search(aoi, "2025-07-31", "2025-07-31", collection="sentinel-2-l2a",
                                        max_cloud=60)
    body = srv.search_bodies[0]
    assert body["collections"] == ["sentinel-2-l2a"]
    assert body["intersects"]["type"] == "Polygon"
    assert body["datetime"] == "2025-07-31T00:00:00.000Z/2025-07-31T23:59:59.999Z"
    assert body["query"] == {"eo:cloud_cover": {"lte": 60}}
    [s] = scenes
    assert s.id == "S2B_24MUV_20250731_0_L2A" and s.source == "earth-search"
    assert s.datetime == datetime(2025, 7, 31, 13, 3, 27, 58000, tzinfo=timezone.utc)
    assert (s.platform, s.processing_level) == ("sentinel-2b", "L2A")
    assert (s.crs, s.processing_baseline) == ("EPSG:32724", "05.11")
    assert s.cloud_cover == pytest.approx(56.813848)
    assert s.bands == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
                       "SCL")
    assert s.assets["B04"].href.endswith("/S2B_24MUV_20250731_0_L2A/B04.tif")
    assert s.assets["B8A"].href.endswith("/B8A.tif") and s.assets["SCL"].href.endswith("/SCL.tif")
    # no requester-pays *-jp2 twins
    assert all(a.href.startswith("https://sentinel-cogs.") for a in s.assets.values())
    assert s.footprint.bounds == pytest.approx((-40.363, -4.7493, -39.8131, -4.5222), abs=1e-3)
    assert s.properties["aoi_coverage"] == pytest.approx(1.0)
    assert s.properties["boa_offset_applied"] is True


def test_offsets_follow_baseline_and_earth_search_flag():
    items = {name: load(ES / "items" / name) for name in (ES_L2A, ES_2020, ES_C1, ES_L1C)}
    es = EarthSearchCatalog(url="http://unused.invalid")
    # 05.11 with the BOA offset already removed by Element 84: nothing to add.
    l2a = es.item_to_scene(items[ES_L2A], "sentinel-2-l2a")
    assert l2a.assets["B04"].offset_dn == 0 and l2a.assets["B04"].scale == pytest.approx(1e-4)
    # The same 05.11 item had the offset NOT been removed (flag false): -1000, although raster:bands says -0.1
    # either way (Element84/earth-search#9).
    flipped = copy.deepcopy(items[ES_L2A])
    flipped["properties"]["earthsearch:boa_offset_applied"] = False
    assert es.item_to_scene(flipped, "sentinel-2-l2a").assets["B04"].offset_dn == -1000
    # 2020, baseline 02.14, flag false: no offset.
    old = es.item_to_scene(items[ES_2020], "sentinel-2-l2a")
    assert old.processing_baseline == "02.14" and old.assets["B04"].offset_dn == 0
    # Collection-1 L2A declares offset -0.1 / scale 1e-4 in raster:bands.
    c1 = es.item_to_scene(items[ES_C1], "sentinel-2-c1-l2a")
    assert c1.assets["B02"].offset_dn == -1000 and c1.assets["B02"].request["offset_rule"] == "raster:bands"
    # L1C 05.11: RADIO_ADD_OFFSET -1000; SCL never gets an offset or a reflectance scale.
    assert es.item_to_scene(items[ES_L1C], "sentinel-2-l1c").assets["B04"].offset_dn == -1000
    assert l2a.assets["SCL"].offset_dn == 0 and l2a.assets["SCL"].scale == 1.0


def test_earth_search_l1c_assets_are_requester_pays_with_a_clear_credentials_error():
    item = load(ES / "items" / ES_L1C)
    with StacApi(ES / "landing.json", ES_URL, [item]) as srv:
        [s] = es_catalog(srv).search(aoi_inside(item), "2025-07-01", "2025-07-31",
                                     collection="sentinel-2-l1c")
    assert s.processing_level == "L1C" and "B10" in s.assets and "SCL" not in s.assets
    assert s.assets["B04"].href == "s3://sentinel-s2-l1c/tiles/24/M/UV/2025/7/31/0/B04.jp2"
    assert s.properties["requester_pays"] is True
    with pytest.raises(CredentialsError) as err:
        ensure_readable(s.assets["B04"])
    msg = str(err.value)
    assert "requester-pays" in msg and "sentinelhub" in msg and "Google Cloud" in msg and "\n" not in msg
    assert "storage.googleapis.com/gcp-public-data-sentinel-2/tiles/24/M/UV/" in msg


def test_gcp_hrefs_built_from_recorded_earth_search_l1c_item():
    body = load(ES / "search_l1c_eodag.json")
    with StacApi(ES / "landing.json", ES_URL, body["features"]) as srv:
        [s] = es_catalog(srv, l1c_hrefs="gcp").search(aoi_inside(body["features"][0]), "2024-02-06",
                                                      "2024-02-06", collection="sentinel-2-l1c")
    assert s.assets["B04"].href == (
        "https://storage.googleapis.com/gcp-public-data-sentinel-2/tiles/27/V/WK/"
        "S2B_MSIL1C_20240206T131259_N0510_R081_T27VWK_20240206T133903.SAFE/GRANULE/"
        "L1C_T27VWK_A036143_20240206T131359/IMG_DATA/T27VWK_20240206T131259_B04.jp2"
    )
    assert s.assets["B04"].request["s3_href"] == "s3://sentinel-s2-l1c/tiles/27/V/WK/2024/2/6/0/B04.jp2"
    ensure_readable(s.assets["B04"])  # anonymous: no error
    assert s.assets["B8A"].href.endswith("_B8A.jp2") and s.assets["B10"].href.endswith("_B10.jp2")


def test_granule_folder_rule_matches_a_real_safe_path():
    # PC's 2015 L2A item links into its SAFE; the granule folder is
    # <level>_T<tile>_A<orbit>_<datastrip sensing start>.
    item = load(PC / "items" / PC_2015)
    href = item["assets"]["B04"]["href"]
    assert f"/GRANULE/{granule_dir(item['properties'], 'L2A')}/IMG_DATA/" in href


def test_gcp_builder_names_what_is_missing():
    props = dict(load(ES / "items" / ES_L1C)["properties"])
    props.pop("s2:datastrip_id")
    with pytest.raises(CatalogError, match="datastrip"):
        gcp_l1c_hrefs(props, ["B04"])
    with pytest.raises(CatalogError, match="product_uri"):
        gcp_l1c_hrefs({}, ["B04"])


def test_client_side_filters_drop_cloudy_out_of_period_and_disjoint_scenes():
    l2a, old = load(ES / "items" / ES_L2A), load(ES / "items" / ES_2020)
    aoi = aoi_inside(l2a)
    far = Aoi(name="far", kind="custom", geometry=box(100, 10, 100.1, 10.1))
    with StacApi(ES / "landing.json", ES_URL, [l2a, old]) as srv:
        es = es_catalog(srv)
        found = es.search(aoi, "2020-01-01", "2025-12-31", collection="sentinel-2-l2a")
        assert [s.id for s in found] == [l2a["id"]]
        assert es.search(aoi, "2020-01-01", "2025-12-31", collection="sentinel-2-l2a", max_cloud=50) == []
        assert es.search(aoi, "2025-08-01", "2025-08-31", collection="sentinel-2-l2a") == []
        assert es.search(far, "2020-01-01", "2025-12-31", collection="sentinel-2-l2a") == []


def test_pages_are_followed_through_earth_search_next_links():
    base = load(ES / "items" / ES_L2A)
    items = []
    for day in range(1, 6):
        it = copy.deepcopy(base)
        it["id"] = f"S2B_24MUV_202507{day:02d}_0_L2A"
        it["properties"]["datetime"] = f"2025-07-{day:02d}T13:03:27.058000Z"
        items.append(it)
    with StacApi(ES / "landing.json", ES_URL, items, page_size=2) as srv:
        scenes = es_catalog(srv).search(aoi_inside(base), "2025-07-01", "2025-07-31",
                                        collection="sentinel-2-l2a")
    assert [s.datetime.day for s in scenes] == [1, 2, 3, 4, 5]
    assert [b.get("next") for b in srv.search_bodies] == [None, "2", "4"]


def test_no_features_is_an_empty_list():
    with StacApi(ES / "landing.json", ES_URL, []) as srv:
        aoi = Aoi(name="x", kind="custom", geometry=box(-105.2, 40.1, -105.0, 40.2))
        assert es_catalog(srv).search(aoi, "2023-10-08", "2023-10-08", collection="sentinel-2-l2a") == []


def test_sentinel1_grd_on_earth_search():
    item = load(ES / "items" / ES_S1)
    with StacApi(ES / "landing.json", ES_URL, [item]) as srv:
        [s] = es_catalog(srv).search(aoi_inside(item), "2025-07-31", "2025-07-31",
                                     collection="sentinel-1-grd", max_cloud=10)
    assert s.processing_level == "GRD" and s.bands == ("HH",) and s.cloud_cover is None
    assert s.assets["HH"].scale == 1.0 and s.assets["HH"].offset_dn == 0
    with pytest.raises(CredentialsError, match="planetary-computer"):
        ensure_readable(s.assets["HH"])


def test_search_retries_503_through_pystac_client():
    item = load(ES / "items" / ES_L2A)
    with StacApi(ES / "landing.json", ES_URL, [item], fail=[(503, {}, b"{}"), (502, {}, b"{}")]) as srv:
        scenes = es_catalog(srv).search(aoi_inside(item), *DAY, collection="sentinel-2-l2a")
    assert len(scenes) == 1 and len(srv.search_bodies) == 1


def test_search_persistent_429_is_rate_limit_error():
    item = load(ES / "items" / ES_L2A)
    too_many = (429, {}, b'{"message": "Too Many Requests"}')
    with StacApi(ES / "landing.json", ES_URL, [item], fail=[too_many] * 10) as srv, \
            pytest.raises(RateLimitError):
        es_catalog(srv).search(aoi_inside(item), *DAY, collection="sentinel-2-l2a")


def test_search_400_is_one_line_catalog_error():
    item = load(ES / "items" / ES_L2A)
    bad = (400, {}, b'{"code": "BadRequest", "description": "Invalid intersects geometry"}')
    with StacApi(ES / "landing.json", ES_URL, [item], fail=[bad]) as srv, pytest.raises(CatalogError) as err:
        es_catalog(srv).search(aoi_inside(item), *DAY, collection="sentinel-2-l2a")
    assert "400" in str(err.value) and "Invalid intersects geometry" in str(err.value)
    assert "\n" not in str(err.value) and len(srv.search_bodies) == 0


def test_unknown_collection_names_the_choices():
    with pytest.raises(Exception, match="sentinel-2-c1-l2a"):
        EarthSearchCatalog(url="http://unused.invalid").search(
            Aoi(name="x", kind="custom", geometry=box(0, 0, 1, 1)), "2020-01-01", "2020-01-02",
            collection="landsat-c2-l2")


# -- Planetary Computer --------------------------------------------------------------------------------

def pc_api(items: list[dict]) -> StacApi:
    sas = (PC / "sas_token_sentinel2l2a01_sentinel2-l2.json").read_bytes()
    return StacApi(PC / "landing.json", PC_URL, items, sas_body=sas)


def test_planetary_computer_signs_hrefs_with_the_sas_token_once():
    item = load(PC / "items" / PC_S2)
    token = load(PC / "sas_token_sentinel2l2a01_sentinel2-l2.json")["token"]
    # The recorded token expired in 2024: pin the clock before it.
    clock = lambda: datetime(2024, 5, 14, 12, 0, tzinfo=timezone.utc)  # noqa: E731
    with pc_api([item]) as srv:
        session = make_session(TINY)
        signer = SasSigner(srv.url + "/api/sas/v1/token", session, now=clock)
        pc = PlanetaryComputerCatalog(url=srv.url, session=session, signer=signer)
        [s] = pc.search(aoi_inside(item), "2025-03-01", "2025-03-31", collection="sentinel-2-l2a",
                        max_cloud=20)
    assert srv.sas_calls == ["/api/sas/v1/token/sentinel2l2a01/sentinel2-l2"]
    b04 = s.assets["B04"]
    unsigned = b04.request["unsigned_href"]
    assert unsigned.startswith("https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/")
    assert b04.href == f"{unsigned}?{token}"
    assert (s.platform, s.processing_level) == ("sentinel-2b", "L2A")
    assert (s.processing_baseline, s.crs) == ("05.11", "EPSG:32653")
    # PC keeps ESA's +1000 BOA offset from baseline 04.00 on.
    assert b04.offset_dn == -1000 and s.assets["SCL"].offset_dn == 0
    assert s.datetime.tzinfo is not None and s.datetime.utcoffset() == timedelta(0)


def test_planetary_computer_sentinel1_scene_carries_signed_calibration_hrefs_for_read_s1():
    item = load(PC / "items" / PC_S1)
    token = load(PC / "sas_token_sentinel2l2a01_sentinel2-l2.json")["token"]
    clock = lambda: datetime(2024, 5, 14, 12, 0, tzinfo=timezone.utc)  # noqa: E731
    # The fake SAS API answers every account/container with the one recorded token body.
    with pc_api([item]) as srv:
        session = make_session(TINY)
        signer = SasSigner(srv.url + "/api/sas/v1/token", session, now=clock)
        pc = PlanetaryComputerCatalog(url=srv.url, session=session, signer=signer)
        [s] = pc.search(aoi_inside(item), "2025-03-12", "2025-03-12", collection="sentinel-1-grd")
    # Measurements and annotations share one container: one token signs them all.
    assert srv.sas_calls == ["/api/sas/v1/token/sentinel1euwest/s1-grd"]
    assert s.bands == ("VV", "VH") and s.processing_level == "GRD"
    assert s.datetime == datetime(2025, 3, 12, 5, 22, 49, 103098, tzinfo=timezone.utc)
    for band, key in (("VV", "vv"), ("VH", "vh")):
        unsigned = item["assets"][key]["href"]
        assert s.assets[band].request["unsigned_href"] == unsigned
        assert s.assets[band].href == f"{unsigned}?{token}"
        assert (s.assets[band].scale, s.assets[band].offset_dn) == (1.0, 0.0)
    unsigned_cal = s.properties["harborwatch:calibration_unsigned_hrefs"]
    assert unsigned_cal == {"VV": item["assets"]["schema-calibration-vv"]["href"],
                            "VH": item["assets"]["schema-calibration-vh"]["href"]}
    assert unsigned_cal["VH"].endswith("/annotation/calibration/calibration-iw-vh.xml")
    signed_cal = s.properties["harborwatch:calibration_hrefs"]
    assert signed_cal == {p: f"{h}?{token}" for p, h in unsigned_cal.items()}
    assert s.properties["sar:polarizations"] == ["VV", "VH"]
    assert (s.properties["sar:instrument_mode"], s.properties["sar:product_type"]) == ("IW", "GRD")
    assert s.properties["orbit_state"] == "descending"
    # Noise and RFI annotations are not bands.
    assert not any("noise" in a.href or "rfi" in a.href for a in s.assets.values())


def test_planetary_computer_unsigned_sentinel1_keeps_item_hrefs_and_skips_the_sas_api():
    item = load(PC / "items" / PC_S1)
    with pc_api([]) as srv:
        pc = PlanetaryComputerCatalog(url="http://unused.invalid", sign=False,
                                      signer=SasSigner(srv.url + "/api/sas/v1/token", make_session(TINY)))
        s = pc.item_to_scene(item, "sentinel-1-grd")
    assert srv.sas_calls == []
    cal = s.properties["harborwatch:calibration_hrefs"]
    assert cal == s.properties["harborwatch:calibration_unsigned_hrefs"]
    assert cal["VV"] == item["assets"]["schema-calibration-vv"]["href"]
    # A single-polarisation item lists only the LUT it has.
    single = copy.deepcopy(item)
    for key in ("vh", "schema-calibration-vh"):
        del single["assets"][key]
    single["properties"]["sar:polarizations"] = ["vv"]
    s1 = pc.item_to_scene(single, "sentinel-1-grd")
    assert s1.bands == ("VV",) and list(s1.properties["harborwatch:calibration_hrefs"]) == ["VV"]
    assert s1.properties["sar:polarizations"] == ["VV"]


def test_sas_token_is_refetched_after_expiry():
    now = {"t": datetime(2024, 5, 14, 12, 0, tzinfo=timezone.utc)}
    with pc_api([]) as srv:
        signer = SasSigner(srv.url + "/api/sas/v1/token", make_session(TINY), now=lambda: now["t"])
        href = "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/a/b.tif"
        signer.sign(href)
        signer.sign(href)
        assert len(srv.sas_calls) == 1
        now["t"] = datetime(2024, 5, 14, 18, 58, tzinfo=timezone.utc)  # within 5 min of the 19:00:49 expiry
        signer.sign(href)
        assert len(srv.sas_calls) == 2
    assert signer.sign("https://example.com/x.tif") == "https://example.com/x.tif"


def test_planetary_computer_old_baseline_and_sentinel1():
    pc = PlanetaryComputerCatalog(url="http://unused.invalid", sign=False)
    old = pc.item_to_scene(load(PC / "items" / PC_2019), "sentinel-2-l2a")
    assert old.processing_baseline == "02.12" and old.assets["B04"].offset_dn == 0
    s1 = pc.item_to_scene(load(PC / "items" / PC_S1), "sentinel-1-grd")
    assert s1.bands == ("VV", "VH") and s1.processing_level == "GRD" and s1.platform == "sentinel-1a"
    assert s1.assets["VV"].href.startswith("https://sentinel1euwest.blob.core.windows.net/s1-grd/")


@pytest.mark.network
def test_live_earth_search_longkou_l1c_2018():
    aoi = Aoi(name="longkou", kind="port", geometry=box(120.20, 37.60, 120.36, 37.72))
    scenes = get_catalog("earth-search").search(aoi, "2018-05-01", "2018-06-30", collection="sentinel-2-l1c")
    assert scenes and all(s.processing_level == "L1C" for s in scenes)


@pytest.mark.network
def test_live_gcp_l1c_href_exists_for_a_2018_earth_search_scene():
    aoi = Aoi(name="longkou", kind="port", geometry=box(120.20, 37.60, 120.36, 37.72))
    scenes = get_catalog("earth-search:gcp").search(aoi, "2018-05-01", "2018-05-31",
                                                    collection="sentinel-2-l1c", limit=1)
    assert scenes
    resp = make_session().head(scenes[0].assets["B04"].href)
    assert resp.status_code == 200


@pytest.mark.network
def test_live_planetary_computer_longkou_l2a_2018_is_signed():
    aoi = Aoi(name="longkou", kind="port", geometry=box(120.20, 37.60, 120.36, 37.72))
    scenes = get_catalog("planetary-computer").search(aoi, "2018-05-01", "2018-06-30",
                                                      collection="sentinel-2-l2a", limit=2)
    assert scenes and "sig=" in scenes[0].assets["B04"].href


def test_a_scene_read_after_its_token_expired_is_signed_again():
    """Batch jobs read scenes long after searching them: readers re-sign (sources.access.fresh_href)."""
    from imagery.sar import _scene_sources
    from imagery.sources.access import fresh_href

    now = {"t": datetime(2024, 5, 14, 12, 0, tzinfo=timezone.utc)}
    with pc_api([load(PC / "items" / PC_S1)]) as srv:
        session = make_session(TINY)
        signer = SasSigner(srv.url + "/api/sas/v1/token", session, now=lambda: now["t"])
        pc = PlanetaryComputerCatalog(url=srv.url, session=session, signer=signer)
        [s] = pc.search(aoi_inside(load(PC / "items" / PC_S1)), "2025-03-12", "2025-03-12",
                        collection="sentinel-1-grd")
        assert len(srv.sas_calls) == 1
        vv = s.assets["VV"]
        assert fresh_href(vv) == vv.href and len(srv.sas_calls) == 1  # token still valid: cached
        now["t"] = datetime(2024, 5, 14, 19, 30, tzinfo=timezone.utc)  # past the 19:00:49 expiry
        assert fresh_href(vv).startswith(vv.request["unsigned_href"] + "?") and len(srv.sas_calls) == 2
        # The reader of S1 re-signs the measurement and the calibration LUTs (the recorded token is
        # expired by now, so each signing asks the fake SAS API again).
        [source] = _scene_sources(s, ["VV"], None)
        assert len(srv.sas_calls) == 5 and source.href.startswith(vv.request["unsigned_href"] + "?")
        assert source.calibration.startswith(s.properties["harborwatch:calibration_unsigned_hrefs"]["VV"])
        unsigned = PlanetaryComputerCatalog(url=srv.url, sign=False, signer=signer).item_to_scene(
            load(PC / "items" / PC_S1), "sentinel-1-grd"
        )
        assert fresh_href(unsigned.assets["VV"]) == unsigned.assets["VV"].request["unsigned_href"]
    assert fresh_href(Asset(href="https://example.com/b.tif", band="B04")) == "https://example.com/b.tif"


def test_resigning_falls_back_to_the_searchs_token_when_the_token_api_fails(monkeypatch):
    from imagery.sources import planetary_computer as pcm

    class Down:
        def sign(self, href):
            raise CatalogError("SAS API: 503 after retries")

    monkeypatch.setitem(pcm._SIGNERS, "test://down", Down())
    signed = "https://acct.blob.core.windows.net/c/b.tif?sig=old"
    assert pcm.resign(signed, "https://acct.blob.core.windows.net/c/b.tif", "test://down") == signed
