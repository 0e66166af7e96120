"""Microsoft Planetary Computer (anonymous STAC API): Sentinel-2 L2A and Sentinel-1 GRD.

Asset hrefs are Azure blob URLs that must carry a SAS token; tokens come anonymously from the SAS
API (one per storage account and container) and are cached until shortly before they expire.
PC serves ESA's L2A as delivered: products from processing baseline 04.00 on keep the +1000 BOA
offset (microsoft/PlanetaryComputer#134), so those assets get ``offset_dn = -1000``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from imagery.errors import CatalogError
from imagery.http import RetryingSession, RetryPolicy, expiry_from, make_session
from imagery.safe import baseline_offset_dn
from imagery.sources.stac import (
    SAR_KEY_BANDS,
    SENTINEL_KEY_BANDS,
    StacCatalog,
    build_assets,
    item_baseline,
    sar_calibration_hrefs,
    sar_properties,
)
from imagery.types import Asset, Scene

log = logging.getLogger(__name__)

PC_STAC_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
PC_SAS_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
#: Refresh a token this long before the expiry the SAS API announces.
TOKEN_MARGIN = timedelta(minutes=5)


class SasSigner:
    """Anonymous SAS tokens for Azure blob hrefs, cached per (account, container) until expiry."""

    def __init__(
        self,
        sas_url: str = PC_SAS_URL,
        session: RetryingSession | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.sas_url = sas_url.rstrip("/")
        self.session = session or make_session()
        self._now = now
        self._tokens: dict[tuple[str, str], tuple[str, datetime | None]] = {}
        self._lock = threading.Lock()

    def token(self, account: str, container: str) -> str:
        """The SAS query string (no leading ``?``) for ``account``/``container``."""
        key = (account, container)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and (cached[1] is None or cached[1] - TOKEN_MARGIN > self._now()):
                return cached[0]
        url = f"{self.sas_url}/{account}/{container}"
        body = self.session.get(url).json()
        token = str(body.get("token") or "").lstrip("?")
        if not token:
            raise CatalogError(f"Planetary Computer SAS API gave no token for {account}/{container}")
        expiry = expiry_from(body.get("msft:expiry"))
        with self._lock:
            self._tokens[key] = (token, expiry)
        log.debug("SAS token for %s/%s valid until %s", account, container, expiry)
        return token

    def sign(self, href: str) -> str:
        """``href`` with a SAS token appended; hrefs outside Azure blob storage are returned unchanged."""
        parts = urlsplit(href)
        host = parts.hostname or ""
        if not host.endswith(".blob.core.windows.net") or "sig=" in (parts.query or ""):
            return href
        account = host.split(".", 1)[0]
        container = parts.path.lstrip("/").split("/", 1)[0]
        token = self.token(account, container)
        return f"{href}{'&' if parts.query else '?'}{token}"


#: The signer of the latest catalogue per SAS API, for re-signing at read time (``resign``); in a
#: process that made no catalogue (a dask worker) one is made on first use.
_SIGNERS: dict[str, Any] = {}
_SIGNERS_LOCK = threading.Lock()


def signer_for(sas_url: str = PC_SAS_URL) -> SasSigner:
    key = sas_url.rstrip("/")
    with _SIGNERS_LOCK:
        if key not in _SIGNERS:
            _SIGNERS[key] = SasSigner(key)
        return _SIGNERS[key]


def resign(href: str, unsigned: str | None, sas_url: str | None) -> str:
    """A signed ``href`` signed again with a token valid now (tokens last about an hour; a batch job
    reads scenes long after it searched them). Unsigned hrefs (``sign=False``) stay unsigned. If the
    token API fails, ``href`` is returned as it is: the search's token may still be valid."""
    if not unsigned or href == unsigned:
        return href
    try:
        return signer_for(sas_url or PC_SAS_URL).sign(unsigned)
    except (CatalogError, ValueError) as e:  # token service down or garbled
        log.warning("could not re-sign %s (%s); reading with the search's token", unsigned, e)
        return href


class PlanetaryComputerCatalog(StacCatalog):
    """Planetary Computer STAC; ``sign=False`` keeps unsigned hrefs (``Asset.request['unsigned_href']``
    always holds the unsigned one, so a reader can re-sign after a token expires).

    ``sentinel-1-grd`` scenes also carry each polarisation's calibration XML, which ``imagery.sar.read_s1``
    needs to turn DN into sigma0: ``properties["harborwatch:calibration_hrefs"]`` (pol → href, signed like
    the assets) and ``properties["harborwatch:calibration_unsigned_hrefs"]`` (for re-signing).
    """

    name = "planetary-computer"
    collections = ("sentinel-2-l2a", "sentinel-1-grd")

    def __init__(
        self,
        url: str = PC_STAC_URL,
        *,
        sas_url: str = PC_SAS_URL,
        sign: bool = True,
        retry: RetryPolicy | None = None,
        session: RetryingSession | None = None,
        signer: SasSigner | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.session = session or make_session(retry)
        self.signer = signer or SasSigner(sas_url, self.session)
        self.sign = sign
        self.sas_url = str(getattr(self.signer, "sas_url", sas_url)).rstrip("/")
        with _SIGNERS_LOCK:
            _SIGNERS[self.sas_url] = self.signer
        self._client = None

    def __repr__(self) -> str:
        return f"PlanetaryComputerCatalog(url={self.url!r}, sign={self.sign})"

    def _href(self, unsigned: str) -> str:
        return self.signer.sign(unsigned) if self.sign else unsigned

    def item_to_scene(self, item: Mapping[str, Any], collection: str | None = None) -> Scene:
        collection = collection or str(item.get("collection") or "")
        props = item.get("properties") or {}
        baseline = item_baseline(props)
        is_sar = collection.startswith("sentinel-1")
        offset = 0.0 if is_sar else baseline_offset_dn(baseline)

        def make(band: str, key: str, asset: Mapping[str, Any]) -> Asset | None:
            unsigned = str(asset.get("href") or "")
            if not unsigned:
                return None
            categorical = band == "SCL"
            return Asset(
                href=self._href(unsigned),
                band=band,
                media_type=str(asset.get("type") or "") or None,
                offset_dn=0.0 if (categorical or is_sar) else offset,
                scale=1.0 if (categorical or is_sar) else 1e-4,
                nodata=0.0,
                request={"stac_key": key, "unsigned_href": unsigned, "signer": "planetary-computer",
                         "sas_url": self.sas_url,
                         "offset_rule": "sar" if is_sar else ("categorical" if categorical else "baseline")},
            )

        assets = build_assets(item, SAR_KEY_BANDS if is_sar else SENTINEL_KEY_BANDS, make)
        properties = {
            "stac_id": item.get("id"),
            "mgrs_tile": props.get("s2:mgrs_tile"),
            "product_uri": props.get("s2:product_uri"),
            "orbit_state": props.get("sat:orbit_state"),
        }
        if is_sar:
            properties.update(sar_properties(props))
            cal = sar_calibration_hrefs(item)
            if cal:
                properties["harborwatch:calibration_hrefs"] = {p: self._href(h) for p, h in cal.items()}
                properties["harborwatch:calibration_unsigned_hrefs"] = cal
                properties["harborwatch:sas_url"] = self.sas_url
        return self.make_scene(
            item,
            collection,
            assets=assets,
            baseline=baseline,
            cloud_cover=None if props.get("eo:cloud_cover") is None else float(props["eo:cloud_cover"]),
            properties=properties,
        )
