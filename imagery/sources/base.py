"""What every catalogue source shares: the ``Catalog`` protocol, period parsing, coverage rules, AOI
coverage, argument checks and the remote ``SceneSearch`` base; below both the sources and the registry."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from imagery.errors import CoverageError, InputError
from imagery.types import Scene

if TYPE_CHECKING:
    from imagery.aoi import Aoi

log = logging.getLogger(__name__)

#: Sentinel-2A's first acquisitions in the archive; Sentinel-1A's first IW GRD products.
S2_ARCHIVE_START = datetime(2015, 6, 23, tzinfo=timezone.utc)
S1_ARCHIVE_START = datetime(2014, 10, 3, tzinfo=timezone.utc)
#: ESA produced Level-2A systematically worldwide only from this date (Europe from 2017/2018).
L2A_GLOBAL_START = datetime(2018, 12, 1, tzinfo=timezone.utc)
#: Sentinel-2 acquisition latitudes (land and coastal waters between 56° S and 84° N).
S2_LAT_RANGE = (-56.0, 84.0)
#: Rough box around Europe where ESA's L2A started before December 2018.
_EUROPE_BBOX = (-32.0, 27.0, 45.0, 72.0)


@runtime_checkable
class Catalog(Protocol):
    """A source of acquisitions. ``start``/``end`` may be dates (end inclusive) or aware datetimes."""

    name: str
    collections: tuple[str, ...]

    def search(
        self,
        aoi: Aoi,
        start: date | datetime | str,
        end: date | datetime | str,
        *,
        collection: str,
        max_cloud: float | None = None,
        limit: int | None = None,
    ) -> list[Scene]: ...


# -- period --------------------------------------------------------------------------------------------

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _as_utc(value: date | datetime | str, *, end: bool) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        if _DATE_RE.match(text):
            try:
                value = date.fromisoformat(text)
            except ValueError:
                raise InputError(f"invalid date {text!r}; use YYYY-MM-DD") from None
        else:
            try:
                value = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise InputError(f"invalid date {text!r}; use YYYY-MM-DD (UTC)") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, date):
        # A date means the whole UTC day: the end of a period is inclusive.
        t = time.max if end else time.min
        return datetime.combine(value, t, tzinfo=timezone.utc)
    raise InputError(f"expected a date, datetime or YYYY-MM-DD string, got {value!r}")


def parse_period(start: date | datetime | str, end: date | datetime | str) -> tuple[datetime, datetime]:
    """(start, end) as aware UTC datetimes; dates cover whole UTC days, the end day included."""
    s, e = _as_utc(start, end=False), _as_utc(end, end=True)
    if e < s:
        raise InputError(f"end {e:%Y-%m-%d} is before start {s:%Y-%m-%d}")
    return s, e


def stac_datetime_range(start: datetime, end: datetime) -> str:
    """RFC 3339 interval for a STAC ``datetime`` parameter (millisecond precision, Z suffix)."""

    def fmt(d: datetime) -> str:
        return d.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"

    return f"{fmt(start)}/{fmt(end)}"


# -- coverage rules ------------------------------------------------------------------------------------


def check_coverage(aoi: Aoi, start: datetime, end: datetime, collection: str, source: str) -> None:
    """Raise ``CoverageError`` when the AOI or period lies wholly outside what ``collection`` holds.

    Partial overlaps are logged and searched; only requests that cannot return anything fail.
    """
    now = datetime.now(timezone.utc)
    if start > now:
        raise CoverageError(f"the period starts {start:%Y-%m-%d}, in the future; nothing is acquired yet")
    if collection.startswith("sentinel-2"):
        if end < S2_ARCHIVE_START:
            raise CoverageError(
                f"{collection} starts on {S2_ARCHIVE_START:%Y-%m-%d} (Sentinel-2A); "
                f"the period ends {end:%Y-%m-%d}"
            )
        _, south, _, north = aoi.bbox
        lo, hi = S2_LAT_RANGE
        if north < lo or south > hi:
            raise CoverageError(
                f"AOI {aoi.name!r} (latitude {south:.2f}..{north:.2f}) is outside Sentinel-2 coverage "
                f"({abs(lo):.0f}° S to {hi:.0f}° N, land and coastal waters); try sentinel-1-grd"
            )
        if collection == "sentinel-2-l2a" and source == "earth-search" and start < L2A_GLOBAL_START:
            where = (
                " (Europe from 2017-2018)"
                if _intersects_bbox(aoi, _EUROPE_BBOX)
                else ", so this AOI may have few or no L2A scenes"
            )
            log.warning(
                "%s before December 2018: ESA made L2A worldwide only from then%s; for %d use "
                "sentinel-2-l1c, sentinel-2-c1-l2a or --source planetary-computer",
                collection,
                where,
                start.year,
            )
    elif collection.startswith("sentinel-1") and end < S1_ARCHIVE_START:
        raise CoverageError(
            f"{collection} starts on {S1_ARCHIVE_START:%Y-%m-%d}; the period ends {end:%Y-%m-%d}"
        )


def _intersects_bbox(aoi: Aoi, bbox: tuple[float, float, float, float]) -> bool:
    w, s, e, n = aoi.bbox
    return not (e < bbox[0] or w > bbox[2] or n < bbox[1] or s > bbox[3])


def empty_result_hint(collection: str, start: datetime, source: str) -> str:
    """A sentence for the CLI when a search finds nothing."""
    if collection == "sentinel-2-l2a" and start < L2A_GLOBAL_START and source == "earth-search":
        return (
            "L2A before December 2018 exists mostly over Europe; try --collection sentinel-2-l1c "
            "or --source planetary-computer (global L2A from 2016)"
        )
    return "widen the period, raise --max-cloud, or try another --source"


# -- per-scene AOI coverage ----------------------------------------------------------------------------


def aoi_coverage(aoi: Aoi, footprint: Any) -> float:
    """Fraction (0–1) of the AOI's area inside ``footprint`` (EPSG:4326), measured in the AOI's UTM CRS."""
    from imagery.aoi import to_crs

    if footprint is None or footprint.is_empty:
        return 0.0
    crs = aoi.utm_crs
    area = to_crs(aoi.geometry, crs)
    if area.area <= 0:  # a point or line AOI: covered or not
        return 1.0 if footprint.intersects(aoi.geometry) else 0.0
    fp = to_crs(footprint if footprint.is_valid else footprint.buffer(0), crs)
    return float(min(1.0, area.intersection(fp).area / area.area))


def finish(
    scenes: Iterable[Scene],
    aoi: Aoi,
    start: datetime,
    end: datetime,
    *,
    max_cloud: float | None,
    limit: int | None,
) -> list[Scene]:
    """What every source does last: keep scenes that touch the AOI inside the period and under the
    cloud limit (servers sometimes ignore filters), record AOI coverage, sort by time, apply ``limit``."""
    kept: dict[tuple[str, str], Scene] = {}
    for scene in scenes:
        if not (start <= scene.datetime <= end):
            continue
        if max_cloud is not None and scene.cloud_cover is not None and scene.cloud_cover > max_cloud:
            continue
        frac = aoi_coverage(aoi, scene.footprint)
        if frac <= 0:
            continue
        props = dict(scene.properties)
        props["aoi_coverage"] = round(frac, 4)
        kept.setdefault((scene.collection, scene.id), replace(scene, properties=props))
    out = sorted(kept.values(), key=lambda s: (s.datetime, s.id))
    return out[:limit] if limit is not None else out


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise InputError(f"limit must be a positive number of scenes, got {limit}")


def check_max_cloud(max_cloud: float | None) -> None:
    if max_cloud is not None and not 0 <= max_cloud <= 100:
        raise InputError(f"max cloud must be a percentage between 0 and 100, got {max_cloud}")


def check_collection(collection: str, allowed: tuple[str, ...], source: str) -> None:
    """Refuse a collection the source does not serve; an empty ``allowed`` means any (a STAC API whose
    collections are its own business)."""
    if not collection:
        raise InputError(f"{source}: name a collection (--collection)")
    if allowed and collection not in allowed:
        raise InputError(f"{source} has no collection {collection!r}; choose one of: {', '.join(allowed)}")


class SceneSearch:
    """``Catalog.search`` for the remote sources: validate the arguments, let the source ``find`` its
    candidate scenes for the UTC period, then ``finish`` them the same way for every source."""

    name: str
    collections: tuple[str, ...]

    def search(
        self,
        aoi: Aoi,
        start: date | datetime | str,
        end: date | datetime | str,
        *,
        collection: str,
        max_cloud: float | None = None,
        limit: int | None = None,
    ) -> list[Scene]:
        check_collection(collection, self.collections, self.name)
        check_limit(limit)
        check_max_cloud(max_cloud)
        t0, t1 = parse_period(start, end)
        check_coverage(aoi, t0, t1, collection, self.name)
        scenes = self.find(aoi, t0, t1, collection=collection, max_cloud=max_cloud, limit=limit)
        return finish(scenes, aoi, t0, t1, max_cloud=max_cloud, limit=limit)

    def find(
        self,
        aoi: Aoi,
        start: datetime,
        end: datetime,
        *,
        collection: str,
        max_cloud: float | None,
        limit: int | None,
    ) -> Iterable[Scene]:
        """Candidate scenes for an already validated search (``finish`` filters, sorts and limits them)."""
        raise NotImplementedError


def day_window(dt: datetime, seconds: float = 60.0) -> tuple[datetime, datetime]:
    """A short interval around an acquisition time, for APIs that take a time range per request."""
    return dt - timedelta(seconds=seconds), dt + timedelta(seconds=seconds)
