"""The run's last step: every file of the run folder (tables, run.json, charts, map, report)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detect import report as rep
from detect.counting import aggregate as agg
from detect.counting.claims import Claim
from detect.counting.visits import VisitParams
from detect.pipeline.plan import RunSetup
from detect.pipeline.result import RunResult
from detect.pipeline.steps import Steps
from detect.sar.s1 import scene_sensor
from imagery.atomic import atomic_write_json
from imagery.types import Grid, Scene

log = logging.getLogger(__name__)


RGB = ("B04", "B03", "B02")


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
        paths["map_png"], caption = write_map(result, found, grid, steps, cache, out / "map.png")
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


def write_map(
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


def run_parameters(
    setup: RunSetup,
    *,
    start: date,
    end: date,
    source: str,
    max_cloud: float | None,
    s1_margin_m: float,
    ais_info: dict[str, Any] | None,
    device: str,
    conf: float | None,
    cache_dir: str | Path | None,
    claims: Sequence[Claim],
    params: agg.AggregateParams,
    visit_params: VisitParams | None,
) -> dict[str, Any]:
    """What run.json and the report record about the run's arguments."""
    collections, methods, used = setup.collections, setup.methods, setup.sensors
    return {
        "aoi": setup.area.name,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "source": setup.sources.get("S2", source),
        "collection": collections.get("S2") or collections.get("S1"),
        "sensors": list(used),
        "collections": collections,
        "classes": list(setup.classes),
        "max_cloud": max_cloud,
        "methods": methods.get("S2") or methods["S1"],
        "s1_methods": methods.get("S1"),
        "s1_margin_m": s1_margin_m if "S1" in used else None,
        "ais": ais_info,
        "device": device,
        "conf": conf,
        "cache_dir": str(cache_dir) if cache_dir else None,
        "claims": [c.id for c in claims],
        "observed_min": params.observed_min,
        "partial_min": params.partial_min,
        "visits": vars(visit_params or VisitParams()),
    }
