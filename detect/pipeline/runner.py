"""`run`: AOI and period in, daily counts, visits, claim verdicts and a report folder out.

search → per scene (read window → cloud screen → detect → scenes/<id>.json) → aggregate → report.
Sentinel-2 scenes go through the optical reader and detectors; Sentinel-1 GRD scenes (``sensors``
with ``S1``) through the radar reader and the CFAR ship detector, and fill the days clouds hid.
Each scene's result is written atomically as soon as it is done, so an interrupted run resumes
where it stopped; a scene that fails is recorded with its error and the run goes on. AIS, when
given, is matched after detection, so changing it redoes no scene.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd

from detect.counting import aggregate as agg
from detect.counting.ais import AisParams
from detect.counting.claims import Claim, compare
from detect.counting.visits import VisitParams
from detect.pipeline.outputs import write_outputs
from detect.pipeline.plan import parse_date, plan_run
from detect.pipeline.records import load_detections, load_done, safe_name
from detect.pipeline.result import RunResult
from detect.pipeline.scene import process_scene, progress_bar, scene_cache
from detect.pipeline.search import search_scenes
from detect.pipeline.steps import Steps, default_steps
from detect.pipeline.tally import apply_ais, claim_list_of, load_ais_table, visit_tables
from detect.sar.s1 import S1_MARGIN_M, scene_sensor
from imagery.aoi import Aoi
from imagery.errors import InputError

log = logging.getLogger(__name__)


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
    claim_list = claim_list_of(claims)
    ais_table, ais_info = load_ais_table(ais, ais_params)
    params = params or agg.AggregateParams()
    steps = steps or default_steps()
    out = Path(out_dir)
    scenes_dir = out / "scenes"
    scenes_dir.mkdir(parents=True, exist_ok=True)

    masks = agg.zone_masks(area, grid)
    cache = scene_cache(cache_dir, source)
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
    bar = progress_bar(len(found), progress)
    try:
        for scene in found:
            sensor = scene_sensor(scene)
            rec = load_done(scenes_dir / f"{safe_name(scene.id)}.json", keys[sensor])
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

    detections = agg.detections_table(load_detections(scenes_dir, records))
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
    visits, stays = visit_tables(detections, daily, zones, classes, visit_params)
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
