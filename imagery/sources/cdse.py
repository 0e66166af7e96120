"""Copernicus Data Space Ecosystem through ``sentinelhub``: catalogue search for L1C, L2A and S1 GRD.

Needs an OAuth client (``imagery.config``). Scenes carry no file hrefs: each band's ``Asset.request``
describes the Process API request a reader sends (collection, service URL, time window, band, units).
Sentinel Hub harmonises Sentinel-2 values itself (``harmonizeValues``), so REFLECTANCE needs no offset.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from imagery.config import CdseCredentials, load_cdse_credentials, redact_secrets
from imagery.errors import CatalogError, CredentialsError, HarborwatchError, RateLimitError
from imagery.http import RetryPolicy, redact_url
from imagery.sources.base import SceneSearch, day_window
from imagery.sources.stac import item_baseline, item_crs, item_datetime, item_footprint, item_platform
from imagery.types import S2_BANDS, Asset, Scene

if TYPE_CHECKING:
    from imagery.aoi import Aoi

log = logging.getLogger(__name__)

#: harborwatch collection → (sentinelhub DataCollection member, processing level, bands).
_COLLECTIONS: Mapping[str, tuple[str, str, tuple[str, ...]]] = {
    "sentinel-2-l1c": ("SENTINEL2_L1C", "L1C", tuple(S2_BANDS)),
    "sentinel-2-l2a": ("SENTINEL2_L2A", "L2A", (*(b for b in S2_BANDS if b != "B10"), "SCL")),
    "sentinel-1-grd": ("SENTINEL1_IW", "GRD", ("VV", "VH")),
}


def data_collection(collection: str, service_url: str):
    """The ``sentinelhub.DataCollection`` for ``collection`` on ``service_url`` (defined once per URL)."""
    from sentinelhub import DataCollection

    member, _, _ = _COLLECTIONS[collection]
    tag = hashlib.sha1(service_url.encode()).hexdigest()[:8]
    return getattr(DataCollection, member).define_from(f"HARBORWATCH_{member}_{tag}", service_url=service_url)


class SentinelHubCatalogSource(SceneSearch):
    """Catalogue search on Copernicus Data Space (or any Sentinel Hub deployment via ``base_url``)."""

    name = "sentinelhub"
    collections = tuple(_COLLECTIONS)

    def __init__(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        base_url: str | None = None,
        token_url: str | None = None,
        credentials: CdseCredentials | None = None,
        retry: RetryPolicy | None = None,
        config_path: str | None = None,
    ) -> None:
        self._args = dict(client_id=client_id, client_secret=client_secret, base_url=base_url,
                          token_url=token_url, config_path=config_path)
        self._credentials = credentials
        self.retry = retry or RetryPolicy()
        self._catalog = None

    def __repr__(self) -> str:
        return f"SentinelHubCatalogSource(credentials={self._credentials!r})"

    @property
    def credentials(self) -> CdseCredentials:
        """Loaded on first use, so listing sources never needs credentials."""
        if self._credentials is None:
            self._credentials = load_cdse_credentials(**self._args)  # type: ignore[arg-type]
        return self._credentials

    def sh_config(self):
        """A ``sentinelhub.SHConfig`` built only from our credentials (never from ~/.config/sentinelhub)."""
        from sentinelhub import SHConfig

        creds = self.credentials
        cfg = SHConfig(use_defaults=True)
        cfg.sh_client_id = creds.client_id
        cfg.sh_client_secret = creds.client_secret
        cfg.sh_base_url = creds.base_url
        cfg.sh_token_url = creds.token_url
        cfg.max_download_attempts = self.retry.retries + 1
        cfg.download_sleep_time = self.retry.backoff_s
        cfg.download_timeout_seconds = self.retry.timeout_s
        cfg.max_retries = self.retry.retries + 1  # 429 answers before OutOfRequestsException
        return cfg

    def _get_catalog(self):
        if self._catalog is None:
            from sentinelhub import SentinelHubCatalog, SentinelHubSession

            cfg = self.sh_config()
            catalog = SentinelHubCatalog(config=cfg)
            catalog.client.session = _translate(
                lambda: SentinelHubSession(config=cfg), cfg.sh_token_url, auth=True
            )
            self._catalog = catalog
        return self._catalog

    def find(
        self, aoi: Aoi, start: datetime, end: datetime, *, collection: str, max_cloud: float | None,
        limit: int | None,
    ) -> list[Scene]:
        from sentinelhub import CRS, Geometry

        catalog = self._get_catalog()
        dc = data_collection(collection, self.credentials.base_url)
        cql = None
        if max_cloud is not None and not collection.startswith("sentinel-1"):
            cql = f"eo:cloud_cover <= {float(max_cloud):g}"

        def run() -> list[dict]:
            it = catalog.search(dc, time=(start, end), geometry=Geometry(aoi.geometry, CRS.WGS84), filter=cql,
                                limit=100)
            out = []
            for feature in it:
                out.append(feature)
                if limit is not None and len(out) >= 5 * limit + 50:
                    break  # plenty to choose from after client-side filtering
            return out

        features = _translate(run, f"{catalog.service_url}/search")
        log.info("%s %s: %d item(s) from the API", self.name, collection, len(features))
        return [self.feature_to_scene(f, collection) for f in features]

    def feature_to_scene(self, feature: Mapping[str, Any], collection: str) -> Scene:
        props = feature.get("properties") or {}
        member, level, bands = _COLLECTIONS[collection]
        when = item_datetime(props)
        t_from, t_to = day_window(when)
        service_url = self.credentials.base_url
        process_url = f"{service_url}/api/v1/process"
        is_sar = collection.startswith("sentinel-1")
        assets = {}
        for band in bands:
            categorical = band == "SCL"
            units = "LINEAR_POWER" if is_sar else ("DN" if categorical else "REFLECTANCE")
            assets[band] = Asset(
                href=f"{process_url}#{collection}/{feature['id']}/{band}",
                band=band,
                media_type="image/tiff",
                offset_dn=0.0,
                scale=1.0,
                nodata=None,
                request={
                    "api": "process",
                    "service_url": service_url,
                    "process_url": process_url,
                    "data_collection": collection,  # Process API input type
                    "data_collection_name": member,  # sentinelhub.DataCollection member
                    "time_interval": (t_from.isoformat(), t_to.isoformat()),
                    "band": band,
                    "units": units,
                    "harmonize_values": not is_sar,
                },
            )
        return Scene(
            id=str(feature["id"]),
            source=self.name,
            collection=collection,
            datetime=when,
            platform=item_platform(props, str(feature["id"])),
            processing_level=level,
            cloud_cover=None if props.get("eo:cloud_cover") is None else float(props["eo:cloud_cover"]),
            footprint=item_footprint(feature),
            assets=assets,
            crs=item_crs(props),
            processing_baseline=item_baseline({"s2:product_uri": str(feature["id"]) + "_", **props}),
            properties={"stac_id": feature["id"], "service_url": service_url},
        )


def _translate(fn, url: str, *, auth: bool = False):
    """Run a sentinelhub call, turning its exceptions into one-line harborwatch errors."""
    import requests
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error
    from sentinelhub.exceptions import DownloadFailedException, OutOfRequestsException

    where = redact_url(url)
    try:
        return fn()
    except HarborwatchError:
        raise
    except OutOfRequestsException:
        raise RateLimitError(f"{where} kept answering HTTP 429 (rate limit); wait and try again") from None
    except OAuth2Error as e:
        raise CredentialsError(
            f"Copernicus Data Space rejected the OAuth client at {where}: {e.error}"
            f"{' (' + e.description + ')' if e.description else ''}; check SH_CLIENT_ID / SH_CLIENT_SECRET"
        ) from None
    except (DownloadFailedException, requests.RequestException) as e:
        cause = getattr(e, "request_exception", None) or e
        resp = getattr(cause, "response", None)
        status = getattr(resp, "status_code", None)
        detail = _server_detail(resp) if resp is not None else str(e).strip().splitlines()[-1]
        line = redact_secrets(f"{where} answered HTTP {status}: {detail}" if status else f"{where}: {detail}")
        if status in (401, 403):
            raise CredentialsError(f"{line}; check the CDSE client id/secret and its permissions") from None
        if auth and status is not None and 400 <= status < 500:
            raise CredentialsError(line) from None
        raise CatalogError(line) from None


def _server_detail(resp) -> str:
    from imagery.http import server_message

    return server_message(resp) or f"HTTP {resp.status_code}"
