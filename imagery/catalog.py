"""The catalogue registry: a source by name (``get_catalog``) and the one-call ``search``.

``search(aoi, start, end, collection=..., source=...)`` returns ``Scene`` records sorted by time, each with
its AOI coverage in ``scene.properties["aoi_coverage"]``. One class per source lives in
``imagery/sources/``; what they share lives in ``imagery/sources/base.py``.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from imagery.errors import InputError
from imagery.sources.base import Catalog, empty_result_hint, parse_period
from imagery.types import Scene

if TYPE_CHECKING:
    from imagery.aoi import Aoi

__all__ = [
    "SOURCES", "Catalog", "empty_result_hint", "get_catalog", "parse_period", "resolve_aoi", "scene_summary",
    "search",
]

SOURCES = (
    "earth-search", "earth-search:gcp", "planetary-computer", "sentinelhub", "stac:URL", "local:DIR",
    "samples",
)
_SOURCE_ALIASES = {
    "earth-search": "earth-search", "earthsearch": "earth-search", "element84": "earth-search",
    "planetary-computer": "planetary-computer", "pc": "planetary-computer", "mpc": "planetary-computer",
    "sentinelhub": "sentinelhub", "sentinel-hub": "sentinelhub", "cdse": "sentinelhub",
    "copernicus": "sentinelhub",
}


# -- factory and the one-call search ---------------------------------------------------------------------

def get_catalog(source: str = "earth-search", **options: Any) -> Catalog:
    """A catalogue by name: ``earth-search`` (``earth-search:gcp`` takes L1C bands from the Google Cloud
    public bucket), ``planetary-computer``, ``sentinelhub`` (alias ``cdse``), ``stac:URL`` (any STAC API),
    ``local:DIR`` or ``samples``.
    ``options`` go to the source's constructor (e.g. ``url=``, ``retry=``, ``client_id=``)."""
    spec = source.strip()
    if spec.lower().startswith("stac:"):  # any STAC API: a mirror, another provider, a local replay
        from imagery.sources.stac_api import StacApiCatalog

        return StacApiCatalog(spec[len("stac:"):], **options)
    if spec.lower().startswith("local:"):
        from imagery.sources.local import LocalCatalog

        folder = spec[len("local:"):]
        if not folder:
            raise InputError("local source needs a folder: local:DIR")
        return LocalCatalog(folder, **options)
    if spec.lower() in ("samples", "sample"):  # the bundled offline sample chips
        from imagery.samples import sample_dir
        from imagery.sources.local import LocalCatalog

        return LocalCatalog(sample_dir(), **options)
    name, _, variant = spec.lower().partition(":")
    name = _SOURCE_ALIASES.get(name, name)
    if name == "earth-search" and variant == "gcp":  # L1C bands from the Google Cloud public bucket
        from imagery.sources.earth_search import EarthSearchCatalog

        return EarthSearchCatalog(**{"l1c_hrefs": "gcp", **options})
    if variant:
        raise InputError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    if name == "earth-search":
        from imagery.sources.earth_search import EarthSearchCatalog

        return EarthSearchCatalog(**options)
    if name == "planetary-computer":
        from imagery.sources.planetary_computer import PlanetaryComputerCatalog

        return PlanetaryComputerCatalog(**options)
    if name == "sentinelhub":
        from imagery.sources.cdse import SentinelHubCatalogSource

        return SentinelHubCatalogSource(**options)
    raise InputError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")


def resolve_aoi(aoi: Aoi | str) -> Aoi:
    from imagery.aoi import Aoi

    if isinstance(aoi, Aoi):
        return aoi
    if isinstance(aoi, str):
        from imagery import aoi as aoi_module

        get_aoi = getattr(aoi_module, "get_aoi", None)
        if get_aoi is None:  # the registry is not installed in this checkout
            raise InputError(f"cannot resolve AOI {aoi!r}: imagery.aoi.get_aoi is not available")
        return get_aoi(aoi)
    raise InputError(f"expected an Aoi or an AOI name/spec, got {type(aoi).__name__}")


def search(
    aoi: Aoi | str,
    start: date | datetime | str,
    end: date | datetime | str,
    *,
    collection: str = "sentinel-2-l2a",
    source: str | Catalog = "earth-search",
    max_cloud: float | None = None,
    limit: int | None = None,
    **options: Any,
) -> list[Scene]:
    """Acquisitions over ``aoi`` between ``start`` and ``end`` (UTC; dates inclusive), oldest first.

    An empty list means the source has nothing matching; a period or AOI the collection cannot cover
    raises ``CoverageError``.
    """
    area = resolve_aoi(aoi)
    catalog = source if not isinstance(source, str) else get_catalog(source, **options)
    return catalog.search(area, start, end, collection=collection, max_cloud=max_cloud, limit=limit)


def scene_summary(scene: Scene) -> dict[str, Any]:
    """A JSON-ready row for one scene (what `harborwatch search --json` prints)."""
    cov = scene.properties.get("aoi_coverage")
    return {
        "id": scene.id,
        "datetime": scene.datetime.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": scene.source,
        "collection": scene.collection,
        "platform": scene.platform,
        "processing_level": scene.processing_level,
        "processing_baseline": scene.processing_baseline,
        "cloud_cover_pct": None if scene.cloud_cover is None else round(scene.cloud_cover, 2),
        "aoi_coverage_pct": None if cov is None else round(100 * cov, 1),
        "crs": scene.crs,
        "bands": list(scene.bands),
        "requester_pays": bool(scene.properties.get("requester_pays", False)),
    }
