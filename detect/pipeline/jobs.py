"""Batch jobs: a jobs file (YAML) or list of entries → ``Job`` records, one per AOI × period × source."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from itertools import product
from pathlib import Path
from typing import Any

from detect.core.registry import DEFAULT_SHIP_METHOD
from detect.pipeline.plan import parse_date
from detect.pipeline.records import plain_name
from imagery.errors import InputError

_JOB_FIELDS = {
    "aoi", "aois", "start", "end", "periods", "source", "sources", "collection", "classes", "method",
    "max_cloud", "conf", "claims", "sensors", "name", "baseline",
}  # fmt: skip


@dataclass(frozen=True)
class Job:
    """One AOI over one period from one source."""

    aoi: str
    start: date
    end: date
    source: str = "earth-search"
    classes: tuple[str, ...] = ("ship",)
    collection: str | None = None
    method: str = DEFAULT_SHIP_METHOD
    max_cloud: float | None = None
    conf: float | None = None
    claims: str | None = None
    sensors: str | None = None  # "s2" (default), "s1" or "s2,s1", as `run --sensors`
    name: str | None = None
    baseline: tuple[date, date] | None = None  # a period to compare with, as `run --baseline-start/-end`

    @property
    def id(self) -> str:
        """The job's folder name under ``out/jobs/`` (its ``name``, else aoi_start_end_source)."""
        aoi = Path(self.aoi).stem if self.aoi.endswith((".geojson", ".json")) else self.aoi
        return plain_name(self.name or f"{aoi}_{self.start}_{self.end}_{self.source}")


def expand_jobs(entries: Iterable[Mapping[str, Any]], defaults: Mapping[str, Any] | None = None) -> list[Job]:
    """Jobs from plain mappings: each entry's ``aois`` × ``periods`` × ``sources`` (or ``aoi``,
    ``start``/``end``, ``source``), over ``defaults``. InputError says which entry and field is wrong."""
    jobs: list[Job] = []
    if defaults is not None and not isinstance(defaults, Mapping):
        raise InputError(f"defaults: expected a mapping of job fields, got {type(defaults).__name__}")
    unknown = sorted(set(defaults or {}) - _JOB_FIELDS)
    if unknown:  # said of the defaults, not of "job 1" where they first apply
        known = ", ".join(sorted(_JOB_FIELDS))
        raise InputError(f"defaults: unknown field(s) {', '.join(unknown)}; known: {known}")
    for n, raw in enumerate(entries, start=1):
        if not isinstance(raw, Mapping):
            raise InputError(f"job {n}: expected a mapping with aoi, start, end, got {type(raw).__name__}")
        e = {**(defaults or {}), **raw}
        unknown = sorted(set(e) - _JOB_FIELDS)
        if unknown:
            known = ", ".join(sorted(_JOB_FIELDS))
            raise InputError(f"job {n}: unknown field(s) {', '.join(unknown)}; known: {known}")
        for one, many in (("aoi", "aois"), ("source", "sources"), ("start", "periods"), ("end", "periods")):
            if one in raw and many in raw:  # one of them would be dropped without a word
                raise InputError(f"job {n}: give {one} or {many}, not both")
            # the entry's own field wins over the other form in defaults (`sources` there hid `source` here)
            if one in raw:
                e.pop(many, None)
            elif many in raw:
                e.pop(one, None)
        aois = _listed(e, "aoi", "aois", n)
        sources = _listed(e, "source", "sources", n, default=["earth-search"])
        if "periods" in e:
            periods = [_period(p, n) for p in e["periods"]]
        elif "start" in e and "end" in e:
            periods = [_period(e, n)]
        else:
            raise InputError(f"job {n}: give start and end (YYYY-MM-DD) or periods: [{{start, end}}, ...]")
        classes = e.get("classes", ["ship"])
        classes = tuple(c.strip() for c in (classes.split(",") if isinstance(classes, str) else classes))
        multi = len(aois) * len(periods) * len(sources) > 1
        starts = [s for s, _ in periods]
        with_end = len(set(starts)) < len(starts)  # two periods of the entry start on one day
        with_source = len(sources) > 1
        for aoi, (start, end), source in product(aois, periods, sources):
            jobs.append(
                Job(
                    aoi=str(aoi),
                    start=start,
                    end=end,
                    source=str(source),
                    classes=classes,
                    collection=e.get("collection"),
                    method=str(e.get("method", DEFAULT_SHIP_METHOD)),
                    max_cloud=e.get("max_cloud"),
                    conf=e.get("conf"),
                    claims=e.get("claims"),
                    sensors=e.get("sensors"),
                    name=_job_name(
                        e.get("name"),
                        aoi,
                        start,
                        multi,
                        end=end if with_end else None,
                        source=str(source) if with_source else None,
                    ),
                    baseline=_baseline(e.get("baseline"), start, end, n),
                )
            )
    ids = [j.id for j in jobs]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InputError(f"jobs share an id (their output folder): {', '.join(dup)}; name them apart")
    return jobs


def _job_name(
    name: str | None,
    aoi: Any,
    start: date,
    multi: bool,
    *,
    end: date | None = None,
    source: str | None = None,
) -> str | None:
    """A named entry that expands to several jobs names each one by its AOI and start, and by its end and
    source where the entry has periods sharing a start or several sources (they would share a folder)."""
    if not name or not multi:
        return name
    a = str(aoi)
    parts = [name, Path(a).stem if a.endswith((".geojson", ".json")) else a, str(start)]
    if end is not None:
        parts.append(str(end))
    if source is not None:
        parts.append(source)
    return "_".join(parts)


def load_jobs(path: str | Path) -> list[Job]:
    """Jobs from a YAML file: ``jobs: [...]`` (and optional ``defaults: {...}``), or a bare list."""
    import yaml

    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise InputError(f"no such jobs file: {p}") from None
    except yaml.YAMLError as e:
        raise InputError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from None
    if isinstance(doc, list):
        entries, defaults = doc, {}
    elif isinstance(doc, dict) and isinstance(doc.get("jobs"), list):
        entries, defaults = doc["jobs"], doc.get("defaults") or {}
    else:
        raise InputError(f"{p}: expected a list of jobs or a mapping with 'jobs: [...]'")
    if not entries:
        raise InputError(f"{p} lists no jobs")
    return [beside(job, p.parent) for job in expand_jobs(entries, defaults)]


def beside(job: Job, folder: Path) -> Job:
    """``job`` with its relative AOI file, claims file and ``local:`` folder taken from ``folder`` (the jobs
    file's) where they are found there, so a jobs file works from any working directory; a path found only
    from the working directory stays as written, and so does a bundled AOI or claims name (a folder of
    downloads named ``longkou-2018`` beside the jobs file is not the bundled claims ``longkou-2018``)."""
    from imagery.aoi import aoi_names

    def here(text: str | None, *, file: bool) -> str | None:
        if not text or Path(text).is_absolute():
            return text
        p = folder / text
        if not (p.is_file() if file else p.exists()):
            return text
        return str(p.resolve())

    aoi = job.aoi if job.aoi.strip().lower() in aoi_names() else here(job.aoi, file=True) or job.aoi
    source = job.source
    if source.lower().startswith("local:"):
        source = f"local:{here(source[len('local:') :], file=False)}"
    changed = (aoi, source) != (job.aoi, job.source)
    # the job keeps the folder name it had with the paths as written (its id), so a rerun resumes there
    name = (job.name or job.id) if changed else job.name
    return replace(job, aoi=aoi, claims=here(job.claims, file=True), source=source, name=name)


def _listed(e: Mapping[str, Any], one: str, many: str, n: int, default: list[Any] | None = None) -> list[Any]:
    if many in e:
        values = e[many]
        if not isinstance(values, list) or not values:
            raise InputError(f"job {n}: {many} must be a non-empty list")
        return values
    if one in e:
        return [e[one]]
    if default is not None:
        return default
    raise InputError(f"job {n}: give {one} (or {many}: [...])")


def _baseline(b: Any, start: date, end: date, n: int) -> tuple[date, date] | None:
    """A job's baseline period ({start, end} or [start, end]), apart from its period."""
    from detect.pipeline.runner import baseline_period

    if b is None:
        return None
    period = _period(b, n)
    try:
        return baseline_period(period, start, end)
    except InputError as e:
        raise InputError(f"job {n}: {e}") from None


def _period(p: Any, n: int) -> tuple[date, date]:
    if isinstance(p, Mapping):
        s, e = p.get("start"), p.get("end")
    elif isinstance(p, list | tuple) and len(p) == 2:
        s, e = p
    else:
        raise InputError(f"job {n}: a period is {{start, end}} or [start, end], got {p!r}")
    d0, d1 = parse_date(s, f"job {n} start"), parse_date(e, f"job {n} end")
    if d1 < d0:
        raise InputError(f"job {n}: end {d1} is before start {d0}")
    return d0, d1
