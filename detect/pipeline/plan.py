"""Planning a run: dates, sensors, collections, sources and detectors from its arguments (``plan_run``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from detect.core.registry import DEFAULT_SHIP_METHOD
from detect.detectors import detector_methods
from detect.pipeline.records import record_key
from detect.sar.s1 import S1_MARGIN_M, margin_grid
from imagery.aoi import Aoi, get_aoi
from imagery.errors import InputError
from imagery.types import Grid

#: ESA's Level-2A is global only from December 2018; before that the pipeline reads Level-1C.
L2A_GLOBAL_START = date(2018, 12, 1)

#: Sensors a run can use: Sentinel-2 (optical) and Sentinel-1 (radar, ships only).
SENSORS = ("S2", "S1")

#: Catalogue sources whose Sentinel-1 GRD cannot be read anonymously.
S1_REQUESTER_PAYS = ("earth-search", "earth-search:gcp", "earthsearch", "element84")


def parse_date(value: date | datetime | str, what: str) -> date:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InputError(f"{what} {value!r} is not a date; use YYYY-MM-DD") from None


def default_collection(source: str, start: date, method: str = DEFAULT_SHIP_METHOD) -> str:
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
    sensors: str | Sequence[str] | None, *, method: str = DEFAULT_SHIP_METHOD, collection: str | None = None
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


def check_sensors(sensors: Sequence[str], *, source: str, classes: Sequence[str], method: str) -> None:
    if "S2" in sensors and method == "cfar":
        raise InputError(
            "--method cfar is the Sentinel-1 detector; for Sentinel-2 leave --method out (auto) or choose "
            "seg-ens, seg-b4, seg, yolo or baseline "
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
    sensors: Sequence[str],
    source: str,
    start: date,
    collection: str | None = None,
    method: str = DEFAULT_SHIP_METHOD,
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


@dataclass(frozen=True)
class RunSetup:
    """What a run derives from its arguments before reading any scene; ``run`` and the batch planner
    (``detect.pipeline.batch``) share it, so a batch's finishing ``run`` finds every scene its workers did."""

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
    check_sensors(used, source=source, classes=wanted, method=method)
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
        "S2": record_key(methods.get("S2", {}), conf, grid, area),
        "S1": record_key(methods.get("S1", {}), conf, margin_grid(grid, s1_margin_m)[0], area),
    }
    return RunSetup(area, wanted, tuple(used), collections, sources, methods, grid, keys)
