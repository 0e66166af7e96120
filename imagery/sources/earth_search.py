"""Element 84 Earth Search v1 (anonymous STAC API): Sentinel-2 L2A, Collection-1 L2A, L1C, Sentinel-1 GRD.

L2A COGs are anonymous HTTPS. L1C JP2s and S1 GRD files sit in requester-pays S3 buckets, so their
assets are marked and carry the anonymous Google Cloud copy of each L1C band where it can be built.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from imagery.errors import CatalogError, InputError
from imagery.http import RetryingSession, RetryPolicy, make_session
from imagery.sources.stac import (
    COMMON_NAME_BANDS,
    SAR_KEY_BANDS,
    StacCatalog,
    asset_nodata,
    build_assets,
    item_baseline,
    s2_scale_offset,
)
from imagery.types import Asset, Scene

log = logging.getLogger(__name__)

EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
GCP_S2_BASE = "https://storage.googleapis.com/gcp-public-data-sentinel-2"
REQUESTER_PAYS_BUCKETS = ("s3://sentinel-s2-l1c/", "s3://sentinel-s2-l2a/", "s3://sentinel-s1-l1c/")

L1C_HINT = ("Earth Search's L1C is in the requester-pays bucket s3://sentinel-s2-l1c; use --source "
            "sentinelhub (free CDSE account) or the anonymous Google Cloud copy (--source earth-search:gcp)")
S1_HINT = ("Earth Search's Sentinel-1 GRD is in the requester-pays bucket s3://sentinel-s1-l1c; "
           "use --source planetary-computer (anonymous) or --source sentinelhub")

_COMPACT_PRODUCT_RE = re.compile(
    r"^(S2[A-D])_MSI(L1C|L2A)_(\d{8}T\d{6})_N(\d{4})_R(\d{3})_T(\d{2}[C-X][A-Z]{2})_(\d{8}T\d{6})(?:\.SAFE)?$"
)


class EarthSearchCatalog(StacCatalog):
    """Earth Search v1. ``l1c_hrefs='gcp'`` points L1C bands at the anonymous Google Cloud bucket."""

    name = "earth-search"
    collections = ("sentinel-2-l2a", "sentinel-2-c1-l2a", "sentinel-2-l1c", "sentinel-1-grd")

    def __init__(
        self,
        url: str = EARTH_SEARCH_URL,
        *,
        retry: RetryPolicy | None = None,
        session: RetryingSession | None = None,
        l1c_hrefs: str = "s3",
    ) -> None:
        if l1c_hrefs not in ("s3", "gcp"):
            raise InputError(f"l1c_hrefs must be 's3' or 'gcp', got {l1c_hrefs!r}")
        self.url = url.rstrip("/")
        self.session = session or make_session(retry)
        self.l1c_hrefs = l1c_hrefs
        self._client = None

    def __repr__(self) -> str:
        return f"EarthSearchCatalog(url={self.url!r}, l1c_hrefs={self.l1c_hrefs!r})"

    def item_to_scene(self, item: Mapping[str, Any], collection: str | None = None) -> Scene:
        """One Earth Search v1 item as a ``Scene`` (bands renamed to Sentinel names, offsets resolved)."""
        collection = collection or str(item.get("collection") or "")
        props = item.get("properties") or {}
        baseline = item_baseline(props)
        is_sar = collection.startswith("sentinel-1")
        extra: dict[str, Any] = {}
        gcp: dict[str, str] = {}
        if collection == "sentinel-2-l1c":
            try:
                gcp = gcp_l1c_hrefs(props, [b for b in COMMON_NAME_BANDS.values() if b != "SCL"])
            except CatalogError as e:
                extra["gcp_unavailable"] = str(e)

        def make(band: str, key: str, asset: Mapping[str, Any]) -> Asset | None:
            href = str(asset.get("href") or "")
            if not href:
                return None
            request: dict[str, Any] = {"stac_key": key}
            if href.startswith(REQUESTER_PAYS_BUCKETS):
                request.update(requester_pays=True, hint=S1_HINT if is_sar else L1C_HINT)
                if band in gcp:
                    request["alternate_href"] = gcp[band]
            if band in gcp and self.l1c_hrefs == "gcp":
                request = {"stac_key": key, "s3_href": href}
                href = gcp[band]
            if is_sar or band == "SCL":
                scale, offset, rule = 1.0, 0.0, "categorical" if band == "SCL" else "sar"
            else:
                scale, offset, rule = s2_scale_offset(collection, props, asset, baseline)
            request["offset_rule"] = rule
            return Asset(
                href=href,
                band=band,
                media_type=str(asset.get("type") or "") or None,
                offset_dn=offset,
                scale=scale,
                nodata=asset_nodata(asset, 0.0),  # Sentinel-2 COGs: DN 0 is no data
                request=request,
            )

        assets = build_assets(item, SAR_KEY_BANDS if is_sar else COMMON_NAME_BANDS, make)
        properties = {
            "stac_id": item.get("id"),
            "mgrs_tile": _mgrs_tile(props),
            "product_uri": props.get("s2:product_uri"),
            "boa_offset_applied": props.get("earthsearch:boa_offset_applied"),
            "requester_pays": any((a.request or {}).get("requester_pays") for a in assets.values()),
            **({"sar:polarizations": props.get("sar:polarizations")} if is_sar else {}),
            **extra,
        }
        return self.make_scene(
            item,
            collection,
            assets=assets,
            baseline=baseline,
            cloud_cover=_float_or_none(props.get("eo:cloud_cover")),
            properties=properties,
        )


# -- Google Cloud public Sentinel-2 L1C -------------------------------------------------------------

def gcp_l1c_hrefs(props: Mapping[str, Any], bands: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Anonymous Google Cloud hrefs of L1C band JP2s, built from an Earth Search L1C item's properties.

    Path: ``tiles/{UTM}/{LAT}/{SQ}/{PRODUCT}.SAFE/GRANULE/L1C_T{TILE}_A{ORBIT}_{DS_START}/IMG_DATA/
    T{TILE}_{DATATAKE}_{BAND}.jp2``: the product name is ``s2:product_uri``; the granule folder joins
    the tile, the absolute orbit (``_Annnnnn_`` in ``s2:granule_id``/``s2:tile_id``, or the third field of
    ``s2:datatake_id``) and the datastrip sensing start (``_S…`` in ``s2:datastrip_id``); the file name
    uses the datatake sensing time from the product name. Products in the pre-December-2016 long
    naming format are not supported (their granule folders are named differently).
    """
    return {b: f"{gcp_granule_url(props, 'L1C')}/IMG_DATA/{_img_stem(props)}_{b}.jp2" for b in bands}


def gcp_granule_url(props: Mapping[str, Any], level: str = "L1C") -> str:
    product, tile, _ = _compact_product(props)
    base = GCP_S2_BASE + ("/L2" if level == "L2A" else "")
    return f"{base}/tiles/{tile[:2]}/{tile[2]}/{tile[3:]}/{product}.SAFE/GRANULE/{granule_dir(props, level)}"


def granule_dir(props: Mapping[str, Any], level: str = "L1C") -> str:
    """The SAFE granule folder name, e.g. ``L1C_T27VWK_A036143_20240206T131359``."""
    _, tile, _ = _compact_product(props)
    orbit = None
    for key in ("s2:granule_id", "s2:tile_id"):
        m = re.search(r"_A(\d{6})_", str(props.get(key) or ""))
        if m:
            orbit = m.group(1)
            break
    if orbit is None:
        m = re.match(r"^G?S2[A-D]_\d{8}T\d{6}_(\d{6})_", str(props.get("s2:datatake_id") or ""))
        orbit = m.group(1) if m else None
    m = re.search(r"_S(\d{8}T\d{6})_", str(props.get("s2:datastrip_id") or ""))
    missing = [name for name, v in (("absolute orbit (s2:granule_id/s2:tile_id/s2:datatake_id)", orbit),
                                    ("datastrip sensing start (s2:datastrip_id)", m)) if v is None]
    if missing:
        raise CatalogError(f"cannot build the Google Cloud granule path: item lacks {', '.join(missing)}")
    assert m is not None
    return f"{level}_T{tile}_A{orbit}_{m.group(1)}"


def _compact_product(props: Mapping[str, Any]) -> tuple[str, str, str]:
    uri = str(props.get("s2:product_uri") or "")
    m = _COMPACT_PRODUCT_RE.match(uri)
    if not m:
        why = "has no s2:product_uri" if not uri else f"product {uri!r} is not in the compact naming format"
        raise CatalogError(f"cannot build the Google Cloud path: item {why}")
    return uri.removesuffix(".SAFE"), m.group(6), m.group(3)


def _img_stem(props: Mapping[str, Any]) -> str:
    _, tile, datatake = _compact_product(props)
    return f"T{tile}_{datatake}"


def _mgrs_tile(props: Mapping[str, Any]) -> str | None:
    if props.get("mgrs:utm_zone") and props.get("mgrs:latitude_band") and props.get("mgrs:grid_square"):
        return f"{int(props['mgrs:utm_zone']):02d}{props['mgrs:latitude_band']}{props['mgrs:grid_square']}"
    code = str(props.get("grid:code") or "")
    return code.split("-", 1)[1] if code.startswith("MGRS-") else None


def _float_or_none(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None
