"""The small frozen records that carry the imagery pipeline: grids, scenes and raster windows.

Geospatial metadata (CRS, transform, band names, acquisition time) travels with every array.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np
from affine import Affine

from imagery.errors import MissingBandsError

#: Sentinel-2 MSI band names in product order, and their native resolution in metres.
S2_BANDS: Mapping[str, float] = MappingProxyType(
    {
        "B01": 60.0, "B02": 10.0, "B03": 10.0, "B04": 10.0, "B05": 20.0, "B06": 20.0, "B07": 20.0,
        "B08": 10.0, "B8A": 20.0, "B09": 60.0, "B10": 60.0, "B11": 20.0, "B12": 20.0,
    }
)
#: Band-like layers that are classifications, not reflectance (resampled with nearest neighbour).
CATEGORICAL_LAYERS = frozenset({"SCL", "CLM", "CLD", "dataMask"})
#: The class layers whose 0 means "no data" (SCL class 0, Sentinel Hub's dataMask); CLM and CLD: 0 is clear.
ZERO_IS_NODATA = frozenset({"SCL", "dataMask"})


def valid_pixels(names: tuple[str, ...] | list[str], data: np.ndarray) -> np.ndarray:
    """Where every layer has data: reflectance finite, SCL and dataMask not 0 (the readers' ``valid``)."""
    valid = np.ones(data.shape[1:], dtype=bool)
    for b, layer in zip(names, data, strict=True):
        valid &= (layer != 0) if b in ZERO_IS_NODATA else np.isfinite(layer)
    return valid


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS, affine transform and shape. Pixel (0, 0) is the top-left."""

    crs: str
    transform: Affine
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"grid must have positive shape, got {self.width}x{self.height}")

    @property
    def res_m(self) -> float:
        """Pixel size in CRS units (metres for UTM grids)."""
        return abs(self.transform.a)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return (min(left, right), min(top, bottom), max(left, right), max(top, bottom))

    @property
    def area_km2(self) -> float:
        return self.width * self.height * abs(self.transform.a * self.transform.e) / 1e6

    def key(self) -> str:
        """A stable text form, used in cache keys."""
        t = self.transform
        coeffs = ",".join(f"{v:.6f}" for v in (t.a, t.b, t.c, t.d, t.e, t.f))
        return f"{self.crs}|{coeffs}|{self.width}x{self.height}"

    @classmethod
    def from_bounds(cls, crs: str, bounds: tuple[float, float, float, float], res_m: float) -> Grid:
        """Grid covering ``bounds`` with edges snapped outwards to multiples of ``res_m``.

        Snapping to the resolution keeps every AOI grid aligned with the Sentinel-2 UTM tile
        grid (whose origins are multiples of 60 m), so 10 m bands need no resampling.
        """
        left, bottom, right, top = bounds
        left = math.floor(left / res_m) * res_m
        bottom = math.floor(bottom / res_m) * res_m
        right = math.ceil(right / res_m) * res_m
        top = math.ceil(top / res_m) * res_m
        width = max(1, round((right - left) / res_m))
        height = max(1, round((top - bottom) / res_m))
        return cls(crs=crs, transform=Affine(res_m, 0.0, left, 0.0, -res_m, top), width=width, height=height)


@dataclass(frozen=True)
class Asset:
    """Where one band of a scene lives: an href (https, s3, file path) or a request for an API source."""

    href: str
    band: str
    media_type: str | None = None
    #: Additive DN offset applied before scaling: -1000 for baseline >= 04.00 products not yet corrected.
    offset_dn: float = 0.0
    #: Multiplier from DN to reflectance (1e-4 for Sentinel-2 L1C/L2A DN).
    scale: float = 1e-4
    nodata: float | None = 0
    #: Source-specific request payload (e.g. a Sentinel Hub evalscript); not part of equality.
    request: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Scene:
    """One acquisition as a catalogue reports it."""

    id: str
    source: str
    collection: str
    datetime: datetime  # timezone-aware UTC
    platform: str  # e.g. "sentinel-2a", "sentinel-1b"
    processing_level: str  # "L1C", "L2A", "GRD"
    cloud_cover: float | None  # percent over the whole tile/granule, as the catalogue reports it
    footprint: Any  # shapely geometry in EPSG:4326
    assets: Mapping[str, Asset]  # band name (B02, SCL, VV, ...) -> Asset
    crs: str | None = None  # native CRS of the assets, e.g. "EPSG:32651"
    processing_baseline: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.datetime.tzinfo is None:
            raise ValueError(f"scene {self.id}: datetime must be timezone-aware (UTC)")

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(self.assets)


@dataclass(frozen=True, eq=False)
class RasterWindow:
    """Pixels of one scene over one grid, bands aligned.

    ``data`` is float32 (bands, height, width); optical bands hold top-of-atmosphere (L1C) or
    surface (L2A) reflectance on the 0–1 scale, harmonised across processing baselines.
    ``valid`` is True where every band has data.
    """

    data: np.ndarray
    band_names: tuple[str, ...]
    grid: Grid
    acquired: datetime | None = None
    valid: np.ndarray | None = None
    scene_id: str | None = None
    source: str | None = None
    processing_level: str | None = None
    cloud: np.ndarray | None = None  # bool mask, True = cloud or cloud shadow
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise ValueError(f"RasterWindow.data must be (bands, height, width), got shape {self.data.shape}")
        if self.data.shape[0] != len(self.band_names):
            raise ValueError(f"{self.data.shape[0]} bands in data but {len(self.band_names)} band names")
        if self.data.shape[1:] != self.grid.shape:
            raise ValueError(f"data shape {self.data.shape[1:]} does not match grid shape {self.grid.shape}")

    @property
    def transform(self) -> Affine:
        return self.grid.transform

    @property
    def crs(self) -> str:
        return self.grid.crs

    @property
    def valid_mask(self) -> np.ndarray:
        if self.valid is not None:
            return self.valid
        return np.all(np.isfinite(self.data), axis=0)

    @property
    def valid_fraction(self) -> float:
        return float(self.valid_mask.mean()) if self.valid_mask.size else 0.0

    @property
    def cloud_fraction(self) -> float | None:
        """Fraction of valid pixels flagged cloud/shadow, or None when no mask was computed."""
        if self.cloud is None:
            return None
        valid = self.valid_mask
        n = int(valid.sum())
        return float((self.cloud & valid).sum() / n) if n else None

    def without_empty_bands(self) -> RasterWindow:
        """This window less every reflectance band with no finite pixel (listed but all nodata: an empty
        asset, a masked band), with ``valid`` rebuilt over what is kept as the catalogue reader builds it
        (``valid_pixels``) where the empty band had blanked it. Class layers (``CATEGORICAL_LAYERS``) are
        always kept. The bands left out are kept in ``meta["empty_bands"]``, so asking for one later names
        it as empty, not missing (``missing_bands``). The window itself when no reflectance band, or every
        one, is empty."""
        bands = self.band_names
        reflectance = [i for i, b in enumerate(bands) if b not in CATEGORICAL_LAYERS]
        empty = [i for i in reflectance if not np.isfinite(self.data[i]).any()]
        if not empty or len(empty) == len(reflectance):
            return self
        kept = [i for i in range(len(bands)) if i not in empty]
        data = self.data[kept]
        names = tuple(bands[i] for i in kept)
        valid = valid_pixels(names, data)
        if self.valid is not None and self.valid.any():  # a mask that says more than the empty band did
            valid &= self.valid
        empty_bands = (*self.meta.get("empty_bands", ()), *(bands[i] for i in empty))
        meta = {**self.meta, "empty_bands": empty_bands}
        return replace(self, data=data, band_names=names, valid=valid, meta=meta)

    def missing_bands(
        self, missing: list[str] | tuple[str, ...], context: str | None = None
    ) -> MissingBandsError:
        """The MissingBandsError for ``missing`` (``context``: default the scene id), saying which of them
        the scene listed with no data at all (``without_empty_bands``)."""
        where = context or self.scene_id or "raster window"
        empty = [b for b in missing if b in self.meta.get("empty_bands", ())]
        if empty:
            where += f" ({', '.join(empty)} listed, but all nodata)"
        return MissingBandsError(missing, where)

    def band(self, name: str) -> np.ndarray:
        try:
            return self.data[self.band_names.index(name)]
        except ValueError:
            raise self.missing_bands([name]) from None

    def select(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """Stack the named bands in the given order; raises MissingBandsError naming every absent band."""
        missing = [n for n in names if n not in self.band_names]
        if missing:
            raise self.missing_bands(missing)
        return np.stack([self.data[self.band_names.index(n)] for n in names])
