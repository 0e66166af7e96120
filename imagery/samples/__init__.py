"""Bundled sample imagery: small real Sentinel-2 L2A port chips that the demo and tests use offline.

Each sample is a folder ``<id>/`` with ``<id>.tif`` (4-band B02 B03 B04 B08 COG, UTM 10 m, uint16 DN
× 10000 with a ``REFLECTANCE_SCALE`` tag), ``scene.json`` and ``vessels.geojson`` (labelled vessels).
Derived from sen2ships (MIT) by ``tools/make_samples.py``; see ``NOTICE``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shapely.geometry import box

from imagery.errors import InputError
from imagery.types import Asset, RasterWindow, Scene

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


@dataclass(frozen=True)
class SampleInfo:
    """One bundled sample chip."""

    id: str
    path: Path  # the multi-band GeoTIFF
    datetime: datetime  # UTC; approximate (see scene.json "datetime_note")
    bbox: tuple[float, float, float, float]  # west, south, east, north in degrees
    vessels: Path  # GeoJSON FeatureCollection of labelled vessels (lon/lat polygons, length_m)
    bands: tuple[str, ...]
    crs: str
    city: str
    vessel_count: int
    processing_level: str = "L2A"


def sample_dir() -> Path:
    """The folder holding the bundled samples (inside the installed package)."""
    return Path(__file__).resolve().parent


def list_samples() -> list[SampleInfo]:
    """All bundled samples, sorted by id."""
    out = []
    for meta_path in sorted(sample_dir().glob("*/scene.json")):
        meta = json.loads(meta_path.read_text())
        folder = meta_path.parent
        out.append(SampleInfo(
            id=meta["id"],
            path=folder / f"{meta['id']}.tif",
            datetime=datetime.fromisoformat(meta["datetime"].replace("Z", "+00:00")),
            bbox=tuple(meta["bbox"]),
            vessels=folder / "vessels.geojson",
            bands=tuple(meta["bands"]),
            crs=meta["crs"],
            city=meta["city"],
            vessel_count=int(meta["vessel_count"]),
            processing_level=meta.get("processing_level", "L2A"),
        ))
    return out


def get_sample(sample_id: str) -> SampleInfo:
    """The sample called ``sample_id`` (e.g. ``durban-2023-08-21``); InputError listing the ids otherwise."""
    samples = list_samples()
    for s in samples:
        if s.id == sample_id:
            return s
    raise InputError(f"no bundled sample {sample_id!r}; samples: {', '.join(s.id for s in samples)}")


def open_sample(sample_id: str, bands: tuple[str, ...] | list[str] | None = None) -> RasterWindow:
    """The sample's pixels as a ``RasterWindow`` on its own UTM 10 m grid (reflectance 0–1)."""
    from imagery.read import open_raster

    s = get_sample(sample_id)
    return open_raster(s.path, bands, acquired=s.datetime, scene_id=s.id)


def sample_scene(sample_id: str) -> Scene:
    """The sample as a local ``Scene`` (one asset per band of the multi-band file), for ``read_window``."""
    s = get_sample(sample_id)
    href = str(s.path)
    return Scene(
        id=s.id,
        source="sample",
        collection="sen2ships-sample",
        datetime=s.datetime,
        platform="sentinel-2",
        processing_level=s.processing_level,
        cloud_cover=None,
        footprint=box(*s.bbox),
        assets={b: Asset(href=href, band=b, media_type=COG_MEDIA_TYPE, offset_dn=0.0, scale=1e-4, nodata=0)
                for b in s.bands},
        crs=s.crs,
    )
