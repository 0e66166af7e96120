"""What the STAC API sources share: pystac-client wired to the retrying session, and STAC item → Scene.

Band keys differ per catalogue (Earth Search v1 uses common names such as ``red``; Planetary Computer
uses ``B04``); each source passes its own key → Sentinel band map.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from shapely.geometry import shape

from imagery.errors import CatalogError, HarborwatchError
from imagery.http import RetryingSession, RetryPolicy, make_session, redact_url
from imagery.safe import baseline_offset_dn
from imagery.sources.base import SceneSearch, stac_datetime_range
from imagery.types import Asset, Scene

if TYPE_CHECKING:
    from imagery.aoi import Aoi

log = logging.getLogger(__name__)

#: Earth Search v1 asset keys (common names) → Sentinel band names.
COMMON_NAME_BANDS: Mapping[str, str] = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
    "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "cirrus": "B10", "swir16": "B11",
    "swir22": "B12", "scl": "SCL",
}
#: Asset keys that already are Sentinel band names (Planetary Computer, Earth Search v0).
SENTINEL_KEY_BANDS: Mapping[str, str] = {
    **{b: b for b in ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
                      "B12", "SCL")},
}
#: Sentinel-1 polarisation assets (lower case on both STAC APIs).
SAR_KEY_BANDS: Mapping[str, str] = {"vv": "VV", "vh": "VH", "hh": "HH", "hv": "HV"}
#: Sentinel-1 calibration annotation assets (the SAFE's ``annotation/calibration/calibration-*.xml``).
SAR_CALIBRATION_KEYS: Mapping[str, str] = {f"schema-calibration-{k}": v for k, v in SAR_KEY_BANDS.items()}

_BASELINE_RE = re.compile(r"_N(\d{2})(\d{2})_")


class HarborwatchStacIO(StacApiIO):
    """pystac-client I/O through ``RetryingSession``, so searches retry and fail with harborwatch errors.

    ``StacApiIO.request`` would wrap every exception in ``APIError``; this one lets ``CatalogError`` and
    ``RateLimitError`` from the session through unchanged.
    """

    def __init__(self, session: RetryingSession) -> None:
        super().__init__(max_retries=None, timeout=session.policy.timeout_s)
        self.session = session  # replaces the plain Session the parent made

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        method = (method or "GET").upper()
        kwargs: dict[str, Any] = {"headers": headers, "timeout": self.timeout}
        if method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = parameters
        else:
            kwargs["params"] = parameters or None
        log.debug("%s %s", method, redact_url(href))
        resp = self.session.request(method, href, **kwargs)
        return resp.content.decode("utf-8")


def open_client(
    url: str, session: RetryingSession | None = None, policy: RetryPolicy | None = None
) -> Client:
    """A pystac-client ``Client`` for ``url`` whose every request goes through the retrying session."""
    session = session or make_session(policy)
    try:
        return Client.open(url, stac_io=HarborwatchStacIO(session))
    except HarborwatchError:
        raise
    except APIError as e:
        raise CatalogError(f"STAC API {redact_url(url)}: {_one_line(e)}") from None


def run_search(client: Client, url: str, **params: Any) -> list[dict]:
    """Run an item search and return the raw item dicts of every page (up to ``max_items``)."""
    try:
        search = client.search(**params)
        return list(search.items_as_dicts())
    except HarborwatchError:
        raise
    except APIError as e:
        raise CatalogError(f"STAC search at {redact_url(url)} failed: {_one_line(e)}") from None
    except (ValueError, TypeError) as e:  # pystac-client validates parameters up front
        raise CatalogError(
            f"STAC search at {redact_url(url)} rejected its parameters: {_one_line(e)}"
        ) from None


class StacCatalog(SceneSearch):
    """The search a STAC API source shares: one item search over the AOI and period (cloud filter where
    the collection has one), items of other collections dropped, each item made a ``Scene`` by the
    source's ``item_to_scene``."""

    url: str
    session: RetryingSession
    _client: Client | None

    def find(
        self, aoi: Aoi, start: datetime, end: datetime, *, collection: str, max_cloud: float | None,
        limit: int | None,
    ) -> list[Scene]:
        if self._client is None:
            self._client = open_client(self.url, self.session)
        params: dict[str, Any] = {
            "collections": [collection],
            "intersects": aoi.geometry.__geo_interface__,
            "datetime": stac_datetime_range(start, end),
            "limit": 100,
        }
        query = cloud_query(max_cloud, collection)
        if query:
            params["query"] = query
        items = run_search(self._client, self.url, **params)
        # logged under the source's own module, as each source did before sharing this code
        logging.getLogger(type(self).__module__).info(
            "%s %s: %d item(s) from the API", self.name, collection, len(items)
        )
        return [self.item_to_scene(it, collection) for it in items
                if it.get("collection", collection) == collection]

    def item_to_scene(self, item: Mapping[str, Any], collection: str | None = None) -> Scene:
        raise NotImplementedError

    def make_scene(
        self,
        item: Mapping[str, Any],
        collection: str,
        *,
        assets: Mapping[str, Asset],
        baseline: str | None,
        cloud_cover: float | None,
        properties: Mapping[str, Any],
    ) -> Scene:
        """The ``Scene`` of one item: what every STAC source reads the same way, plus its own parts
        (``properties`` left as None are dropped)."""
        props = item.get("properties") or {}
        return Scene(
            id=str(item["id"]),
            source=self.name,
            collection=collection,
            datetime=item_datetime(props),
            platform=item_platform(props, str(item["id"])),
            processing_level=item_level(collection, props),
            cloud_cover=cloud_cover,
            footprint=item_footprint(item),
            assets=assets,
            crs=item_crs(props, item.get("assets")),
            processing_baseline=baseline,
            properties={k: v for k, v in properties.items() if v is not None},
        )


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else type(e).__name__


# -- item → Scene fields ---------------------------------------------------------------------------------

def item_datetime(props: Mapping[str, Any]) -> datetime:
    """The acquisition time of an item, timezone-aware UTC (``datetime`` or the middle of start/end)."""
    raw = props.get("datetime")
    if raw:
        return _parse_dt(raw)
    s, e = props.get("start_datetime"), props.get("end_datetime")
    if s and e:
        a, b = _parse_dt(s), _parse_dt(e)
        return a + (b - a) / 2
    raise CatalogError("STAC item has no datetime")


def _parse_dt(raw: str) -> datetime:
    dt = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def item_crs(props: Mapping[str, Any], assets: Mapping[str, Any] | None = None) -> str | None:
    """Native CRS from ``proj:epsg`` / ``proj:code`` on the item, else on its first data asset."""
    for source in [props, *((assets or {}).values())]:
        if not isinstance(source, Mapping):
            continue
        code = source.get("proj:code")
        if code:
            return str(code)
        epsg = source.get("proj:epsg")
        if epsg:
            return f"EPSG:{int(epsg)}"
    return None


def item_baseline(props: Mapping[str, Any]) -> str | None:
    """Processing baseline as ``'04.00'``, from ``s2:processing_baseline`` or the ``_Nxxyy_`` product name."""
    raw = props.get("s2:processing_baseline") or props.get("processing:version")
    if raw:
        text = str(raw)
        if re.fullmatch(r"\d{1,2}\.\d{1,2}", text):
            major, minor = text.split(".")
            return f"{int(major):02d}.{int(minor):02d}"
        return text
    for key in ("s2:product_uri", "s2:granule_id", "s2:tile_id", "s2:datatake_id"):
        m = _BASELINE_RE.search(str(props.get(key) or "") + "_")
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    return None


def item_platform(props: Mapping[str, Any], item_id: str) -> str:
    """``sentinel-2a`` style platform name (PC writes ``Sentinel-2A``)."""
    raw = props.get("platform")
    if raw:
        return str(raw).strip().lower().replace(" ", "-")
    m = re.match(r"^S([12])([ABCD])", item_id)
    return f"sentinel-{m.group(1)}{m.group(2).lower()}" if m else "unknown"


def item_level(collection: str, props: Mapping[str, Any]) -> str:
    product_type = str(props.get("s2:product_type") or "")
    if product_type.endswith("1C") or "l1c" in collection:
        return "L1C"
    if product_type.endswith("2A") or "l2a" in collection:
        return "L2A"
    if "grd" in collection or str(props.get("sar:product_type", "")).upper() == "GRD":
        return "GRD"
    return str(props.get("processing:level") or "unknown")


def item_footprint(item: Mapping[str, Any]):
    geom = item.get("geometry")
    if not geom:
        bbox = item.get("bbox")
        if not bbox:
            raise CatalogError(f"STAC item {item.get('id')} has neither geometry nor bbox")
        from shapely.geometry import box

        return box(*bbox[:2], *bbox[-2:]) if len(bbox) == 4 else box(bbox[0], bbox[1], bbox[3], bbox[4])
    fp = shape(geom)
    return fp if fp.is_valid else fp.buffer(0)


def sar_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    """The Sentinel-1 acquisition fields a SAR reader needs: polarisations (upper case), instrument mode
    (``IW``) and product type (``GRD``) under their STAC names, and ``orbit_state`` (``descending``), the
    name Planetary Computer scenes of every collection use for it."""
    pols = props.get("sar:polarizations")
    out = {
        "sar:polarizations": [str(p).strip().upper() for p in pols] if pols else None,
        "sar:instrument_mode": props.get("sar:instrument_mode"),
        "sar:product_type": props.get("sar:product_type"),
        "orbit_state": props.get("sat:orbit_state"),
    }
    return {k: v for k, v in out.items() if v is not None}


def sar_calibration_hrefs(item: Mapping[str, Any]) -> dict[str, str]:
    """Polarisation → href of its calibration annotation XML (``schema-calibration-vv`` …) as the item
    gives it (unsigned)."""
    out: dict[str, str] = {}
    for key, asset in (item.get("assets") or {}).items():
        pol = SAR_CALIBRATION_KEYS.get(key)
        href = str(asset.get("href") or "") if isinstance(asset, Mapping) else ""
        if pol and href:
            out[pol] = href
    return dict(sorted(out.items(), key=lambda kv: _band_order(kv[0])))


def raster_scale_offset(asset: Mapping[str, Any]) -> tuple[float, float] | None:
    """(scale, offset_dn) declared by the asset's ``raster:bands``, or None when it declares none."""
    bands = asset.get("raster:bands") or []
    if not bands or not isinstance(bands[0], Mapping):
        return None
    rb = bands[0]
    if "scale" not in rb and "offset" not in rb:
        return None
    scale = float(rb.get("scale", 1.0) or 1.0)
    offset = float(rb.get("offset", 0.0) or 0.0)
    # raster:bands gives value = DN * scale + offset; Asset wants (DN + offset_dn) * scale.
    return scale, round(offset / scale, 6) if scale else 0.0


def s2_scale_offset(
    collection: str, props: Mapping[str, Any], asset: Mapping[str, Any], baseline: str | None
) -> tuple[float, float, str]:
    """(scale, offset_dn, rule) for one Sentinel-2 reflectance band of a STAC item.

    * ``sentinel-2-l2a``: Element 84 removed the +1000 BOA offset from some baseline >= 04.00 COGs and say
      so in ``earthsearch:boa_offset_applied``; its ``raster:bands`` offset is known to be wrong in both
      directions (Element84/earth-search#9, #66, #71), so the flag decides: applied → 0, not applied → the
      baseline rule (−1000 from 04.00).
    * ``sentinel-2-c1-l2a``: every item is baseline >= 05.00 and its ``raster:bands`` declare the offset.
    * ``sentinel-2-l1c``: the baseline decides (RADIO_ADD_OFFSET −1000 from 04.00), ``raster:bands`` only
      when the baseline is unknown.
    """
    declared = raster_scale_offset(asset)
    scale = declared[0] if declared else 1e-4
    if collection == "sentinel-2-l2a":
        applied = props.get("earthsearch:boa_offset_applied")
        if applied is True:
            return scale, 0.0, "boa_offset_applied"
        if applied is False:
            return scale, baseline_offset_dn(baseline), "baseline"
    if collection == "sentinel-2-c1-l2a" and declared:
        return declared[0], declared[1], "raster:bands"
    if baseline:
        return scale, baseline_offset_dn(baseline), "baseline"
    if declared:
        return declared[0], declared[1], "raster:bands"
    return scale, 0.0, "none"


def asset_nodata(asset: Mapping[str, Any], default: float | None) -> float | None:
    """The nodata value the asset's ``raster:bands`` declares (None if it declares null), else ``default``."""
    bands = asset.get("raster:bands") or []
    if bands and isinstance(bands[0], Mapping) and "nodata" in bands[0]:
        v = bands[0]["nodata"]
        return None if v is None else float(v)
    return default


def build_assets(
    item: Mapping[str, Any],
    key_bands: Mapping[str, str],
    make: Callable[[str, str, Mapping[str, Any]], Asset | None],
) -> dict[str, Asset]:
    """Band → Asset for the keys in ``key_bands``; ``make(band, key, asset_dict)`` builds each one."""
    out: dict[str, Asset] = {}
    for key, asset in (item.get("assets") or {}).items():
        band = key_bands.get(key)
        if band is None or band in out:
            continue
        built = make(band, key, asset)
        if built is not None:
            out[band] = built
    return dict(sorted(out.items(), key=lambda kv: _band_order(kv[0])))


_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12", "SCL",
          "VV", "VH", "HH", "HV"]


def _band_order(band: str) -> int:
    return _ORDER.index(band) if band in _ORDER else len(_ORDER)


def cloud_query(max_cloud: float | None, collection: str) -> dict | None:
    """STAC ``query`` extension body for tile cloud cover (not for SAR collections)."""
    if max_cloud is None or collection.startswith("sentinel-1"):
        return None
    return {"eo:cloud_cover": {"lte": max_cloud}}
