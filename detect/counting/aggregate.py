"""Daily counts: detections and scene coverage turned into one row per day, zone and class.

A day without a clear view of a zone is ``unobserved`` with a missing count (``<NA>``), never 0; a day
seen in full by a scene without a cloud mask is ``observed-unmasked``: counted, but clouds could not be
screened, so the count may be low.
When two scenes cover one day (overlapping tiles, two platforms, or Sentinel-2 and Sentinel-1), only
one scene is counted per zone, so no vessel is counted twice: a clear Sentinel-2 view first, else the
scene that saw the most of the zone. The ``sensor`` column says which one counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from detect.core.geometry import Detection
from imagery.aoi import WHOLE_AOI_ZONE, Aoi, to_crs
from imagery.types import Grid

#: The zone that stands for the whole AOI polygon.
ALL_ZONE = WHOLE_AOI_ZONE
#: Length classes (metres): name → (lower bound inclusive, upper bound exclusive).
LENGTH_CLASSES: dict[str, tuple[float, float]] = {
    "count_lt50m": (0.0, 50.0),
    "count_50_150m": (50.0, 150.0 + 1e-9),  # 150 m itself belongs to the middle class
    "count_gt150m": (150.0 + 1e-9, float("inf")),
}
#: Classes whose counts are split by length.
LENGTH_CLASSED = ("ship",)
DETECTION_COLUMNS = (
    "scene",
    "acquired",
    "date",
    "class",
    "score",
    "length_m",
    "width_m",
    "heading_deg",
    "lon",
    "lat",
    "sensor",
    "detector",
    "speed_kmh",
    "dark",
    "mmsi",
    "zone",
    "zones",
    "geometry",
)
SCENE_COLUMNS = (
    "scene",
    "datetime",
    "date",
    "source",
    "collection",
    "platform",
    "sensor",
    "processing_level",
    "cloud_cover",
    "cloud_fraction",
    "valid_fraction",
    "observed_fraction",
    "dark_b02",
    "status",
    "reason",
    "unobserved_classes",
    "n_detections",
    "ais_fixes",
)
COVERAGE_COLUMNS = ("scene", "zone", "valid_fraction", "cloud_fraction", "observed_fraction")
DAILY_COLUMNS = (
    "date",
    "aoi",
    "zone",
    "class",
    "count",
    "count_uncertainty",
    *LENGTH_CLASSES,
    "dark_count",
    "observed_fraction",
    "cloud_fraction",
    "valid_fraction",
    "sensor",
    "scene",
    "scenes",
    "n_scenes",
    "status",
)
#: Scene statuses whose pixels were looked at (anything else contributes no view of the day).
LOOKED_AT = ("clear", "partial", "cloudy", "unknown")
#: The scene status of a view without a cloud mask (neither SCL nor the s2cloudless bands).
UNMASKED_SCENE = "unknown"
#: Day status of a day seen in full by a scene without a cloud mask: its count may miss vessels under
#: cloud. (A partial day stays ``partial``: its count is a floor either way.)
OBSERVED_UNMASKED = "observed-unmasked"
#: Day statuses, from the most to the least trusted count.
DAY_STATUSES = ("observed", OBSERVED_UNMASKED, "partial", "unobserved")
#: The sensor whose clear views are counted first (optical: sizes and the trained model's accuracy are
#: known); other sensors fill the days it did not see.
PREFERRED_SENSOR = "S2"
#: Classes each sensor can count; a sensor not listed counts every class. Radar sees no trucks on a deck.
SENSOR_CLASSES: dict[str, tuple[str, ...]] = {"S1": ("ship",)}
#: Classes that AIS can vouch for (dark / not dark); other classes never get a dark count.
AIS_CLASSES = ("ship",)
#: Relative count error measured against a hand count, per class: a day's ``count_uncertainty`` is
#: ± count × this. Trucks: +44 % on the design part of the hand-labelled real set (9 trucks, 11 areas;
#: benchmarks/truck_count_real.py, docs/trucks.md; weights/trucks-s2.json metrics.real.count_error). It
#: is on top of the relative-index caveat: slow and queued trucks are not in any count. Classes not
#: listed get no uncertainty.
COUNT_REL_ERROR: dict[str, float] = {"truck": 0.44}


@dataclass(frozen=True)
class AggregateParams:
    """Thresholds on a zone's observed fraction (valid and cloud-free share of its pixels)."""

    #: At or above this the day is ``observed``: the count is the count.
    observed_min: float = 0.9
    #: At or above this (and below ``observed_min``) the day is ``partial``: the count is a lower bound.
    partial_min: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.partial_min <= self.observed_min <= 1.0:
            raise ValueError(
                f"need 0 <= partial_min <= observed_min <= 1, got {self.partial_min}, {self.observed_min}"
            )

    def status(self, observed_fraction: float | None) -> str:
        if observed_fraction is None or not np.isfinite(observed_fraction):
            return "unobserved"
        if observed_fraction >= self.observed_min:
            return "observed"
        if observed_fraction >= self.partial_min:
            return "partial"
        return "unobserved"


# --------------------------------------------------------------------------- zones


def zone_areas(aoi: Aoi, crs: str | None = None) -> dict[str, BaseGeometry]:
    """Zone name → area geometry in ``crs`` (default the AOI's UTM zone); ``all`` is the AOI itself."""
    crs = crs or aoi.utm_crs
    areas = {ALL_ZONE: to_crs(aoi.geometry, crs)}
    for z in aoi.zones:
        if z.name == ALL_ZONE:
            continue  # the AOI polygon keeps the name
        areas[z.name] = z.area_geometry(crs)
    return areas


def zone_names(aoi: Aoi) -> tuple[str, ...]:
    return tuple(zone_areas(aoi))


def assign_zones(lon: Sequence[float], lat: Sequence[float], aoi: Aoi) -> list[tuple[str, ...]]:
    """Zones containing each centre point, smallest zone first (``all`` last when inside the AOI)."""
    crs = aoi.utm_crs
    areas = zone_areas(aoi, crs)
    if len(lon) == 0:
        return []
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = tr.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    inside = {}
    for name, geom in areas.items():
        shapely.prepare(geom)
        # intersects_xy counts a centre on the boundary as inside
        inside[name] = shapely.intersects_xy(geom, x, y)
    order = sorted(areas, key=lambda n: (n == ALL_ZONE, areas[n].area))
    return [tuple(n for n in order if inside[n][i]) for i in range(len(x))]


def zone_masks(aoi: Aoi, grid: Grid) -> dict[str, np.ndarray]:
    """Zone name → boolean pixel mask on ``grid`` (True inside the zone)."""
    from rasterio.features import geometry_mask

    masks = {}
    for name, geom in zone_areas(aoi, grid.crs).items():
        masks[name] = geometry_mask(
            [geom], out_shape=grid.shape, transform=grid.transform, invert=True, all_touched=False
        )
        if not masks[name].any():  # a zone thinner than a pixel: take the pixels it touches
            masks[name] = geometry_mask(
                [geom], out_shape=grid.shape, transform=grid.transform, invert=True, all_touched=True
            )
    return masks


def zone_coverage(
    scene_id: str, masks: dict[str, np.ndarray], valid: np.ndarray, cloud: np.ndarray | None
) -> list[dict[str, Any]]:
    """Per zone: share of its pixels with data, share of those under cloud, share clear and valid.

    Without a cloud mask the cloud fraction is unknown (NaN) and the observed fraction is the valid
    fraction: the report says so rather than guessing.
    """
    rows = []
    for name, m in masks.items():
        n = int(m.sum())
        if n == 0:
            rows.append(
                dict(
                    scene=scene_id,
                    zone=name,
                    valid_fraction=0.0,
                    cloud_fraction=np.nan,
                    observed_fraction=0.0,
                )
            )
            continue
        v = valid & m
        nv = int(v.sum())
        valid_fraction = nv / n
        if cloud is None:
            cloud_fraction = np.nan
            observed = valid_fraction
        else:
            ncloud = int((cloud & v).sum())
            cloud_fraction = ncloud / nv if nv else np.nan
            observed = (nv - ncloud) / n
        rows.append(
            dict(
                scene=scene_id,
                zone=name,
                valid_fraction=valid_fraction,
                cloud_fraction=cloud_fraction,
                observed_fraction=observed,
            )
        )
    return rows


# --------------------------------------------------------------------------- tables


def detection_rows(detections: Iterable[Detection], aoi: Aoi | None = None) -> list[dict[str, Any]]:
    """One plain row per detection (the columns of :data:`DETECTION_COLUMNS`)."""
    dets = list(detections)
    zones = assign_zones([d.lon for d in dets], [d.lat for d in dets], aoi) if aoi else [()] * len(dets)
    rows = []
    for d, zs in zip(dets, zones, strict=True):
        acquired = _utc(d.acquired) if d.acquired else None
        rows.append(
            {
                "scene": d.scene,
                "acquired": acquired,
                "date": acquired.date() if acquired else None,
                "class": d.class_name,
                "score": float(d.score),
                "length_m": float(d.length_m),
                "width_m": float(d.width_m),
                "heading_deg": float(d.heading_deg),
                "lon": float(d.lon),
                "lat": float(d.lat),
                "sensor": d.sensor,
                "detector": d.detector,
                "speed_kmh": np.nan if d.speed_kmh is None else float(d.speed_kmh),
                "dark": d.properties.get("dark"),
                "mmsi": d.properties.get("mmsi"),
                "zone": zs[0] if zs else "",
                "zones": ";".join(zs),
                "geometry": d.polygon,
            }
        )
    return rows


def detections_table(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Detections as a DataFrame with a fixed column order and dtypes, even when empty."""
    df = pd.DataFrame(list(rows), columns=list(DETECTION_COLUMNS))
    # ISO 8601 parsed per value: one scene's time may carry fractional seconds and the next none
    # (``datetime.isoformat`` drops ".000000"), which a format inferred from the first value rejects
    df["acquired"] = pd.to_datetime(df["acquired"], utc=True, format="ISO8601")
    for c in ("score", "length_m", "width_m", "heading_deg", "lon", "lat", "speed_kmh"):
        df[c] = pd.to_numeric(df[c]).astype(float)
    # dark: True / False after AIS matching, <NA> when not matched (no AIS, or a class AIS cannot vouch for)
    df["dark"] = df["dark"].astype("object").where(df["dark"].notna(), None).astype("boolean")
    df["mmsi"] = pd.to_numeric(df["mmsi"]).astype("Int64")
    return df


def rows_from_features(features: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Detection rows back from GeoJSON features written by :func:`features_from_rows`."""
    rows = []
    for f in features:
        p = dict(f["properties"])
        acquired = pd.Timestamp(p["acquired"]).to_pydatetime() if p.get("acquired") else None
        row = {c: p.get(c) for c in DETECTION_COLUMNS}
        row.update(
            acquired=acquired, date=acquired.date() if acquired else None, geometry=shape(f["geometry"])
        )
        row["speed_kmh"] = np.nan if p.get("speed_kmh") is None else p["speed_kmh"]
        rows.append(row)
    return rows


def features_from_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """GeoJSON features (EPSG:4326) carrying every detection column as a property."""
    feats = []
    for rec in df.to_dict("records"):
        geom = rec.pop("geometry")
        props = {k: _json_value(v) for k, v in rec.items()}
        feats.append({"type": "Feature", "geometry": shapely.geometry.mapping(geom), "properties": props})
    return feats


def scenes_table(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Scenes as a DataFrame; a row without ``sensor`` is Sentinel-1 if its level is GRD, else Sentinel-2."""
    df = pd.DataFrame(list(rows), columns=list(SCENE_COLUMNS))
    df["datetime"] = pd.to_datetime(df["datetime"], utc=True, format="ISO8601")  # see detections_table
    for c in ("cloud_cover", "cloud_fraction", "valid_fraction", "observed_fraction", "dark_b02"):
        df[c] = pd.to_numeric(df[c]).astype(float)
    df["n_detections"] = pd.to_numeric(df["n_detections"]).astype("Int64")
    df["ais_fixes"] = pd.to_numeric(df["ais_fixes"]).astype("Int64")
    # ";"-joined classes the scene could not be searched for; absent in records written before it existed
    df["unobserved_classes"] = df["unobserved_classes"].astype(object).fillna("").astype(str)
    grd = df["processing_level"].astype(object).fillna("").astype(str).str.upper() == "GRD"
    df["sensor"] = df["sensor"].where(df["sensor"].notna(), np.where(grd, "S1", PREFERRED_SENSOR)).astype(str)
    return df.sort_values(["datetime", "scene"], kind="stable").reset_index(drop=True)


def unobserved_class_counts(scenes: pd.DataFrame) -> dict[str, int]:
    """Class → how many scenes that did not fail could not be searched for it (``unobserved_classes``: a
    band its model needs is missing or empty; they counted their other classes)."""
    if "unobserved_classes" not in scenes:
        return {}
    seen = scenes.loc[scenes["status"] != "failed", "unobserved_classes"].astype(object).fillna("")
    out: dict[str, int] = {}
    for classes in seen.astype(str):
        for c in filter(None, classes.split(";")):
            out[c] = out.get(c, 0) + 1
    return out


def coverage_table(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=list(COVERAGE_COLUMNS))
    for c in COVERAGE_COLUMNS[2:]:
        df[c] = pd.to_numeric(df[c]).astype(float)
    return df


# --------------------------------------------------------------------------- daily counts


def period_days(start: date, end: date) -> list[date]:
    """Every UTC calendar day from ``start`` to ``end`` inclusive."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def length_class_counts(lengths: Sequence[float]) -> dict[str, int]:
    arr = np.asarray(lengths, dtype=float)
    return {name: int(((arr >= lo) & (arr < hi)).sum()) for name, (lo, hi) in LENGTH_CLASSES.items()}


def daily_counts(
    detections: pd.DataFrame,
    scenes: pd.DataFrame,
    coverage: pd.DataFrame | None,
    *,
    aoi: str,
    zones: Sequence[str],
    start: date,
    end: date,
    classes: Sequence[str],
    params: AggregateParams | None = None,
) -> pd.DataFrame:
    """One row per day × zone × class over the whole period (see :data:`DAILY_COLUMNS`).

    Per day, zone and class one scene is counted, among the scenes whose sensor can see the class
    (:data:`SENSOR_CLASSES`) and whose model for it could run (not in the scene's ``unobserved_classes``,
    e.g. trucks on a scene without B08): first a Sentinel-2 scene with at least ``observed_min`` of the zone
    observed, else the scene with the highest observed fraction (ties: a cloud-screened scene, then the
    earliest acquisition, then scene id). So S2 counts on clear days and S1 fills the cloudy ones; the
    others are listed in ``scenes`` but not counted, so a ship seen on two overlapping tiles counts once.
    Without a ``coverage`` row for a zone the scene's AOI-wide fractions stand in for it. ``unobserved`` days
    have ``<NA>`` counts; an ``observed`` day whose counted scene had no cloud mask is
    ``observed-unmasked`` (:data:`OBSERVED_UNMASKED`). ``dark_count`` (ships without an AIS partner)
    is ``<NA>`` unless AIS covered the counted scene (``ais_fixes`` > 0 in ``scenes``).
    ``count_uncertainty`` is ± count × :data:`COUNT_REL_ERROR` for the classes it lists (trucks), else NaN.
    """
    params = params or AggregateParams()
    looked = scenes[scenes["status"].isin(LOOKED_AT)].copy()
    looked["date"] = looked["datetime"].dt.tz_convert("UTC").dt.date
    if "sensor" not in looked:
        looked["sensor"] = PREFERRED_SENSOR
    cov = _coverage_lookup(looked, coverage, zones)
    det_zones = (
        detections["zones"].fillna("").str.split(";") if len(detections) else pd.Series([], dtype=object)
    )
    dark = detections["dark"] if "dark" in detections else pd.Series(pd.NA, index=detections.index)
    dark = dark.astype("boolean").fillna(False).astype(bool)
    info = looked.set_index("scene")[["sensor", "status"]].assign(
        ais=looked["ais_fixes"].to_numpy() if "ais_fixes" in looked else pd.NA
    )
    unseen = looked.get("unobserved_classes", pd.Series("", index=looked.index))
    unseen = unseen.astype(object).fillna("").astype(str).str.split(";")
    can_see = {
        cls: looked["sensor"].map(lambda s, c=cls: c in SENSOR_CLASSES.get(s, (c,))).astype(bool)
        & ~unseen.map(lambda cs, c=cls: c in cs).astype(bool)
        for cls in classes
    }

    rows = []
    for day in period_days(start, end):
        on_day = looked["date"] == day
        for zone in zones:
            for cls in classes:
                todays = looked[on_day & can_see[cls]]
                best, frac = _best_scene(todays, cov, zone, params.observed_min)
                status = params.status(frac["observed_fraction"] if best else None)
                if status == "observed" and info.at[best, "status"] == UNMASKED_SCENE:
                    status = OBSERVED_UNMASKED
                row = {
                    "date": day,
                    "aoi": aoi,
                    "zone": zone,
                    "class": cls,
                    "dark_count": pd.NA,
                    "observed_fraction": frac.get("observed_fraction", np.nan) if best else 0.0,
                    "cloud_fraction": frac.get("cloud_fraction", np.nan) if best else np.nan,
                    "valid_fraction": frac.get("valid_fraction", np.nan) if best else 0.0,
                    "sensor": info.at[best, "sensor"] if best else "",
                    "scene": best or "",
                    "scenes": ";".join(todays["scene"]),
                    "n_scenes": len(todays),
                    "status": status,
                }
                if status == "unobserved":
                    row.update({"count": pd.NA, **dict.fromkeys(LENGTH_CLASSES, pd.NA)})
                else:
                    sel = (detections["scene"] == best) & (detections["class"] == cls)
                    sel &= det_zones.apply(lambda zs, z=zone: z in zs)
                    row["count"] = int(sel.sum())
                    if cls in COUNT_REL_ERROR:
                        row["count_uncertainty"] = round(row["count"] * COUNT_REL_ERROR[cls], 1)
                    if cls in LENGTH_CLASSED:
                        row.update(length_class_counts(detections.loc[sel, "length_m"]))
                    else:  # a truck's box length is not a vessel length
                        row.update(dict.fromkeys(LENGTH_CLASSES, pd.NA))
                    fixes = info.at[best, "ais"]
                    if cls in AIS_CLASSES and not pd.isna(fixes) and fixes > 0:
                        row["dark_count"] = int((sel & dark).sum())
                rows.append(row)
    df = pd.DataFrame(rows, columns=list(DAILY_COLUMNS))
    for c in ("count", *LENGTH_CLASSES, "dark_count"):
        df[c] = df[c].astype("Int64")
    for c in ("observed_fraction", "cloud_fraction", "valid_fraction", "count_uncertainty"):
        df[c] = df[c].astype(float)
    df["n_scenes"] = df["n_scenes"].astype(int)
    return df


def _coverage_lookup(
    looked: pd.DataFrame, coverage: pd.DataFrame | None, zones: Sequence[str]
) -> dict[tuple[str, str], dict[str, float]]:
    lookup: dict[tuple[str, str], dict[str, float]] = {}
    for rec in looked.to_dict("records"):
        fallback = {
            "observed_fraction": _observed_from(rec),
            "cloud_fraction": rec["cloud_fraction"],
            "valid_fraction": rec["valid_fraction"],
        }
        for z in zones:
            lookup[(rec["scene"], z)] = fallback
    if coverage is not None:
        for rec in coverage.to_dict("records"):
            if (rec["scene"], rec["zone"]) in lookup:
                lookup[(rec["scene"], rec["zone"])] = {k: rec[k] for k in COVERAGE_COLUMNS[2:]}
    return lookup


def _observed_from(scene_row: dict[str, Any]) -> float:
    obs = scene_row.get("observed_fraction")
    if obs is not None and np.isfinite(obs):
        return float(obs)
    valid = scene_row.get("valid_fraction")
    valid = float(valid) if valid is not None and np.isfinite(valid) else 0.0
    cloud = scene_row.get("cloud_fraction")
    return valid * (1.0 - float(cloud)) if cloud is not None and np.isfinite(cloud) else valid


def _best_scene(
    todays: pd.DataFrame,
    cov: dict[tuple[str, str], dict[str, float]],
    zone: str,
    observed_min: float = 1.0,
) -> tuple[str | None, dict[str, float]]:
    """The scene to count for ``zone``: a clear view by :data:`PREFERRED_SENSOR` (observed fraction at
    least ``observed_min``) first, then the highest observed fraction, then one whose clouds were screened
    (a scene without a cloud mask may hide clouds), then the earliest, then by id."""
    best, best_frac, best_key = None, {}, None
    for rec in todays.to_dict("records"):
        frac = cov[(rec["scene"], zone)]
        obs = frac["observed_fraction"]
        obs = obs if np.isfinite(obs) else -1.0
        clear_preferred = rec.get("sensor", PREFERRED_SENSOR) == PREFERRED_SENSOR and obs >= observed_min
        unmasked = rec.get("status") == UNMASKED_SCENE
        key = (not clear_preferred, -obs, unmasked, rec["datetime"], rec["scene"])
        if best_key is None or key < best_key:
            best, best_frac, best_key = rec["scene"], frac, key
    return best, best_frac


# --------------------------------------------------------------------------- helpers


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _json_value(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float | np.floating):
        return None if not np.isfinite(v) else round(float(v), 6)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, pd.Timestamp | datetime):
        return _utc(pd.Timestamp(v).to_pydatetime()).isoformat().replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    return v
