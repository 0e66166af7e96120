"""`run`: AOI and period in, daily counts, visits, claim verdicts and a report folder out.

search → per scene (read window → cloud screen → detect → scenes/<id>.json) → aggregate → report.
Each scene's result is written atomically as soon as it is done, so an interrupted run resumes
where it stopped; a scene that fails is recorded with its error and the run goes on.
"""

from __future__ import annotations

import logging
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
from detect.claims import Claim, ClaimVerdict, compare, load_claims
from detect.visits import VisitParams, VisitSummary, estimate_visits
from imagery.aoi import Aoi, get_aoi
from imagery.atomic import atomic_write_json, atomic_write_text
from imagery.clouds import S2CLOUDLESS_BANDS
from imagery.errors import InputError
from imagery.types import Grid, RasterWindow, Scene

log = logging.getLogger(__name__)

#: Per-scene result format; a record written by another version is redone.
SCENE_RECORD_VERSION = 1
#: ESA's Level-2A is global only from December 2018; before that the pipeline reads Level-1C.
L2A_GLOBAL_START = date(2018, 12, 1)
RGB = ("B04", "B03", "B02")


@dataclass(frozen=True)
class Steps:
    """The functions the pipeline calls; the defaults are harborwatch's own. Swap one to plug in a
    different catalogue, reader or detector (tests wrap them to count calls)."""

    search: Callable[..., list[Scene]]
    read: Callable[..., RasterWindow]
    screen: Callable[..., tuple[Any, np.ndarray | None, np.ndarray]]
    detect: Callable[..., list[Any]]
    required_bands: Callable[[dict[str, str]], tuple[str, ...]]


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

    Same choice of mask as ``imagery.clouds.screen_window`` (SCL, else s2cloudless, else the window's
    own), but the masks are kept: daily counts need the clear share of every zone, not only the AOI's.
    """
    from imagery import clouds

    valid = window.valid_mask
    if (window.processing_level or "").upper() == "GRD":
        cloud, method = np.zeros(window.grid.shape, dtype=bool), "sar"  # radar sees through cloud
    elif "SCL" in window.band_names:
        cloud, invalid = clouds.scl_cloud_mask(window.band("SCL"))
        valid, method = valid & ~invalid, "scl"
    elif all(b in window.band_names for b in clouds.S2CLOUDLESS_BANDS):
        cloud, method = clouds.s2cloudless_mask(window), "s2cloudless"
    else:
        cloud, method = window.cloud, "mask"
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
        daily = self.daily_counts.copy()
        daily["date"] = daily["date"].map(lambda d: d.isoformat())
        daily = daily.astype(object).where(daily.notna(), None)
        return {
            "aoi": self.aoi.name,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "classes": list(self.classes),
            "out_dir": str(self.out_dir),
            "scenes": {"total": len(self.scenes), **{str(k): int(v) for k, v in status.items()}},
            "detections": len(self.detections),
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
    return {
        "version": SCENE_RECORD_VERSION,
        "methods": dict(methods),
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
    import json

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
) -> dict[str, Any]:
    """Read, screen and detect one scene; write its detections, then its record (the record marks it done)."""
    t0 = time.perf_counter()
    rec = _base_record(scene, key)
    name = safe_name(scene.id)
    try:
        window = steps.read(scene, grid, scene_bands(scene, bands), cache=cache)
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
            detections = [
                d
                for c, m in methods.items()
                for d in steps.detect(window, classes=(c,), method=m, conf=conf, device=device)
            ]
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
    import json

    atomic_write_text(scenes_dir / f"{name}.geojson", json.dumps(fc) + "\n")
    rec["n_detections"] = len(df)
    rec["elapsed_s"] = round(time.perf_counter() - t0, 3)
    atomic_write_json(scenes_dir / f"{name}.json", rec)
    return rec


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
    import json

    rows: list[dict[str, Any]] = []
    for rec in records:
        if rec["status"] == "failed" or not rec.get("n_detections"):
            continue
        fc = json.loads((scenes_dir / f"{safe_name(rec['scene'])}.geojson").read_text())
        rows.extend(agg.rows_from_features(fc["features"]))
    return rows


# --------------------------------------------------------------------------- run


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
) -> RunResult:
    """Count ``classes`` per day and zone over ``aoi`` from ``start`` to ``end`` (UTC dates, inclusive).

    Writes the run folder ``out_dir`` (see docs/run.md) and returns its tables. Rerunning with the
    same arguments reuses every finished scene in ``out_dir/scenes``. ``report=False`` writes the
    tables and run.json but not the charts and report (for batch jobs that only need the numbers).
    """
    started = datetime.now(timezone.utc)
    area = get_aoi(aoi)
    d0, d1 = parse_date(start, "start"), parse_date(end, "end")
    if d1 < d0:
        raise InputError(f"end {d1} is before start {d0}")
    classes = tuple(dict.fromkeys(c.strip() for c in classes if c.strip()))
    if not classes:
        raise InputError("no classes to count; use e.g. --classes ship or ship,truck")
    claim_list = _claims(claims)
    collection = collection or default_collection(source, d0, method)
    if source == "earth-search" and collection == "sentinel-2-l1c":
        # Earth Search's own L1C assets are requester-pays; the same granules are anonymous on Google Cloud.
        log.info("reading Earth Search L1C granules from the public Google Cloud bucket (earth-search:gcp)")
        source = "earth-search:gcp"
    params = params or agg.AggregateParams()
    steps = steps or default_steps()
    out = Path(out_dir)
    scenes_dir = out / "scenes"
    scenes_dir.mkdir(parents=True, exist_ok=True)

    grid = area.grid(10.0)
    masks = agg.zone_masks(area, grid)
    cache = _cache(cache_dir, source)
    methods = detector_methods(classes, method)
    bands = steps.required_bands(methods)
    key = _record_key(methods, conf, grid, area)

    found = steps.search(area, d0, d1, collection=collection, source=source, max_cloud=max_cloud)
    log.info("%d scenes over %s, %s – %s (%s, %s)", len(found), area.name, d0, d1, source, collection)
    records = []
    bar = _progress(len(found), progress)
    try:
        for scene in found:
            rec = _load_done(scenes_dir / f"{safe_name(scene.id)}.json", key)
            if rec is None:
                rec = process_scene(
                    scene,
                    aoi=area,
                    grid=grid,
                    masks=masks,
                    steps=steps,
                    bands=bands,
                    methods=methods,
                    conf=conf,
                    device=device,
                    cache=cache,
                    params=params,
                    key=key,
                    scenes_dir=scenes_dir,
                )
            records.append(rec)
            bar.update(1)
    finally:
        bar.close()

    detections = agg.detections_table(_load_detections(scenes_dir, records))
    scenes = agg.scenes_table(records)
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
    )
    if claim_list:
        result = replace(result, verdicts=tuple(compare(claim_list, result, params=visit_params)))
    parameters = {
        "aoi": area.name,
        "start": d0.isoformat(),
        "end": d1.isoformat(),
        "source": source,
        "collection": collection,
        "classes": list(classes),
        "max_cloud": max_cloud,
        "methods": methods,
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
        method=methods.get("ship", method),
        command=command,
        started=started,
        report=report,
    )
    result.paths.update(paths)
    return result


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
    if report:
        paths.update(_write_report(result, found, grid, steps, cache, parameters, model))
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


def _write_report(
    result: RunResult,
    found: Sequence[Scene],
    grid: Grid,
    steps: Steps,
    cache: Any,
    parameters: dict[str, Any],
    model: rep.ModelInfo,
) -> dict[str, Path]:
    """counts.png, map.png, report.md and report.html."""
    out = result.out_dir
    title = f"{result.aoi.name}, {result.start} – {result.end}"
    paths = {"counts_png": rep.plot_counts(result.daily_counts, out / "counts.png", title=title)}
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
    rgb = None
    if scene is not None and all(b in scene.assets for b in RGB):
        try:
            rgb = steps.read(scene, grid, RGB, cache=cache).data
        except Exception as e:  # the map is an illustration; the counts do not depend on it
            log.warning("map: could not read %s for the background: %s", scene_id, e)
    title = f"{result.aoi.name} {day}: {len(dets)} detections ({scene_id})"
    rep.plot_map(rgb, grid, dets, path, zones=zones, title=title)
    caption = (
        f"{day}, scene `{scene_id}`: {len(dets)} detections (red outlines) over the true-colour image "
        "(B04/B03/B02, 2–98 % stretch); zones in yellow."
    )
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
