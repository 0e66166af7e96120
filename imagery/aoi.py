"""Areas of interest: the bundled registry of ports and border bridges, and user AOIs from GeoJSON or a bbox.

Geometries are stored in EPSG:4326 (lon, lat); every AOI knows its UTM grid at 10 m, the grid
all imagery is read onto. The registry is one GeoJSON FeatureCollection per AOI in ``imagery/aois/``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from pyproj import CRS, Transformer
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from shapely.validation import explain_validity

from imagery.atomic import atomic_write_text
from imagery.errors import AoiError
from imagery.types import Grid

log = logging.getLogger(__name__)

ZONE_KINDS = ("berth", "anchorage", "port", "bridge_deck", "road", "water", "other")
AOI_KINDS = ("port", "bridge", "anchorage", "custom")
#: Zone kinds drawn as a line and counted within ``buffer_m`` of it.
LINE_ZONE_KINDS = ("bridge_deck", "road")
#: The widest AOI in degrees of longitude or latitude. An AOI is a port or a border bridge (the bundled ones
#: span about 0.1°) read onto one UTM grid; a country or the world would give a distorted, enormous grid.
MAX_AOI_SPAN_DEG = 2.0

_POLYGONAL = ("Polygon", "MultiPolygon")
_LINEAR = ("LineString", "MultiLineString")
_BBOX_RE = re.compile(r"^\s*" + r"\s*,\s*".join([r"([-+]?(?:\d+\.?\d*|\.\d+))"] * 4) + r"\s*$")
# GeoJSON 2008 "crs" members that still mean lon/lat WGS84.
_LONLAT_CRS_NAMES = ("urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "EPSG:4326",
                     "urn:ogc:def:crs:EPSG::4326", "CRS84")


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
            raise AoiError(f"AOI {self.name!r} has an invalid geometry: {explain_validity(self.geometry)}")
        minx, miny, maxx, maxy = self.geometry.bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise AoiError(
                f"AOI {self.name!r} bounds {self.geometry.bounds} are not lon/lat degrees "
                "(EPSG:4326 expected)"
            )
        touching = [z.geometry for z in self.zones if z.geometry.intersects(self.geometry)]
        if touching:  # the grid covers them too (``grid``); a zone entirely outside is refused on loading
            zx0, zy0, zx1, zy1 = shapely.union_all(touching).bounds
            minx, miny, maxx, maxy = min(minx, zx0), min(miny, zy0), max(maxx, zx1), max(maxy, zy1)
        if max(maxx - minx, maxy - miny) > MAX_AOI_SPAN_DEG:
            raise AoiError(
                f"AOI {self.name!r} spans {maxx - minx:g} x {maxy - miny:g} degrees (lon x lat); an AOI is a "
                f"port or a border bridge, at most {MAX_AOI_SPAN_DEG:g} degrees either way (one across the "
                "antimeridian is not supported: split it)"
            )

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees."""
        return tuple(self.geometry.bounds)  # type: ignore[return-value]

    @property
    def centre(self) -> tuple[float, float]:
        """(lon, lat) of the geometry's centroid."""
        c = self.geometry.centroid
        return (c.x, c.y)

    @property
    def utm_crs(self) -> str:
        """The UTM zone CRS of the AOI centroid, e.g. ``EPSG:32651``."""
        return utm_crs_for(self.geometry.centroid.x, self.geometry.centroid.y)

    @property
    def area_km2(self) -> float:
        """Area of the AOI polygon in its UTM zone."""
        return to_crs(self.geometry, self.utm_crs).area / 1e6

    def grid(self, res_m: float = 10.0, crs: str | None = None) -> Grid:
        """The AOI's pixel grid: the bounds of its outline and its zones in ``crs`` (default: its UTM zone),
        snapped to ``res_m``. A zone reaching beyond the outline is read whole, so its observed fraction is
        measured over all of it, not over the part inside the outline."""
        crs = crs or self.utm_crs
        outline = to_crs(self.geometry, crs)
        zones = [z.area_geometry(crs) for z in self.zones]
        parts = [outline, *(z for z in zones if z.intersects(outline))]
        return Grid.from_bounds(crs, shapely.union_all(parts).bounds, res_m)

    def zone(self, name: str) -> Zone:
        for z in self.zones:
            if z.name == name:
                return z
        known = ", ".join(z.name for z in self.zones) or "none"
        raise AoiError(f"AOI {self.name!r} has no zone {name!r}; zones: {known}")


def utm_crs_for(lon: float, lat: float) -> str:
    """EPSG code of the WGS84 UTM zone containing (lon, lat)."""
    zone = int((lon + 180) // 6) % 60 + 1
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


def to_crs(geom: BaseGeometry, crs: str, src_crs: str = "EPSG:4326") -> BaseGeometry:
    """Reproject a shapely geometry (always_xy: lon, lat order)."""
    try:  # cached by CRS; anything unhashable that pyproj still understands goes the slow way
        same, tr = _same_crs(crs, src_crs), _transformer(src_crs, crs)
    except TypeError:
        same = CRS.from_user_input(crs) == CRS.from_user_input(src_crs)
        tr = Transformer.from_crs(src_crs, crs, always_xy=True)
    if same:
        return geom
    return shapely.transform(geom, lambda x, y: tr.transform(x, y), interleaved=False)


# Parsing a CRS and building a transformer take milliseconds; detections are reprojected one by one.
@functools.lru_cache(maxsize=64)
def _same_crs(a: Any, b: Any) -> bool:
    return a == b or CRS.from_user_input(a) == CRS.from_user_input(b)


@functools.lru_cache(maxsize=32)
def _transformer(src_crs: Any, dst_crs: Any) -> Transformer:
    return Transformer.from_crs(src_crs, dst_crs, always_xy=True)


# ---------------------------------------------------------------------------------------------------
# Registry


def aois() -> dict[str, Aoi]:
    """The bundled AOIs by name (``longkou-port``, ``dandong-bridges``, ...), sorted by name."""
    return {a.name: a for a in _bundled()}


def aoi_names() -> list[str]:
    return [a.name for a in _bundled()]


#: The bundled registry, shipped as package data. Found beside this module rather than through
#: ``importlib.resources.files("imagery")``, which a ``tests/imagery/`` folder on sys.path can shadow.
BUNDLED_DIR = Path(__file__).resolve().with_name("aois")


@functools.lru_cache(maxsize=1)
def _bundled() -> tuple[Aoi, ...]:
    found = []
    for path in sorted(BUNDLED_DIR.glob("*.geojson")):
        aoi = aoi_from_geojson(path, origin=f"bundled:{path.name}")
        if aoi.name != path.stem:
            raise AoiError(f"bundled AOI file {path.name} names its AOI {aoi.name!r}; names must match")
        found.append(aoi)
    return tuple(found)


def get_aoi(spec: str | os.PathLike[str] | Aoi) -> Aoi:
    """An AOI from a registry name, a GeoJSON file path or a bbox ``"west,south,east,north"`` in degrees."""
    if isinstance(spec, Aoi):
        return spec
    if isinstance(spec, os.PathLike):
        return aoi_from_geojson(spec)
    text = str(spec).strip()
    registry = aois()
    if text.lower() in registry:
        return registry[text.lower()]
    path = Path(text).expanduser()
    if path.exists() or text.lower().endswith((".geojson", ".json")) or os.sep in text:
        return aoi_from_geojson(path)
    if "," in text:  # AOI names never hold commas: a (possibly mistyped) bbox
        return aoi_from_bbox(text)
    raise AoiError(
        f"unknown AOI {text!r}: not a bundled AOI, a GeoJSON file or a bbox 'west,south,east,north'; "
        f"known AOIs: {', '.join(registry)}"
    )


# ---------------------------------------------------------------------------------------------------
# User AOIs


def aoi_from_bbox(
    bbox: str | Sequence[float], name: str | None = None, kind: str = "custom"
) -> Aoi:
    """An AOI from ``(west, south, east, north)`` in degrees, or the same as a comma-separated string."""
    if isinstance(bbox, str):
        m = _BBOX_RE.match(bbox)
        if not m:
            raise AoiError(f"bbox {bbox!r} must be four numbers 'west,south,east,north' in degrees")
        values = [float(v) for v in m.groups()]
    else:
        values = [float(v) for v in bbox]
        if len(values) != 4:
            raise AoiError(f"bbox needs 4 numbers (west, south, east, north), got {len(values)}")
    west, south, east, north = values
    if not all(math.isfinite(v) for v in values):
        raise AoiError(f"bbox {values} has a non-finite number")
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise AoiError(
            f"bbox longitudes must lie in -180..180 degrees, got west={west:.10g}, east={east:.10g}"
        )
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise AoiError(
            f"bbox latitudes must lie in -90..90 degrees, got south={south:.10g}, north={north:.10g}"
        )
    if west >= east:
        raise AoiError(
            f"bbox west ({west:.10g}) must be less than east ({east:.10g}); order is west,south,east,north "
            "and boxes across the antimeridian are not supported"
        )
    if south >= north:
        raise AoiError(
            f"bbox south ({south:.10g}) must be less than north ({north:.10g}); "
            "order is west,south,east,north"
        )
    name = name or f"bbox:{west:.10g},{south:.10g},{east:.10g},{north:.10g}"
    return Aoi(
        name=name,
        kind=_check_kind(kind, AOI_KINDS, "AOI kind", name),
        geometry=box(west, south, east, north),
        description=f"bounding box {west:.10g},{south:.10g},{east:.10g},{north:.10g}",
        source="user bbox",
        certainty="exact as given",
        properties={"origin": "bbox"},
    )


def aoi_from_geojson(
    src: str | os.PathLike[str] | Mapping[str, Any], name: str | None = None, *, origin: str | None = None
) -> Aoi:
    """An AOI from a GeoJSON file or dict: Polygon/MultiPolygon Feature(s) or FeatureCollection, lon/lat.

    Features with a ``zone`` property become zones (``kind``, ``buffer_m``, ``description``, ``source``,
    ``certainty``); polygons without one make up the AOI outline. With no outline, the AOI is the
    union of the zones' areas.
    """
    if isinstance(src, Mapping):
        doc, label, stem = src, "GeoJSON", None
    else:
        path = Path(src)
        doc, label, stem = _read_json(path), str(path), path.stem
        origin = origin or str(path)
    if not isinstance(doc, Mapping) or "type" not in doc:
        raise AoiError(f"{label}: not a GeoJSON object (no 'type' member)")
    _check_crs_member(doc, label)
    _check_lonlat(doc, label)

    collection_name = doc.get("name") if isinstance(doc.get("name"), str) else None
    outline_parts: list[BaseGeometry] = []
    outline_props: dict[str, Any] = {}
    zones: list[Zone] = []
    for props, geom_doc in _features(doc, label):
        if props.get("zone") is not None:
            zones.append(_zone_from_feature(props, geom_doc, label))
            continue
        if geom_doc is None or geom_doc.get("type") not in _POLYGONAL:
            continue  # points, labels and lines without a zone are not part of the outline
        outline_parts.append(_shape(geom_doc, label))
        outline_props = outline_props or dict(props)

    _check_zone_names(zones, label)
    aoi_name = name or outline_props.get("name") or collection_name or stem or "custom"
    outline_parts = [g for g in outline_parts if not g.is_empty]
    if outline_parts:
        geometry = unary_union(outline_parts)
    elif zones:
        utm = _zones_utm(zones)
        geometry = to_crs(unary_union([z.area_geometry(utm) for z in zones]), "EPSG:4326", utm)
    elif _has_polygon(doc):
        raise AoiError(f"{label}: the polygon is empty")
    else:
        raise AoiError(
            f"{label}: no Polygon or MultiPolygon found (an AOI needs an area; "
            "lines need a 'zone' property and 'buffer_m')"
        )
    if geometry.is_empty:
        raise AoiError(f"{label}: the polygon is empty")

    aoi = Aoi(
        name=str(aoi_name),
        kind=_check_kind(str(outline_props.get("kind", "custom")), AOI_KINDS, "AOI kind", label),
        geometry=geometry,
        zones=tuple(zones),
        description=str(outline_props.get("description", "")),
        source=_text(outline_props.get("source", "")),
        certainty=str(outline_props.get("certainty", "")),
        properties={"origin": origin or "geojson"},
    )
    for z in aoi.zones:
        _check_zone_inside(aoi, z, label)
    return aoi


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AoiError(f"no such GeoJSON file: {path}") from None
    except IsADirectoryError:
        raise AoiError(f"{path} is a folder, not a GeoJSON file") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise AoiError(f"cannot read GeoJSON file {path}: {reason}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise AoiError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


_FeatureParts = tuple[dict[str, Any], "Mapping[str, Any] | None"]


def _features(doc: Mapping[str, Any], label: str) -> Iterator[_FeatureParts]:
    """(properties, geometry) of each feature, for FeatureCollection, Feature or bare geometry."""
    kind = doc.get("type")
    if kind == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise AoiError(f"{label}: FeatureCollection has no 'features' list")
        for f in features:
            yield from _features(f, label)
    elif kind == "Feature":
        props = doc.get("properties") or {}
        if not isinstance(props, Mapping):
            raise AoiError(f"{label}: a feature's 'properties' is not an object")
        yield dict(props), doc.get("geometry")
    elif kind == "GeometryCollection":
        for g in doc.get("geometries") or []:
            yield {}, g
    elif kind in (*_POLYGONAL, *_LINEAR, "Point", "MultiPoint"):
        yield {}, doc
    else:
        raise AoiError(f"{label}: unsupported GeoJSON type {kind!r}")


def _shape(geom_doc: Mapping[str, Any], label: str) -> BaseGeometry:
    try:
        return shape(geom_doc)
    except Exception as e:  # shapely raises several types for malformed coordinates
        raise AoiError(f"{label}: malformed {geom_doc.get('type')} geometry ({e})") from None


def _zone_from_feature(props: Mapping[str, Any], geom_doc: Mapping[str, Any] | None, label: str) -> Zone:
    zname = str(props["zone"])
    where = f"{label}: zone {zname!r}"
    if not geom_doc:
        raise AoiError(f"{where} has no geometry")
    geom = _shape(geom_doc, where)
    if geom.is_empty:
        raise AoiError(f"{where} has an empty geometry")
    if not geom.is_valid:
        raise AoiError(f"{where} has an invalid geometry: {explain_validity(geom)}")
    kind = _check_kind(str(props.get("kind", "other")), ZONE_KINDS, "zone kind", where)
    try:
        buffer_m = float(props.get("buffer_m") or 0.0)
    except (TypeError, ValueError):
        bad = props.get("buffer_m")
        raise AoiError(f"{where}: buffer_m must be a number of metres, got {bad!r}") from None
    if not (math.isfinite(buffer_m) and buffer_m >= 0):
        raise AoiError(f"{where}: buffer_m must be >= 0 metres, got {buffer_m:g}")
    if geom.geom_type not in _POLYGONAL and buffer_m <= 0:
        raise AoiError(
            f"{where} is a {geom.geom_type}: give it 'buffer_m' (metres either side) to make an area"
        )
    return Zone(
        name=zname,
        kind=kind,
        geometry=geom,
        buffer_m=buffer_m,
        description=str(props.get("description", "")),
        certainty=str(props.get("certainty", "")),
        source=_text(props.get("source", "")),
    )


def _check_kind(kind: str, allowed: Sequence[str], what: str, where: str) -> str:
    if kind not in allowed:
        raise AoiError(f"{where}: {what} {kind!r} is not one of {', '.join(allowed)}")
    return kind


def _text(value: Any) -> str:
    """Source fields may be a string or a list of strings."""
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    return str(value)


def _check_crs_member(doc: Mapping[str, Any], label: str) -> None:
    """Reject a GeoJSON-2008 ``crs`` member naming a projected CRS (RFC 7946 allows only lon/lat)."""
    crs = doc.get("crs")
    if not isinstance(crs, Mapping):
        return
    crs_name = str((crs.get("properties") or {}).get("name", ""))
    if crs_name and crs_name not in _LONLAT_CRS_NAMES:
        raise AoiError(
            f"{label} declares CRS {crs_name}: GeoJSON must be lon/lat WGS84 (RFC 7946); "
            "reproject it, e.g. ogr2ogr -t_srs EPSG:4326 out.geojson in.geojson"
        )


def _check_lonlat(doc: Mapping[str, Any], label: str) -> None:
    """Coordinates beyond ±180/±90 mean metres in a projected CRS, not degrees."""
    for x, y in _coordinates(doc):
        if not (math.isfinite(x) and math.isfinite(y)):
            raise AoiError(f"{label}: coordinate ({x}, {y}) is not a number")
        if abs(x) > 360 or abs(y) > 180:  # far outside degrees: metres
            raise AoiError(
                f"{label}: coordinate ({x:g}, {y:g}) is outside lon -180..180 / lat -90..90; the file looks "
                "projected (metres), but GeoJSON must be lon/lat WGS84 (RFC 7946): reproject it to EPSG:4326"
            )
        if not (-180 <= x <= 180 and -90 <= y <= 90):
            raise AoiError(f"{label}: coordinate ({x:g}, {y:g}) is outside lon -180..180 / lat -90..90")


def _coordinates(node: Any) -> Iterator[tuple[float, float]]:
    if isinstance(node, Mapping):
        if "coordinates" in node:
            yield from _positions(node["coordinates"])
        for key in ("features", "geometries"):
            for child in node.get(key) or []:
                yield from _coordinates(child)
        if "geometry" in node:
            yield from _coordinates(node["geometry"])


def _positions(c: Any) -> Iterator[tuple[float, float]]:
    if isinstance(c, (list, tuple)) and len(c) >= 2 and all(isinstance(v, (int, float)) for v in c[:2]):
        yield float(c[0]), float(c[1])
    elif isinstance(c, (list, tuple)):
        for item in c:
            yield from _positions(item)


def _has_polygon(doc: Mapping[str, Any]) -> bool:
    if doc.get("type") in _POLYGONAL:
        return True
    children = [doc.get("geometry"), *(doc.get("features") or []), *(doc.get("geometries") or [])]
    return any(isinstance(c, Mapping) and _has_polygon(c) for c in children)


#: The zone name counts use for the whole AOI (``detect.counting.aggregate.ALL_ZONE``).
WHOLE_AOI_ZONE = "all"


def _check_zone_names(zones: Sequence[Zone], label: str) -> None:
    """Counts, masks and tables are keyed by zone name: two zones of one name would be merged (one
    overwriting the other's area), and a zone named ``all`` would be replaced by the whole AOI."""
    seen: set[str] = set()
    for z in zones:
        if not z.name.strip():
            raise AoiError(f"{label}: a zone has an empty name")
        if z.name == WHOLE_AOI_ZONE:
            raise AoiError(f"{label}: zone name {z.name!r} is reserved for the whole AOI; rename the zone")
        if z.name in seen:
            raise AoiError(f"{label}: two zones are named {z.name!r}; give each zone its own name")
        seen.add(z.name)


def _zones_utm(zones: Sequence[Zone]) -> str:
    c = unary_union([z.geometry for z in zones]).centroid
    return utm_crs_for(c.x, c.y)


def _check_zone_inside(aoi: Aoi, zone: Zone, label: str) -> None:
    utm = aoi.utm_crs
    area = zone.area_geometry(utm)
    outline = to_crs(aoi.geometry, utm)
    if not area.intersects(outline):
        raise AoiError(f"{label}: zone {zone.name!r} lies entirely outside the AOI outline")
    outside = area.difference(outline).area
    if outside > 0.01 * area.area:
        log.warning("AOI %s: %.0f%% of zone %s lies outside the AOI outline; the AOI's grid reaches out to "
                    "read all of it", aoi.name, 100 * outside / area.area, zone.name)


# ---------------------------------------------------------------------------------------------------
# Descriptions and export


def aoi_summary(aoi: Aoi) -> dict[str, Any]:
    """One line of ``harborwatch aoi list``: name, kind, centre, area and zones."""
    lon, lat = aoi.centre
    return {
        "name": aoi.name,
        "kind": aoi.kind,
        "centre": [round(lon, 5), round(lat, 5)],
        "area_km2": round(aoi.area_km2, 2),
        "zones": [{"name": z.name, "kind": z.kind} for z in aoi.zones],
    }


def aoi_details(aoi: Aoi, res_m: float = 10.0) -> dict[str, Any]:
    """Everything ``harborwatch aoi show`` prints: zones with areas, sources, certainty, UTM grid."""
    utm = aoi.utm_crs
    grid = aoi.grid(res_m)
    zones = []
    for z in aoi.zones:
        local = to_crs(z.geometry, utm)
        zones.append({
            "name": z.name,
            "kind": z.kind,
            "geometry_type": z.geometry.geom_type,
            "buffer_m": z.buffer_m,
            "length_m": round(local.length, 1) if z.geometry.geom_type in _LINEAR else None,
            "area_km2": round(z.area_geometry(utm).area / 1e6, 4),
            "description": z.description,
            "source": z.source,
            "certainty": z.certainty,
        })
    return {
        **aoi_summary(aoi),
        "description": aoi.description,
        "source": aoi.source,
        "certainty": aoi.certainty,
        "origin": aoi.properties.get("origin"),
        "bbox": [round(v, 6) for v in aoi.bbox],
        "utm_crs": utm,
        "grid": {
            "crs": grid.crs,
            "res_m": grid.res_m,
            "width": grid.width,
            "height": grid.height,
            "pixels": grid.width * grid.height,
            "bounds": [round(v, 1) for v in grid.bounds],
        },
        "zones": zones,
    }


def aoi_to_geojson(aoi: Aoi) -> dict[str, Any]:
    """The AOI as a FeatureCollection in the registry's format: outline feature, then one feature per zone."""
    outline = {
        "type": "Feature",
        "properties": {
            "name": aoi.name,
            "kind": aoi.kind,
            "description": aoi.description,
            "source": aoi.source,
            "certainty": aoi.certainty,
        },
        "geometry": mapping(aoi.geometry),
    }
    zones = [
        {
            "type": "Feature",
            "properties": {
                "zone": z.name,
                "kind": z.kind,
                **({"buffer_m": z.buffer_m} if z.buffer_m else {}),
                "description": z.description,
                "source": z.source,
                "certainty": z.certainty,
            },
            "geometry": mapping(z.geometry),
        }
        for z in aoi.zones
    ]
    return {"type": "FeatureCollection", "name": aoi.name, "features": [outline, *zones]}


def export_aoi(spec: str | os.PathLike[str] | Aoi, out: str | os.PathLike[str]) -> Path:
    """Write an AOI as GeoJSON (atomically) so it can be copied, edited and passed back as a file."""
    aoi = get_aoi(spec)
    return atomic_write_text(out, json.dumps(aoi_to_geojson(aoi), indent=2, ensure_ascii=False) + "\n")
