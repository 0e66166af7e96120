"""Areas of interest: the bundled registry of ports and border bridges, and user AOIs from GeoJSON or a bbox.

Geometries are stored in EPSG:4326 (lon, lat); every AOI knows its UTM grid at 10 m, the grid
all imagery is read onto.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry
from shapely.ops import transform as shapely_transform

from imagery.errors import AoiError
from imagery.types import Grid

ZONE_KINDS = ("berth", "anchorage", "port", "bridge_deck", "road", "water", "other")
AOI_KINDS = ("port", "bridge", "anchorage", "custom")


@dataclass(frozen=True)
class Zone:
    """A named part of an AOI where counts are taken (a berth, an anchorage, a bridge deck).

    Line zones (bridge decks, roads) are counted inside ``buffer_m`` metres of the line.
    """

    name: str
    kind: str
    geometry: BaseGeometry  # EPSG:4326
    buffer_m: float = 0.0
    description: str = ""
    certainty: str = ""  # how sure we are of the boundary, in words
    source: str = ""  # where the coordinates come from

    def area_geometry(self, crs: str) -> BaseGeometry:
        """The zone as an area in ``crs`` (metres): lines and points buffered by ``buffer_m``."""
        geom = to_crs(self.geometry, crs)
        if self.buffer_m > 0:
            geom = geom.buffer(self.buffer_m)
        return geom


@dataclass(frozen=True)
class Aoi:
    """An area of interest with its zones, in EPSG:4326."""

    name: str
    kind: str
    geometry: BaseGeometry  # polygon, EPSG:4326
    zones: tuple[Zone, ...] = ()
    description: str = ""
    source: str = ""
    certainty: str = ""
    properties: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.geometry is None or self.geometry.is_empty:
            raise AoiError(f"AOI {self.name!r} has an empty geometry")
        if not self.geometry.is_valid:
            raise AoiError(f"AOI {self.name!r} has an invalid geometry")
        minx, miny, maxx, maxy = self.geometry.bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise AoiError(
                f"AOI {self.name!r} bounds {self.geometry.bounds} are not lon/lat degrees (EPSG:4326 expected)"
            )

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees."""
        return tuple(self.geometry.bounds)  # type: ignore[return-value]

    @property
    def utm_crs(self) -> str:
        """The UTM zone CRS of the AOI centroid, e.g. ``EPSG:32651``."""
        return utm_crs_for(self.geometry.centroid.x, self.geometry.centroid.y)

    def grid(self, res_m: float = 10.0, crs: str | None = None) -> Grid:
        """The AOI's pixel grid: its bounds in ``crs`` (default: its UTM zone), snapped to ``res_m``."""
        crs = crs or self.utm_crs
        return Grid.from_bounds(crs, to_crs(self.geometry, crs).bounds, res_m)

    def zone(self, name: str) -> Zone:
        for z in self.zones:
            if z.name == name:
                return z
        raise AoiError(f"AOI {self.name!r} has no zone {name!r}; zones: {', '.join(z.name for z in self.zones)}")


def utm_crs_for(lon: float, lat: float) -> str:
    """EPSG code of the WGS84 UTM zone containing (lon, lat)."""
    zone = int((lon + 180) // 6) % 60 + 1
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


def to_crs(geom: BaseGeometry, crs: str, src_crs: str = "EPSG:4326") -> BaseGeometry:
    """Reproject a shapely geometry (always_xy: lon, lat order)."""
    if CRS.from_user_input(crs) == CRS.from_user_input(src_crs):
        return geom
    tr = Transformer.from_crs(src_crs, crs, always_xy=True)
    return shapely_transform(tr.transform, geom)
