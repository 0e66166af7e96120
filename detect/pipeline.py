"""`run`: AOI and period in, daily counts, visits, claim verdicts and a report folder out.

search → per scene (read window → cloud screen → detect → scenes/<id>.json) → aggregate → report.
Sentinel-2 scenes go through the optical reader and detectors; Sentinel-1 GRD scenes (``sensors``
with ``S1``) through the radar reader and the CFAR ship detector, and fill the days clouds hid.
Each scene's result is written atomically as soon as it is done, so an interrupted run resumes
where it stopped; a scene that fails is recorded with its error and the run goes on. AIS, when
given, is matched after detection, so changing it redoes no scene.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detect import aggregate as agg
from detect import report as rep
from detect.ais import AisParams
from detect.claims import Claim, ClaimVerdict, compare, load_claims
from detect.geometry import Detection
from detect.visits import VisitParams, VisitSummary, estimate_visits
from imagery.aoi import Aoi, get_aoi
from imagery.atomic import atomic_write_json, atomic_write_text
from imagery.clouds import S2CLOUDLESS_BANDS
from imagery.errors import InputError
from imagery.sar import read_sar
from imagery.types import Grid, RasterWindow, Scene

log = logging.getLogger(__name__)

#: Per-scene result format; a record written by another version is redone.
#: 2: ship boxes refitted to the hull's pixels (``detect.refine``) and weights in the record key.
SCENE_RECORD_VERSION = 2
#: ESA's Level-2A is global only from December 2018; before that the pipeline reads Level-1C.
L2A_GLOBAL_START = date(2018, 12, 1)
RGB = ("B04", "B03", "B02")
#: Sensors a run can use: Sentinel-2 (optical) and Sentinel-1 (radar, ships only).
SENSORS = ("S2", "S1")
#: Sentinel-1 is read this far beyond the AOI grid: an azimuth ghost lies 4.3–6.0 km along track from
#: its source, and is only recognised when the source is on the grid (docs/sar.md).
S1_MARGIN_M = 6500.0
#: AOI zone kinds that are water for the radar detector (where the coarse SAR land mask loses quaysides).
WATER_ZONE_KINDS = ("water", "anchorage", "berth")
#: Catalogue sources whose Sentinel-1 GRD cannot be read anonymously.
S1_REQUESTER_PAYS = ("earth-search", "earth-search:gcp", "earthsearch", "element84")


def scene_sensor(scene: Scene) -> str:
    """``S1`` for a Sentinel-1 scene (GRD level, a sentinel-1 collection or platform), else ``S2``."""
    if (
        scene.processing_level.upper() == "GRD"
        or scene.collection.lower().startswith("sentinel-1")
        or scene.platform.lower().startswith("sentinel-1")
    ):
        return "S1"
    return "S2"


def margin_grid(grid: Grid, margin_m: float) -> tuple[Grid, tuple[slice, slice]]:
    """``grid`` grown by ``margin_m`` (whole pixels) on every side, and the rows/cols of ``grid`` in it."""
    from affine import Affine

    n = max(0, math.ceil(margin_m / grid.res_m))
    shifted = grid.transform @ Affine.translation(-n, -n)
    wide = Grid(grid.crs, shifted, grid.width + 2 * n, grid.height + 2 * n)
    return wide, (slice(n, n + grid.height), slice(n, n + grid.width))


def s1_water(window: RasterWindow, aoi: Aoi, params: Any = None) -> np.ndarray | None:
    """Where the radar detector looks for ships: the AOI's water-like zones (berths, anchorages: there the
    coarse SAR land mask would swallow ships alongside quays) plus what the SAR land mask calls sea
    elsewhere, so the whole AOI is searched as Sentinel-2 searches it. None (the detector's own SAR land
    mask) for an AOI without such zones."""
    from detect.sar import sar_land_mask, water_from_zones
    from imagery.sar import from_db, sar_quantity

    if not any(z.kind in WATER_ZONE_KINDS for z in aoi.zones):
        return None
    zones = water_from_zones(aoi, window.grid, WATER_ZONE_KINDS)
    quantity, units = sar_quantity(window)
    pol = getattr(params, "polarisation", None) or window.band_names[0]
    x = window.band(pol).astype(np.float64)
    if units == "dB":
        x = from_db(x).astype(np.float64)
    valid = np.isfinite(x) & (x > 0) & window.valid_mask
    sea = ~sar_land_mask(np.where(valid, x, np.nan), window.grid.res_m, quantity, params, pol) & valid
    return zones | sea


def detect_sar(
    window: RasterWindow, *, aoi: Aoi, conf: float | None = None, device: str = "cpu"
) -> list[Detection]:
    """Ships in a Sentinel-1 window by the registered ``ship``/``cfar`` detector over ``s1_water``."""
    from detect.detectors import get_detector

    pol = window.band_names[0]
    detector = get_detector("ship", "cfar", device, **({} if pol == "VV" else {"polarisation": pol}))
    water = s1_water(window, aoi, getattr(detector, "params", None))
    return detector.detect(window, conf=conf, water=water)


@dataclass(frozen=True)
class Steps:
    """The functions the pipeline calls; the defaults are harborwatch's own. Swap one to plug in a
    different catalogue, reader or detector (tests wrap them to count calls)."""

    search: Callable[..., list[Scene]]
    read: Callable[..., RasterWindow]
    screen: Callable[..., tuple[Any, np.ndarray | None, np.ndarray]]
    detect: Callable[..., list[Any]]
    required_bands: Callable[[dict[str, str]], tuple[str, ...]]
    #: Sentinel-1: ``read_sar(scene, grid, cache=)`` and ``detect_sar(window, aoi=, conf=, device=)``.
    read_sar: Callable[..., RasterWindow] = read_sar
    detect_sar: Callable[..., list[Any]] = detect_sar


def default_steps() -> Steps:
    from detect.detectors import detect_window
    from imagery.catalog import search
    from imagery.read import read_window

    return Steps(
        search=search,
        read=read_window,
        screen=screen_clouds,
        detect=detect_window,
        required_bands=detector_bands,
    )


def screen_clouds(
    window: RasterWindow, area: np.ndarray | None = None
) -> tuple[Any, np.ndarray | None, np.ndarray]:
    """(CloudScreen over ``area``, cloud mask or None, valid mask) for one window.

    The masks of ``imagery.clouds.screen_window`` (SCL, else s2cloudless, else the window's own; radar is
    clear), kept: daily counts need the clear share of every zone, not only the AOI's.
    """
    from imagery import clouds

    cloud, valid, method = clouds.window_cloud_mask(window)
    return clouds.screen(cloud, valid, method=method, area=area), cloud, valid


def detector_methods(classes: Sequence[str], method: str) -> dict[str, str]:
    """Class → detector method: ``method`` where that class has it (``--method`` is about ships),
    else the class's own detector (``yolo`` if registered, else its only or first method)."""
    from detect.detectors import registered

    known: dict[str, list[str]] = {}
    for c, m in registered():
        known.setdefault(c, []).append(m)
    out: dict[str, str] = {}
    for c in classes:
        options = known.get(c, [])
        if not options:
            raise InputError(
                f"no detector for class {c!r}; classes with detectors: {', '.join(sorted(known))}"
            )
        out[c] = method if method in options else ("yolo" if "yolo" in options else options[0])
    every = sorted({m for ms in known.values() for m in ms})
    if method not in every:
        raise InputError(f"unknown detector method {method!r}; methods: {', '.join(every)}")
    return out


def detector_bands(methods: dict[str, str]) -> tuple[str, ...]:
    """Bands the detectors need, in a stable order."""
    from detect.detectors import get_detector

    out: list[str] = []
    for c, m in methods.items():
        for b in get_detector(c, m).required_bands:
            if b not in out:
                out.append(b)
    return tuple(out)


@dataclass(frozen=True, eq=False)
class RunResult:
    """Everything a run produced: its tables (pandas) and the files in ``out_dir``."""

    aoi: Aoi
    start: date
    end: date
    classes: tuple[str, ...]
    out_dir: Path
    detections: pd.DataFrame
    scenes: pd.DataFrame
    coverage: pd.DataFrame
    daily_counts: pd.DataFrame
    visits: tuple[VisitSummary, ...]
    stays: pd.DataFrame
    verdicts: tuple[ClaimVerdict, ...]
    paths: dict[str, Path] = field(default_factory=dict)
    #: Sensors searched: ``S2`` and/or ``S1``.
    sensors: tuple[str, ...] = ("S2",)

    @property
    def aoi_name(self) -> str:
        return self.aoi.name

    def daily(self, zone: str = agg.ALL_ZONE, class_name: str | None = None) -> pd.DataFrame:
        """The daily table for one zone and class (default: the whole AOI, the first class)."""
        cls = class_name or self.classes[0]
        d = self.daily_counts
        return d[(d["zone"] == zone) & (d["class"] == cls)].reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``harborwatch run --json`` prints)."""
        status = self.scenes["status"].value_counts().to_dict()
        dark = self.detections["dark"]
        daily = self.daily_counts.copy()
        daily["date"] = daily["date"].map(lambda d: d.isoformat())
        daily = daily.astype(object).where(daily.notna(), None)
        return {
            "aoi": self.aoi.name,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "classes": list(self.classes),
            "sensors": list(self.sensors),
            "out_dir": str(self.out_dir),
            "scenes": {"total": len(self.scenes), **{str(k): int(v) for k, v in status.items()}},
            "scenes_by_sensor": {str(k): int(v) for k, v in self.scenes["sensor"].value_counts().items()},
            "detections": len(self.detections),
            "dark_detections": int(dark.sum()) if dark.notna().any() else None,
            "daily_counts": daily.to_dict("records"),
            "visits": [v.to_dict() for v in self.visits],
            "claims": [v.to_dict() for v in self.verdicts],
            "files": {k: str(p) for k, p in self.paths.items()},
        }


# --------------------------------------------------------------------------- parameters


def parse_date(value: date | datetime | str, what: str) -> date:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InputError(f"{what} {value!r} is not a date; use YYYY-MM-DD") from None


def default_collection(source: str, start: date, method: str = "yolo") -> str:
    """L1C before December 2018 (L2A is not global before), L2A after; Sentinel-1 GRD for the radar
    detector; local folders say their own."""
    if source.startswith("local:"):
        return "any"  # a folder's scenes say their own level
    if method == "cfar":
        return "sentinel-1-grd"
    if source in ("planetary-computer", "pc", "mpc"):
        return "sentinel-2-l2a"  # Planetary Computer has no L1C; its L2A is reprocessed back to 2016
    return "sentinel-2-l1c" if start < L2A_GLOBAL_START else "sentinel-2-l2a"


def parse_sensors(
    sensors: str | Sequence[str] | None, *, method: str = "yolo", collection: str | None = None
) -> tuple[str, ...]:
    """``"s2,s1"`` or ``["S2", "S1"]`` → ``("S2", "S1")``. Without ``sensors``: ``S1`` for the radar
    detector (``method="cfar"``) or a ``sentinel-1-*`` collection, else ``S2``."""
    if sensors is None or (isinstance(sensors, str) and not sensors.strip()):
        s1 = method == "cfar" or (collection or "").lower().startswith("sentinel-1")
        return ("S1",) if s1 else ("S2",)
    items = sensors.split(",") if isinstance(sensors, str) else list(sensors)
    out = tuple(dict.fromkeys(str(x).strip().upper() for x in items if str(x).strip()))
    bad = [x for x in out if x not in SENSORS]
    if bad or not out:
        raise InputError(
            f"unknown sensor {', '.join(bad) or repr(sensors)}; use s2 (Sentinel-2), s1 (Sentinel-1) or s2,s1"
        )
    return out


def _check_sensors(sensors: Sequence[str], *, source: str, classes: Sequence[str], method: str) -> None:
    if "S2" in sensors and method == "cfar":
        raise InputError(
            "--method cfar is the Sentinel-1 detector; for Sentinel-2 choose yolo or baseline "
            "(with --sensors s2,s1 the Sentinel-1 scenes use cfar anyway)"
        )
    if "S1" in sensors and source.strip().lower() in S1_REQUESTER_PAYS:
        raise InputError(
            "Earth Search's Sentinel-1 GRD is in a requester-pays bucket; for --sensors s1 use "
            "--source planetary-computer (anonymous) or --source sentinelhub"
        )
    if "S1" in sensors and "ship" not in classes:
        raise InputError("Sentinel-1 counts ships only; add ship to --classes, or use --sensors s2")


def sensor_collections(
    sensors: Sequence[str], source: str, start: date, collection: str | None = None, method: str = "yolo"
) -> dict[str, str]:
    """Sensor → catalogue collection. ``collection`` names one sensor's collection (``sentinel-1-*`` for
    S1, anything else for S2); local folders are searched once (``any``) and split by sensor."""
    out: dict[str, str] = {}
    for sensor in sensors:
        s1 = sensor == "S1"
        if source.startswith("local:"):
            out[sensor] = collection or "any"
        elif collection and collection.lower().startswith("sentinel-1") == s1:
            out[sensor] = collection
        else:
            out[sensor] = "sentinel-1-grd" if s1 else default_collection(source, start, method)
    if collection and not source.startswith("local:") and collection not in out.values():
        raise InputError(
            f"collection {collection!r} is not for the sensors asked ({', '.join(sensors)}); "
            "sentinel-1-* collections are s1, the others s2"
        )
    return out


def search_scenes(
    steps: Steps,
    aoi: Aoi,
    start: date,
    end: date,
    *,
    sources: dict[str, str],
    collections: dict[str, str],
    max_cloud: float | None = None,
) -> list[Scene]:
    """Scenes of every sensor, oldest first: one search per distinct (source, collection), each scene
    kept when its sensor was asked for (a local folder may hold both)."""
    queries: dict[tuple[str, str], list[str]] = {}
    for sensor, coll in collections.items():
        queries.setdefault((sources[sensor], coll), []).append(sensor)
    found: dict[str, Scene] = {}
    skipped: dict[str, int] = {}
    for (src, coll), wanted in queries.items():
        for scene in steps.search(aoi, start, end, collection=coll, source=src, max_cloud=max_cloud):
            sensor = scene_sensor(scene)
            if sensor in wanted:
                found.setdefault(scene.id, scene)
            else:
                skipped[sensor] = skipped.get(sensor, 0) + 1
    for sensor, n in skipped.items():
        log.info("%d %s scene(s) left out: %s is not in --sensors", n, sensor, sensor.lower())
    return sorted(found.values(), key=lambda sc: (sc.datetime, sc.id))


def scene_bands(scene: Scene, detector: Sequence[str]) -> tuple[str, ...]:
    """Detector bands plus what the cloud screen needs: SCL when the scene has it, else s2cloudless inputs."""
    bands = list(detector)
    if "SCL" in scene.assets:
        extra: Sequence[str] = ("SCL",)
    elif scene.processing_level.upper() == "L1C":
        extra = S2CLOUDLESS_BANDS
    else:
        extra = ()
    bands += [b for b in extra if b in scene.assets and b not in bands]
    return tuple(bands)


def safe_name(scene_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", scene_id)[:200]


# --------------------------------------------------------------------------- per scene


def _record_key(methods: dict[str, str], conf: float | None, grid: Grid, aoi: Aoi) -> dict[str, Any]:
    """What a finished scene's result depends on; a record with another key is redone."""
    from detect.detectors import weights_fingerprint

    return {
        "version": SCENE_RECORD_VERSION,
        "methods": dict(methods),
        # New weights mean new detections: a scene counted with other weights is redone.
        "weights": {c: weights_fingerprint(c, m) for c, m in sorted(methods.items())},
        "conf": conf,
        "grid": grid.key(),
        "zones": aoi_fingerprint(aoi),  # zone coverage and membership are computed per scene
    }


def aoi_fingerprint(aoi: Aoi) -> str:
    """A short hash of the AOI polygon and its zones (names, geometry, buffers)."""
    import hashlib

    h = hashlib.sha256(aoi.geometry.wkb)
    for z in aoi.zones:
        h.update(f"|{z.name}|{z.kind}|{z.buffer_m}|".encode())
        h.update(z.geometry.wkb)
    return h.hexdigest()[:16]


def _load_done(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        rec = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if rec.get("key") != key or rec.get("status") == "failed":
        return None  # other parameters, or a failure worth retrying
    return rec


def _base_record(scene: Scene, key: dict[str, Any]) -> dict[str, Any]:
    return {
        "scene": scene.id,
        "datetime": scene.datetime.isoformat(),
        "date": scene.datetime.date().isoformat(),
        "source": scene.source,
        "collection": scene.collection,
        "platform": scene.platform,
        "sensor": scene_sensor(scene),
        "processing_level": scene.processing_level,
        "cloud_cover": scene.cloud_cover,
        "cloud_fraction": None,
        "valid_fraction": None,
        "observed_fraction": None,
        "status": "failed",
        "reason": "",
        "n_detections": 0,
        "coverage": [],
        "key": key,
    }


def process_scene(
    scene: Scene,
    *,
    aoi: Aoi,
    grid: Grid,
    masks: dict[str, np.ndarray],
    steps: Steps,
    bands: Sequence[str],
    methods: dict[str, str],
    conf: float | None,
    device: str,
    cache: Any,
    params: agg.AggregateParams,
    key: dict[str, Any],
    scenes_dir: Path,
    sensor: str | None = None,
    s1_margin_m: float = S1_MARGIN_M,
) -> dict[str, Any]:
    """Read, screen and detect one scene; write its detections, then its record (the record marks it done).

    A Sentinel-1 scene (``sensor``, default from the scene) is read onto ``grid`` grown by
    ``s1_margin_m`` so that azimuth ghosts of bright targets off the AOI can be recognised; ships found
    there are detected on the wide window and kept only when their centre lies on ``grid``.
    ``methods`` for it is ``{"ship": "cfar"}``; ``bands`` is not used.
    """
    t0 = time.perf_counter()
    rec = _base_record(scene, key)
    rec["sensor"] = sensor = sensor or scene_sensor(scene)
    name = safe_name(scene.id)
    try:
        if sensor == "S1":
            from detect.sar import s1_observation

            wide, inner = margin_grid(grid, s1_margin_m)
            full = steps.read_sar(scene, wide, cache=cache)
            window = replace(
                full, data=full.data[(slice(None), *inner)], grid=grid, valid=full.valid_mask[inner]
            )
            seen = s1_observation(window)
            rec.update(polarisations=seen["polarisations"], quantity=seen["quantity"])

            def find() -> list[Any]:
                if "ship" not in methods:
                    return []
                return on_grid(steps.detect_sar(full, aoi=aoi, conf=conf, device=device), grid)

        else:
            window = steps.read(scene, grid, scene_bands(scene, bands), cache=cache)

            def find() -> list[Any]:
                return [
                    d
                    for c, m in methods.items()
                    for d in steps.detect(window, classes=(c,), method=m, conf=conf, device=device)
                ]

        screen, cloud, valid = steps.screen(window, masks[agg.ALL_ZONE])
        coverage = agg.zone_coverage(scene.id, masks, valid, cloud)
        cov_all = next(c for c in coverage if c["zone"] == agg.ALL_ZONE)
        rec.update(
            cloud_fraction=_num(screen.cloud_fraction),
            valid_fraction=_num(screen.valid_fraction, window.valid_fraction),
            observed_fraction=cov_all["observed_fraction"],
            status=str(screen.status),
            reason=screen_reason(screen),
            coverage=coverage,
        )
        if max(c["observed_fraction"] for c in coverage) < params.partial_min:
            skip = f"no zone at least {params.partial_min:.0%} clear and valid: detection skipped"
            rec["reason"] = "; ".join(r for r in (rec["reason"], skip) if r)
            detections: list[Any] = []
        else:
            detections = _flag_trucks(find(), aoi)
        rows = agg.detection_rows(detections, aoi)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # one bad scene must not sink the run: record it, go on, retry on rerun
        rec.update(status="failed", reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        log.warning("scene %s failed: %s", scene.id, rec["reason"])
        rec["elapsed_s"] = round(time.perf_counter() - t0, 3)
        atomic_write_json(scenes_dir / f"{name}.json", rec)
        return rec
    df = agg.detections_table(rows)
    fc = {"type": "FeatureCollection", "features": agg.features_from_rows(df)}
    atomic_write_text(scenes_dir / f"{name}.geojson", json.dumps(fc) + "\n")
    rec["n_detections"] = len(df)
    rec["elapsed_s"] = round(time.perf_counter() - t0, 3)
    atomic_write_json(scenes_dir / f"{name}.json", rec)
    return rec


def on_grid(detections: Sequence[Detection], grid: Grid) -> list[Detection]:
    """The detections whose centre lies on ``grid``."""
    from detect.sar import detection_pixels

    px = detection_pixels(detections, grid)
    return [
        d
        for d, (col, row) in zip(detections, px, strict=True)
        if 0 <= col < grid.width and 0 <= row < grid.height
    ]


def _flag_trucks(detections: list[Any], aoi: Aoi) -> list[Any]:
    """Mark trucks on or off the AOI's road and bridge-deck zones (``on_road``); ships pass unchanged.

    Off-road trucks are kept, flagged, so a user sees them; per-zone counts come from the zones themselves.
    """
    trucks = [d for d in detections if d.class_name == "truck"]
    if not trucks:
        return detections
    from detect.trucks import flag_on_road

    flagged = iter(flag_on_road(trucks, aoi))
    return [next(flagged) if d.class_name == "truck" else d for d in detections]


def screen_reason(screen: Any) -> str:
    """Why a scene's view is limited, in words (empty for a clear scene)."""
    if screen.status == "nodata":
        return "no valid pixels over the AOI"
    if screen.status == "cloudy":
        return f"cloudy: {screen.cloud_fraction:.0%} of the AOI's valid pixels under cloud or shadow"
    if screen.status == "partial":
        return f"partial: only {screen.valid_fraction:.0%} of the AOI has data"
    if screen.status == "unknown":
        return "no cloud mask (neither SCL nor the s2cloudless bands): clouds would go unnoticed"
    return ""


def _num(v: Any, default: float | None = None) -> float | None:
    if v is None:
        return default
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return f if np.isfinite(f) else default


def _load_detections(scenes_dir: Path, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for rec in records:
        if rec["status"] == "failed" or not rec.get("n_detections"):
            continue
        fc = json.loads((scenes_dir / f"{safe_name(rec['scene'])}.geojson").read_text())
        rows.extend(agg.rows_from_features(fc["features"]))
    return rows


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class RunSetup:
    """What a run derives from its arguments before reading any scene; ``run`` and the batch planner
    (``detect.batch``) share it, so a batch's finishing ``run`` finds every scene its workers did."""

    area: Aoi
    classes: tuple[str, ...]
    sensors: tuple[str, ...]
    collections: dict[str, str]  # sensor → catalogue collection
    sources: dict[str, str]  # sensor → catalogue source
    methods: dict[str, dict[str, str]]  # sensor → class → detector method
    grid: Grid  # the AOI's UTM 10 m grid
    keys: dict[str, dict[str, Any]]  # sensor → the record key a finished scene must match


def plan_run(
    aoi: Aoi | str,
    start: date,
    *,
    source: str,
    collection: str | None,
    classes: Sequence[str],
    method: str,
    conf: float | None,
    sensors: str | Sequence[str] | None,
    s1_margin_m: float = S1_MARGIN_M,
) -> RunSetup:
    """Check a run's arguments and derive its sensors, collections, sources, detectors, grid and keys."""
    area = get_aoi(aoi)
    wanted = tuple(dict.fromkeys(c.strip() for c in classes if c.strip()))
    if not wanted:
        raise InputError("no classes to count; use e.g. --classes ship or ship,truck")
    used = parse_sensors(sensors, method=method, collection=collection)
    _check_sensors(used, source=source, classes=wanted, method=method)
    collections = sensor_collections(used, source, start, collection, method)
    sources = dict.fromkeys(used, source)
    if source == "earth-search" and collections.get("S2") == "sentinel-2-l1c":
        # Earth Search's own L1C assets are requester-pays; the same granules are anonymous on Google Cloud.
        sources["S2"] = "earth-search:gcp"
    methods = {"S2": detector_methods(wanted, method)} if "S2" in used else {}
    if "S1" in used:
        methods["S1"] = {"ship": "cfar"}
    grid = area.grid(10.0)
    keys = {
        "S2": _record_key(methods.get("S2", {}), conf, grid, area),
        "S1": _record_key(methods.get("S1", {}), conf, margin_grid(grid, s1_margin_m)[0], area),
    }
    return RunSetup(area, wanted, tuple(used), collections, sources, methods, grid, keys)


def run(
    aoi: Aoi | str,
    start: date | datetime | str,
    end: date | datetime | str,
    *,
    out_dir: str | Path,
    source: str = "earth-search",
    collection: str | None = None,
    classes: Sequence[str] = ("ship",),
    max_cloud: float | None = None,
    claims: str | Path | Sequence[Claim] | None = None,
    cache_dir: str | Path | None = None,
    method: str = "yolo",
    device: str = "cpu",
    conf: float | None = None,
    progress: bool = True,
    params: agg.AggregateParams | None = None,
    visit_params: VisitParams | None = None,
    steps: Steps | None = None,
    command: Sequence[str] | None = None,
    report: bool = True,
    sensors: str | Sequence[str] | None = None,
    ais: str | Path | pd.DataFrame | None = None,
    ais_params: AisParams | None = None,
    s1_margin_m: float = S1_MARGIN_M,
) -> RunResult:
    """Count ``classes`` per day and zone over ``aoi`` from ``start`` to ``end`` (UTC dates, inclusive).

    Writes the run folder ``out_dir`` (see docs/run.md) and returns its tables. Rerunning with the
    same arguments reuses every finished scene in ``out_dir/scenes``. ``report=False`` writes the
    tables and run.json but not the charts and report (for batch jobs that only need the numbers).

    ``sensors``: ``"s2"`` (default), ``"s1"`` or ``"s2,s1"``. Sentinel-1 GRD scenes are searched in
    ``sentinel-1-grd`` and counted for ships by the CFAR detector (``method`` is the Sentinel-2 ship
    detector); a day is counted from a clear Sentinel-2 view when there is one, else from the scene
    that saw most (``agg.daily_counts``). ``method="cfar"`` or a ``sentinel-1-*`` ``collection``
    without ``sensors`` means ``s1``. ``ais``: a CSV/Parquet file (or a table) of AIS fixes; ship
    detections without an AIS partner are marked ``dark`` and counted in ``dark_count``.
    """
    started = datetime.now(timezone.utc)
    d0, d1 = parse_date(start, "start"), parse_date(end, "end")
    if d1 < d0:
        raise InputError(f"end {d1} is before start {d0}")
    setup = plan_run(
        aoi,
        d0,
        source=source,
        collection=collection,
        classes=classes,
        method=method,
        conf=conf,
        sensors=sensors,
        s1_margin_m=s1_margin_m,
    )
    area, classes, used, grid = setup.area, setup.classes, setup.sensors, setup.grid
    collections, sources, methods, keys = setup.collections, setup.sources, setup.methods, setup.keys
    if sources.get("S2") == "earth-search:gcp" and source == "earth-search":
        log.info("reading Earth Search L1C granules from the public Google Cloud bucket (earth-search:gcp)")
    claim_list = _claims(claims)
    ais_table, ais_info = _ais(ais, ais_params)
    params = params or agg.AggregateParams()
    steps = steps or default_steps()
    out = Path(out_dir)
    scenes_dir = out / "scenes"
    scenes_dir.mkdir(parents=True, exist_ok=True)

    masks = agg.zone_masks(area, grid)
    cache = _cache(cache_dir, source)
    bands = steps.required_bands(methods["S2"]) if "S2" in used else ()

    found = search_scenes(steps, area, d0, d1, sources=sources, collections=collections, max_cloud=max_cloud)
    log.info(
        "%d scenes over %s, %s – %s (%s)",
        len(found),
        area.name,
        d0,
        d1,
        ", ".join(f"{sn}: {sources[sn]} {c}" for sn, c in collections.items()),
    )
    records = []
    bar = _progress(len(found), progress)
    try:
        for scene in found:
            sensor = scene_sensor(scene)
            rec = _load_done(scenes_dir / f"{safe_name(scene.id)}.json", keys[sensor])
            if rec is None:
                rec = process_scene(
                    scene,
                    aoi=area,
                    grid=grid,
                    masks=masks,
                    steps=steps,
                    bands=bands,
                    methods=methods[sensor],
                    conf=conf,
                    device=device,
                    cache=cache,
                    params=params,
                    key=keys[sensor],
                    scenes_dir=scenes_dir,
                    sensor=sensor,
                    s1_margin_m=s1_margin_m,
                )
            records.append(rec)
            bar.update(1)
    finally:
        bar.close()

    detections = agg.detections_table(_load_detections(scenes_dir, records))
    scenes = agg.scenes_table(records)
    if ais_table is not None:
        detections, scenes = apply_ais(detections, scenes, ais_table, ais_params)
    coverage = agg.coverage_table([c for r in records for c in r.get("coverage", [])])
    zones = agg.zone_names(area)
    daily = agg.daily_counts(
        detections,
        scenes,
        coverage,
        aoi=area.name,
        zones=zones,
        start=d0,
        end=d1,
        classes=classes,
        params=params,
    )
    visits, stays = _visits(detections, daily, zones, classes, visit_params)
    result = RunResult(
        aoi=area,
        start=d0,
        end=d1,
        classes=classes,
        out_dir=out,
        detections=detections,
        scenes=scenes,
        coverage=coverage,
        daily_counts=daily,
        visits=visits,
        stays=stays,
        verdicts=(),
        sensors=used,
    )
    if claim_list:
        result = replace(result, verdicts=tuple(compare(claim_list, result, params=visit_params)))
    parameters = {
        "aoi": area.name,
        "start": d0.isoformat(),
        "end": d1.isoformat(),
        "source": sources.get("S2", source),
        "collection": collections.get("S2") or collections.get("S1"),
        "sensors": list(used),
        "collections": collections,
        "classes": list(classes),
        "max_cloud": max_cloud,
        "methods": methods.get("S2") or methods["S1"],
        "s1_methods": methods.get("S1"),
        "s1_margin_m": s1_margin_m if "S1" in used else None,
        "ais": ais_info,
        "device": device,
        "conf": conf,
        "cache_dir": str(cache_dir) if cache_dir else None,
        "claims": [c.id for c in claim_list],
        "observed_min": params.observed_min,
        "partial_min": params.partial_min,
        "visits": vars(visit_params or VisitParams()),
    }
    paths = write_outputs(
        result,
        found=found,
        grid=grid,
        steps=steps,
        cache=cache,
        parameters=parameters,
        method=(methods.get("S2") or methods["S1"]).get("ship", method),
        command=command,
        started=started,
        report=report,
    )
    result.paths.update(paths)
    return result


def _ais(
    ais: str | Path | pd.DataFrame | None, params: AisParams | None
) -> tuple[pd.DataFrame | None, dict[str, Any] | None]:
    """The AIS table (normalised) and what run.json says about it."""
    from detect.ais import load_ais, normalise_ais

    if ais is None:
        return None, None
    table = normalise_ais(ais) if isinstance(ais, pd.DataFrame) else load_ais(ais)
    info = {
        "file": None if isinstance(ais, pd.DataFrame) else str(ais),
        "fixes": len(table),
        "vessels": int(table["mmsi"].nunique()),
        "first": table["timestamp"].min().isoformat() if len(table) else None,
        "last": table["timestamp"].max().isoformat() if len(table) else None,
        "params": vars(params or AisParams()),
    }
    return table, info


def apply_ais(
    detections: pd.DataFrame, scenes: pd.DataFrame, ais: pd.DataFrame, params: AisParams | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ship detections matched with AIS (``detect.ais.match_ais``): ``dark`` True when no AIS position lies
    within the gates, else False with the partner's ``mmsi``; and per scene ``ais_fixes``, the fixes within
    the time window of its acquisition (anywhere). A scene with none was outside the AIS data: its
    detections stay ``<NA>``, because no AIS there says nothing about the ships. Works on any sensor.
    """
    from detect.ais import match_ais

    p = params or AisParams()
    detections, scenes = detections.copy(), scenes.copy()
    times = ais["timestamp"]
    window = pd.Timedelta(seconds=p.time_window_s)
    scenes["ais_fixes"] = pd.array(
        [int(((times - t).abs() <= window).sum()) if pd.notna(t) else 0 for t in scenes["datetime"]],
        dtype="Int64",
    )
    covered = set(scenes.loc[scenes["ais_fixes"] > 0, "scene"])
    sel = detections["class"].isin(agg.AIS_CLASSES) & detections["scene"].isin(covered)
    if sel.any():
        idx = detections.index[sel]
        matched = match_ais([_row_detection(r) for r in detections.loc[idx].to_dict("records")], ais, p)
        detections.loc[idx, "dark"] = [bool(d.properties["dark"]) for d in matched.detections]
        detections.loc[idx, "mmsi"] = pd.array(matched.mmsi_by_detection, dtype="Int64")
    return detections, scenes


def _row_detection(row: dict[str, Any]) -> Detection:
    """A detections-table row back as a ``Detection`` (what ``match_ais`` takes)."""
    acquired = row["acquired"]
    return Detection(
        class_name=row["class"],
        score=row["score"],
        polygon=row["geometry"],
        lon=row["lon"],
        lat=row["lat"],
        length_m=row["length_m"],
        width_m=row["width_m"],
        heading_deg=row["heading_deg"],
        scene=row["scene"],
        acquired=None if pd.isna(acquired) else pd.Timestamp(acquired).to_pydatetime(),
        sensor=row["sensor"],
        detector=row["detector"],
    )


def _claims(claims: str | Path | Sequence[Claim] | None) -> tuple[Claim, ...]:
    if claims is None:
        return ()
    if isinstance(claims, str | Path):
        return load_claims(claims)
    return tuple(claims)


def _cache(cache_dir: str | Path | None, source: str) -> Any:
    """The imagery cache; none for local folders unless asked (their files are already on disk)."""
    from imagery.cache import Cache

    if cache_dir is None and source.startswith("local:"):
        return None
    return Cache(cache_dir)


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc="scenes",
        unit="scene",
        file=sys.stderr,
        disable=not (enabled and sys.stderr.isatty()),
        leave=False,
    )


def _visits(
    detections: pd.DataFrame,
    daily: pd.DataFrame,
    zones: Sequence[str],
    classes: Sequence[str],
    visit_params: VisitParams | None,
) -> tuple[tuple[VisitSummary, ...], pd.DataFrame]:
    summaries, stays = [], []
    for cls in classes:
        for zone in zones:
            s, st = estimate_visits(detections, daily, zone=zone, class_name=cls, params=visit_params)
            summaries.append(s)
            stays.append(st.assign(zone=zone, **{"class": cls}))
    table = pd.concat(stays, ignore_index=True) if stays else pd.DataFrame()
    return tuple(summaries), table


# --------------------------------------------------------------------------- outputs


def write_outputs(
    result: RunResult,
    *,
    found: Sequence[Scene],
    grid: Grid,
    steps: Steps,
    cache: Any,
    parameters: dict[str, Any],
    method: str,
    command: Sequence[str] | None,
    started: datetime,
    report: bool = True,
) -> dict[str, Path]:
    """Every file of the run folder; returns name → path."""
    out = result.out_dir
    paths: dict[str, Path] = {}
    gj, gp = rep.write_detections(
        result.detections, out, aoi=result.aoi.name, start=str(result.start), end=str(result.end)
    )
    paths.update(detections_geojson=gj, detections_parquet=gp)
    csv, parquet = rep.write_table(result.daily_counts, out, "daily_counts", parquet=True)
    paths.update(daily_counts_csv=csv, daily_counts_parquet=parquet)
    paths["scenes_csv"] = rep.write_table(result.scenes, out, "scenes")[0]
    paths["coverage_csv"] = rep.write_table(result.coverage, out, "coverage")[0]
    paths["stays_csv"] = rep.write_table(result.stays, out, "stays")[0]
    paths["visits_json"] = atomic_write_json(out / "visits.json", [v.to_dict() for v in result.visits])
    paths["claims_json"] = atomic_write_json(out / "claims.json", [v.to_dict() for v in result.verdicts])
    model = rep.model_info(method)
    if report:  # counts.png, map.png, report.md and report.html
        title = f"{result.aoi.name}, {result.start} – {result.end}"
        paths["counts_png"] = rep.plot_counts(result.daily_counts, out / "counts.png", title=title)
        paths["map_png"], caption = _write_map(result, found, grid, steps, cache, out / "map.png")
        blocks = rep.report_blocks(
            aoi=result.aoi,
            start=result.start,
            end=result.end,
            parameters=parameters,
            scenes=result.scenes,
            daily=result.daily_counts,
            visits=result.visits,
            verdicts=result.verdicts,
            model=model,
            images={"counts": "counts.png", "map": "map.png", "map_caption": caption},
        )
        paths["report_md"], paths["report_html"] = rep.write_report(blocks, out, f"harborwatch: {title}")
    paths["run_json"] = rep.write_run_json(
        out / "run.json",
        parameters=parameters,
        model=model,
        command=command,
        started=started,
        extra={
            "scenes": {str(k): int(v) for k, v in result.scenes["status"].value_counts().items()},
            "scene_ids": list(result.scenes["scene"]),
        },
    )
    return paths


def map_day(daily: pd.DataFrame, class_name: str) -> tuple[date, str] | None:
    """The day (and its scene) to map: the best-seen day with the most detections in the whole AOI."""
    d = daily[
        (daily["zone"] == agg.ALL_ZONE) & (daily["class"] == class_name) & (daily["status"] != "unobserved")
    ]
    if d.empty:
        return None
    d = d.assign(_obs=d["status"] == "observed", _n=d["count"].fillna(0).astype(int))
    best = d.sort_values(
        ["_obs", "_n", "observed_fraction", "date"], ascending=[False, False, False, True]
    ).iloc[0]
    return best["date"], best["scene"]


def _write_map(
    result: RunResult, found: Sequence[Scene], grid: Grid, steps: Steps, cache: Any, path: Path
) -> tuple[Path, str]:
    pick = map_day(result.daily_counts, result.classes[0])
    zones = agg.zone_areas(result.aoi, grid.crs)
    if pick is None:
        rep.plot_map(None, grid, result.detections.iloc[0:0], path, zones=zones, title="no day was observed")
        return path, "No day of the period was observed, so there is nothing to map."
    day, scene_id = pick
    dets = result.detections[result.detections["scene"] == scene_id]
    scene = next((s for s in found if s.id == scene_id), None)
    radar = scene is not None and scene_sensor(scene) == "S1"
    image = None
    try:
        if radar:
            # Radar has no colour: the backscatter in dB, grey (the stretch works on any values).
            from imagery.sar import to_db

            image = np.repeat(to_db(steps.read_sar(scene, grid, cache=cache).data[:1]), 3, axis=0)
        elif scene is not None and all(b in scene.assets for b in RGB):
            image = steps.read(scene, grid, RGB, cache=cache).data
    except Exception as e:  # the map is an illustration; the counts do not depend on it
        log.warning("map: could not read %s for the background: %s", scene_id, e)
    title = f"{result.aoi.name} {day}: {len(dets)} detections ({scene_id})"
    rep.plot_map(image, grid, dets, path, zones=zones, title=title)
    background = (
        "the Sentinel-1 backscatter (dB, grey, 2–98 % stretch)"
        if radar
        else "the true-colour image (B04/B03/B02, 2–98 % stretch)"
    )
    caption = f"{day}, scene `{scene_id}`: {len(dets)} detections (red outlines) over {background}; "
    caption += "zones in yellow."
    return path, caption


# --------------------------------------------------------------------------- demo


DEMO_DAYS_AROUND = 3


def demo(
    out_dir: str | Path = "harborwatch-demo",
    *,
    progress: bool = True,
    method: str = "yolo",
    steps: Steps | None = None,
    command: Sequence[str] | None = None,
) -> list[RunResult]:
    """The pipeline offline on the bundled real Sentinel-2 sample chips: one run per sample, over a week
    around its date (so the days without imagery show as unobserved), from the local source."""
    from imagery.aoi import aoi_from_bbox
    from imagery.samples import list_samples, sample_dir

    results = []
    for sample in list_samples():
        west, south, east, north = sample.bbox
        # Inset the box a little: the chip's lon/lat bbox re-projected to UTM overhangs the chip's corners.
        dx, dy = (east - west) * 0.04, (north - south) * 0.04
        area = aoi_from_bbox((west + dx, south + dy, east - dx, north - dy), name=f"sample-{sample.id}")
        area = replace(
            area, description=f"bundled sample {sample.id} ({sample.city}), real Sentinel-2 L2A chip"
        )
        day = sample.datetime.date()
        around = timedelta(days=DEMO_DAYS_AROUND)
        results.append(
            run(
                area,
                day - around,
                day + around,
                out_dir=Path(out_dir) / sample.id,
                source=f"local:{sample_dir()}",
                classes=("ship",),
                method=method,
                progress=progress,
                steps=steps,
                command=command,
            )
        )
    return results
