"""Detection records and the geometry that turns pixel boxes into ground measurements.

A ``Detection`` is what every detector (YOLO ships, classical baseline, trucks, SAR CFAR) returns:
an oriented box on the ground with its length, width and heading in metres and degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from shapely.geometry import Polygon, mapping

from imagery.aoi import to_crs
from imagery.types import Grid

#: GeoJSON property names other tools rely on (the `harborwatch detect` contract).
CONTRACT_PROPERTIES = ("class", "score", "length_m", "width_m", "heading_deg", "scene", "acquired")


@dataclass(frozen=True)
class Detection:
    """One detected object.

    ``polygon`` is the oriented box in EPSG:4326; ``heading_deg`` is the axis direction of the
    long side, clockwise from north, folded into [0, 180) because an optical box has no bow.
    """

    class_name: str
    score: float
    polygon: Polygon  # EPSG:4326
    lon: float
    lat: float
    length_m: float
    width_m: float
    heading_deg: float
    scene: str | None = None
    acquired: datetime | None = None
    sensor: str = "S2"
    detector: str = ""
    speed_kmh: float | None = None
    properties: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def with_properties(self, **extra: Any) -> Detection:
        return replace(self, properties={**self.properties, **extra})

    def to_feature(self) -> dict[str, Any]:
        """A GeoJSON Feature (EPSG:4326) following the CLI contract."""
        props: dict[str, Any] = {
            "class": self.class_name,
            "score": round(float(self.score), 4),
            "length_m": round(float(self.length_m), 1),
            "width_m": round(float(self.width_m), 1),
            "heading_deg": round(float(self.heading_deg), 1) % 180.0,  # 179.96 must not print as 180.0
            "scene": self.scene,
            "acquired": self.acquired.isoformat().replace("+00:00", "Z") if self.acquired else None,
            "lon": round(self.lon, 6),
            "lat": round(self.lat, 6),
            "sensor": self.sensor,
            "detector": self.detector,
        }
        if self.speed_kmh is not None:
            props["speed_kmh"] = round(float(self.speed_kmh), 1)
        props.update(self.properties)
        return {"type": "Feature", "geometry": mapping(self.polygon), "properties": props}


def oriented_box(
    cx: float, cy: float, length: float, width: float, angle_rad: float
) -> np.ndarray:
    """Corners (4, 2) of a rectangle centred at (cx, cy) with its long side along ``angle_rad``.

    Coordinates are in whatever planar units the inputs use; ``angle_rad`` is measured from +x towards +y.
    """
    ca, sa = math.cos(angle_rad), math.sin(angle_rad)
    hl, hw = length / 2.0, width / 2.0
    return np.array(
        [
            [cx + ca * hl - sa * hw, cy + sa * hl + ca * hw],
            [cx - ca * hl - sa * hw, cy - sa * hl + ca * hw],
            [cx - ca * hl + sa * hw, cy - sa * hl - ca * hw],
            [cx + ca * hl + sa * hw, cy + sa * hl - ca * hw],
        ]
    )


def mask_corner_points(mask: np.ndarray) -> np.ndarray:
    """Every corner (col, row) of the True pixels of ``mask`` (pixel corners at integers), float64: a
    rectangle fitted to them (``cv2.minAreaRect``) spans the mask's whole pixels."""
    rows, cols = np.nonzero(mask)
    offs = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float64)
    pts = np.stack([cols, rows], axis=1).astype(np.float64)
    return (pts[:, None, :] + offs[None]).reshape(-1, 2)


def heading_from_map_vector(dx_east: float, dy_north: float) -> float:
    """Axis direction of a map vector, degrees clockwise from north, folded into [0, 180)."""
    return math.degrees(math.atan2(dx_east, dy_north)) % 180.0


def detection_from_pixel_box(
    grid: Grid,
    corners_px: np.ndarray,
    class_name: str,
    score: float,
    *,
    scene: str | None = None,
    acquired: datetime | None = None,
    sensor: str = "S2",
    detector: str = "",
    speed_kmh: float | None = None,
    heading_deg: float | None = None,
    properties: dict[str, Any] | None = None,
) -> Detection:
    """Build a Detection from an oriented box given as 4 pixel corners (col, row) on ``grid``.

    Lengths are measured on the grid's map coordinates, which are ground metres for the UTM grids
    harborwatch reads onto.
    """
    corners_px = np.asarray(corners_px, dtype=float).reshape(4, 2)
    t = grid.transform
    xs = t.a * corners_px[:, 0] + t.b * corners_px[:, 1] + t.c
    ys = t.d * corners_px[:, 0] + t.e * corners_px[:, 1] + t.f
    pts = np.stack([xs, ys], axis=1)
    side_a = pts[1] - pts[0]
    side_b = pts[2] - pts[1]
    la, lb = float(np.hypot(*side_a)), float(np.hypot(*side_b))
    long_vec = side_a if la >= lb else side_b
    length, width = max(la, lb), min(la, lb)
    if heading_deg is None:
        heading_deg = heading_from_map_vector(float(long_vec[0]), float(long_vec[1]))
    poly_map = Polygon(pts)
    poly_ll = to_crs(poly_map, "EPSG:4326", src_crs=grid.crs)
    centre = to_crs(poly_map.centroid, "EPSG:4326", src_crs=grid.crs)
    return Detection(
        class_name=class_name,
        score=float(score),
        polygon=poly_ll,
        lon=float(centre.x),
        lat=float(centre.y),
        length_m=length,
        width_m=width,
        heading_deg=float(heading_deg),
        scene=scene,
        acquired=acquired,
        sensor=sensor,
        detector=detector,
        speed_kmh=speed_kmh,
        properties=dict(properties or {}),
    )


def feature_collection(detections: list[Detection], **meta: Any) -> dict[str, Any]:
    """GeoJSON FeatureCollection in EPSG:4326 (RFC 7946: no crs member)."""
    fc: dict[str, Any] = {"type": "FeatureCollection", "features": [d.to_feature() for d in detections]}
    if meta:
        fc["harborwatch"] = meta
    return fc
