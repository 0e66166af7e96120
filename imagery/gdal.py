"""GDAL settings for reading rasters, local or over HTTP, held in one place (a ``rasterio.Env``).

Nothing else in harborwatch writes GDAL options into ``os.environ``; every read goes through
``gdal_env()``, so the options below hold for every COG window we fetch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import rasterio

#: Options for cloud-optimised reads. Each avoids requests or retries transient failures:
CLOUD_OPTIONS: Mapping[str, Any] = {
    # Opening /vsicurl/x.tif would otherwise list the "directory" (one wasted request, often a 403).
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # Don't probe for sidecar files (.aux.xml, .ovr, .msk) over HTTP.
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.jp2,.JP2",
    # Adjacent tiles come back in one ranged request; HTTP/2 multiplexes the rest on one connection.
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    # Keep fetched blocks in memory so the header and neighbouring windows are read once per process.
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(64 * 1024 * 1024),
    # GDAL retries 429, 500, 502, 503 and 504 (with exponential backoff); other 4xx fail at once.
    "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_CONNECTTIMEOUT": "20",
    # Public buckets (sentinel-cogs, the Google Cloud Sentinel-2 mirror) are read anonymously.
    "AWS_NO_SIGN_REQUEST": "YES",
    "GS_NO_SIGN_REQUEST": "YES",
}


def gdal_env(**overrides: Any) -> rasterio.Env:
    """A ``rasterio.Env`` with harborwatch's GDAL options; keyword arguments override or add options.

    Use as ``with gdal_env(): rasterio.open(...)``. Environments nest, so library callers may wrap
    it in their own ``rasterio.Env`` with credentials (e.g. ``AWS_REQUEST_PAYER``).
    """
    options = dict(CLOUD_OPTIONS)
    options.update(overrides)
    return rasterio.Env(**options)


def vsi_path(href: str) -> str:
    """The GDAL path for an href: ``https://…`` → ``/vsicurl/https://…``; local paths unchanged."""
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("gs://"):
        return f"/vsigs/{href[5:]}"
    if href.startswith("s3://"):
        return f"/vsis3/{href[5:]}"
    if href.startswith("file://"):
        return href[7:]
    return href
