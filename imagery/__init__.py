"""harborwatch imagery layer: AOIs, catalogues, windowed reads on the AOI grid, clouds, cache.

Never imports ``detect``: data flows one way, AOI → scenes → raster windows.

The everyday functions are re-exported here and imported lazily, so ``import imagery`` stays cheap::

    from imagery import get_aoi, search, read_window
    aoi = get_aoi("longkou-port")
    scenes = search(aoi, "2018-05-01", "2018-06-30", collection="sentinel-2-l1c", source="earth-search:gcp")
    window = read_window(scenes[0], aoi.grid(), ["B02", "B03", "B04", "B08"])
"""

from __future__ import annotations

import importlib
from typing import Any

from imagery.errors import (
    AoiError,
    CatalogError,
    CoverageError,
    CredentialsError,
    CrsError,
    HarborwatchError,
    InputError,
    MissingBandsError,
    ModelError,
    RasterReadError,
    RateLimitError,
)

_LAZY = {
    "Aoi": "imagery.aoi",
    "Zone": "imagery.aoi",
    "aois": "imagery.aoi",
    "get_aoi": "imagery.aoi",
    "aoi_from_bbox": "imagery.aoi",
    "aoi_from_geojson": "imagery.aoi",
    "search": "imagery.catalog",
    "get_catalog": "imagery.catalog",
    "read_window": "imagery.read",
    "open_raster": "imagery.read",
    "Cache": "imagery.cache",
    "screen_window": "imagery.clouds",
    "aoi_cloud_fraction": "imagery.clouds",
    "Grid": "imagery.types",
    "Scene": "imagery.types",
    "Asset": "imagery.types",
    "RasterWindow": "imagery.types",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'imagery' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AoiError",
    "CatalogError",
    "CoverageError",
    "CredentialsError",
    "CrsError",
    "HarborwatchError",
    "InputError",
    "MissingBandsError",
    "ModelError",
    "RasterReadError",
    "RateLimitError",
    *_LAZY,
]
