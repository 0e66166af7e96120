"""Any STAC API as a source (``--source stac:URL``): a mirror, another provider, an institute's own
catalogue or a local replay, serving Sentinel-2 L2A / L1C or Sentinel-1 GRD items.

Each asset's band comes from its key (``B04``, ``B8A_20m``, common names such as ``red`` or ``nir08``,
``vv``), else from its ``eo:bands`` / STAC 1.1 ``bands`` entry (``name`` or ``common_name``); multi-band
assets (``visual``) and JP2 twins of COG assets are skipped. Hrefs may be http(s) or anonymous ``s3://``.
Reflectance scale and offset follow ``raster:bands`` where the processing baseline does not settle them
(``s2_scale_offset``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from imagery.errors import InputError
from imagery.http import RetryingSession, RetryPolicy, make_session, redact_url
from imagery.sources.stac import (
    COMMON_NAME_BANDS,
    SAR_KEY_BANDS,
    StacCatalog,
    _band_order,
    asset_nodata,
    item_baseline,
    s2_scale_offset,
    sar_calibration_hrefs,
    sar_properties,
)
from imagery.types import Asset, Scene

_KEY_RE = re.compile(r"^(b0?[1-9]|b1[0-2]|b8a|scl|vv|vh|hh|hv)(?:[_-](\d+)m)?$", re.IGNORECASE)
#: Finest first: a 10 m band asset wins over the same band resampled to 20 m or 60 m.
_RES_RANK = {None: 0, "10": 0, "20": 1, "60": 2}


def _sentinel_name(raw: str) -> str | None:
    """``b4``/``B04``/``b8a``/``VV`` → Sentinel name; None for anything else."""
    m = _KEY_RE.match(raw.strip())
    if not m:
        return None
    name = m.group(1).upper()
    d = re.fullmatch(r"B(\d{1,2})", name)
    return f"B{int(d.group(1)):02d}" if d else name


def asset_band(key: str, asset: Mapping[str, Any]) -> tuple[str, int] | None:
    """(Sentinel band, resolution rank) an asset holds, or None (metadata, previews, multi-band)."""
    if str(asset.get("type") or "").startswith(("application/xml", "application/json", "text/")):
        return None
    if key.lower().endswith("-jp2"):  # Earth Search's requester-pays JP2 twins of its COGs
        return None
    m = _KEY_RE.match(key.strip())
    if m:
        return _sentinel_name(key.split("_")[0].split("-")[0]) or "", _RES_RANK.get(m.group(2), 3)
    common = COMMON_NAME_BANDS.get(key.lower()) or SAR_KEY_BANDS.get(key.lower())
    if common:
        return common, 0
    listed = asset.get("eo:bands") or asset.get("bands") or []
    if isinstance(listed, list) and len(listed) == 1 and isinstance(listed[0], Mapping):
        entry = listed[0]
        name = _sentinel_name(str(entry.get("name") or ""))
        if name:
            return name, 0
        cn = str(entry.get("common_name") or entry.get("eo:common_name") or "").lower()
        if cn in COMMON_NAME_BANDS:
            return COMMON_NAME_BANDS[cn], 0
    return None


class StacApiCatalog(StacCatalog):
    """A STAC API at ``url``. Collections are the API's own names (``--collection``); the level
    (L1C/L2A/GRD) is read from the collection name or ``s2:product_type``."""

    name = "stac"
    collections: tuple[str, ...] = ()  # whatever the API serves; it answers for unknown ones itself

    def __init__(
        self, url: str, *, retry: RetryPolicy | None = None, session: RetryingSession | None = None
    ) -> None:
        if not re.match(r"^https?://[^/\s]+", url or ""):
            raise InputError(
                f"stac source needs the http(s) URL of a STAC API, e.g. stac:https://host/v1; got {url!r}"
            )
        self.url = url.rstrip("/")
        self.session = session or make_session(retry)
        self._client = None

    def __repr__(self) -> str:
        return f"StacApiCatalog(url={redact_url(self.url)!r})"

    def item_to_scene(self, item: Mapping[str, Any], collection: str | None = None) -> Scene:
        collection = collection or str(item.get("collection") or "")
        props = item.get("properties") or {}
        baseline = item_baseline(props)
        is_sar = collection.lower().startswith("sentinel-1") or "sar:polarizations" in props
        chosen: dict[str, tuple[int, Asset]] = {}
        for key, asset in (item.get("assets") or {}).items():
            if not isinstance(asset, Mapping) or not asset.get("href"):
                continue
            found = asset_band(key, asset)
            if found is None:
                continue
            band, rank = found
            if band in chosen and chosen[band][0] <= rank:
                continue
            if band in SAR_KEY_BANDS.values() or band == "SCL":
                scale, offset, rule = 1.0, 0.0, "sar" if band != "SCL" else "categorical"
            else:
                scale, offset, rule = s2_scale_offset(collection, props, asset, baseline)
            chosen[band] = (
                rank,
                Asset(
                    href=str(asset["href"]),
                    band=band,
                    media_type=str(asset.get("type") or "") or None,
                    offset_dn=offset,
                    scale=scale,
                    nodata=asset_nodata(asset, None),
                    request={"stac_key": key, "offset_rule": rule},
                ),
            )
        assets = {b: a for b, (_, a) in sorted(chosen.items(), key=lambda kv: _band_order(kv[0]))}
        properties: dict[str, Any] = {"stac_id": item.get("id"), "stac_api": redact_url(self.url)}
        if is_sar:
            properties.update(sar_properties(props))
            cal = sar_calibration_hrefs(item)
            if cal:
                properties["harborwatch:calibration_hrefs"] = cal
        cloud = props.get("eo:cloud_cover")
        return self.make_scene(
            item,
            collection,
            assets=assets,
            baseline=baseline,
            cloud_cover=float(cloud) if cloud is not None else None,
            properties=properties,
        )
