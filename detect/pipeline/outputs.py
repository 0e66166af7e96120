"""The run's last step: every file of the run folder (tables, run.json, charts, map, report)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detect import report as rep
from detect.counting import aggregate as agg
from detect.counting.baseline import BaselineParams, comparison_table
from detect.counting.claims import Claim, claim_summary
from detect.counting.visits import VisitParams
from detect.pipeline.plan import RunSetup
from detect.pipeline.records import safe_name
from detect.pipeline.result import RunResult
from detect.pipeline.steps import Steps
from detect.sar.s1 import scene_sensor
from imagery.atomic import atomic_write_json
from imagery.types import Grid, Scene

log = logging.getLogger(__name__)


RGB = ("B04", "B03", "B02")
#: Files a run writes only with --baseline-start/-end or --claims; a rerun without them removes them.
OPTIONAL_OUTPUTS = (
    "baseline_daily_counts.csv",
    "baseline.csv",
    "baseline.json",
    "baseline.png",
    "claims.png",
)


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
    detections = rep.with_ids(result.detections)  # the ids the crops, the map and the report name
    gj, gp = rep.write_detections(
        detections, out, aoi=result.aoi.name, start=str(result.start), end=str(result.end)
    )
    paths.update(detections_geojson=gj, detections_parquet=gp)
    csv, parquet = rep.write_table(result.daily_counts, out, "daily_counts", parquet=True)
    paths.update(daily_counts_csv=csv, daily_counts_parquet=parquet)
    paths["scenes_csv"] = rep.write_table(result.scenes, out, "scenes")[0]
    paths["coverage_csv"] = rep.write_table(result.coverage, out, "coverage")[0]
    paths["stays_csv"] = rep.write_table(result.stays, out, "stays")[0]
    paths["visits_json"] = atomic_write_json(out / "visits.json", [v.to_dict() for v in result.visits])
    paths["claims_json"] = atomic_write_json(out / "claims.json", [v.to_dict() for v in result.verdicts])
    if result.baseline_daily is not None:
        paths["baseline_daily_counts_csv"] = rep.write_table(
            result.baseline_daily, out, "baseline_daily_counts"
        )[0]
        paths["baseline_csv"] = rep.write_table(comparison_table(result.baseline), out, "baseline")[0]
        paths["baseline_json"] = atomic_write_json(
            out / "baseline.json", [c.to_dict() for c in result.baseline]
        )
    model = rep.model_info(method)
    if report:  # charts, crops, map.png, map.html, report.md and report.html
        title = f"{result.aoi.name}, {result.start} – {result.end}"
        paths["counts_png"] = rep.plot_counts(result.daily_counts, out / "counts.png", title=title)
        pictures = write_pictures(result, detections, found, grid, steps, cache, title=title)
        paths.update(pictures.paths)
        images = {
            "counts": "counts.png",
            "map": "map.png",
            "map_caption": pictures.caption,
            "map_html": "map.html",
        }
        if result.verdicts:
            visit_params = VisitParams(**parameters["visits"]) if parameters.get("visits") else None
            summaries = [claim_summary(v.claim, result, params=visit_params) for v in result.verdicts]
            paths["claims_png"] = rep.plot_claims(result.verdicts, summaries, out / "claims.png")
            images["claims"] = "claims.png"
        if result.baseline:
            paths["baseline_png"] = rep.plot_baseline(result.baseline, out / "baseline.png")
            images["baseline"] = "baseline.png"
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
            images=images,
            crops=pictures.crops,
            low_score=pictures.low_score,
            baseline=result.baseline,
        )
        paths["report_md"], paths["report_html"] = rep.write_report(blocks, out, f"harborwatch: {title}")
    # files only some runs write: a rerun without --baseline / --claims in the same folder must not leave
    # the earlier run's comparison and claims chart beside tables and a report that no longer have them
    written = {p.name for p in paths.values()}
    for name in OPTIONAL_OUTPUTS:
        if name not in written and (report or not name.endswith(".png")):
            (out / name).unlink(missing_ok=True)
    baseline_ids = (
        list(result.baseline_daily["scene"].replace("", None).dropna().unique())
        if (result.baseline_daily is not None)
        else []
    )
    paths["run_json"] = rep.write_run_json(
        out / "run.json",
        parameters=parameters,
        model=model,
        command=command,
        started=started,
        extra={
            "scenes": {str(k): int(v) for k, v in result.scenes["status"].value_counts().items()},
            "scene_ids": list(result.scenes["scene"]),
            **({"baseline_counted_scene_ids": baseline_ids} if result.baseline_daily is not None else {}),
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


@dataclass
class Pictures:
    """What ``write_pictures`` wrote: paths, the static map's caption, the crops and low-score cut-offs."""

    paths: dict[str, Path]
    caption: str
    crops: pd.DataFrame
    low_score: dict[str, float]


def write_pictures(
    result: RunResult,
    detections: pd.DataFrame,
    found: Sequence[Scene],
    grid: Grid,
    steps: Steps,
    cache: Any,
    *,
    title: str,
) -> Pictures:
    """The images of the seen days, read once each: a crop per counted detection (crops/), each day's image
    for the interactive map (map_files/, map.html) and the static map of the busiest best-seen day (map.png).
    ``detections`` carry their ids (``rep.with_ids``)."""
    out = result.out_dir
    daily = result.daily_counts
    counted = rep.counted_detections(detections, daily)
    cutoffs = rep.low_score_cutoffs(detections)
    pick = map_day(daily, result.classes[0])
    seen = daily[(daily["zone"] == agg.ALL_ZONE) & (daily["status"] != "unobserved")]
    by_id = {s.id: s for s in found}
    overlays: dict[str, str] = {}
    bounds = None
    rows: list[dict[str, Any]] = []
    picked: tuple[np.ndarray | None, bool] = (None, False)
    for scene_id in dict.fromkeys(seen.sort_values("date")["scene"]):
        image, radar = read_background(by_id.get(scene_id), scene_id, grid, steps, cache)
        if pick is not None and scene_id == pick[1]:
            picked = (image, radar)
        rgb8 = rep.to_rgb8(image) if image is not None else None
        rows += rep.write_crops(
            rgb8, grid, counted[counted["scene"] == scene_id], out / "crops", cutoffs=cutoffs
        )
        if rgb8 is not None:
            name = f"map_files/{safe_name(scene_id)}.jpg"
            bounds = rep.write_overlay(rgb8, grid, out / name)
            overlays[scene_id] = name
    paths: dict[str, Path] = {}
    paths["crops_csv"], crops = rep.write_crops_index(rows, out / "crops")
    for stale in (out / "map_files").glob("*.jpg"):
        if f"map_files/{stale.name}" not in overlays.values():
            stale.unlink()
    paths["map_png"], caption = write_map(result, grid, out / "map.png", pick, *picked)
    paths["map_html"] = rep.write_map_html(
        out / "map.html",
        title=f"harborwatch: {title}",
        aoi=result.aoi,
        days=rep.map_days(daily, counted, result.classes, overlays, crops),
        image_bounds=bounds,
        start_day=pick[0].isoformat() if pick else None,
        attribution=rep.copernicus_notice(result.scenes),
    )
    return Pictures(paths, caption, crops, cutoffs)


def read_background(
    scene: Scene | None, scene_id: str, grid: Grid, steps: Steps, cache: Any
) -> tuple[np.ndarray | None, bool]:
    """A scene's picture on ``grid``: (3, H, W) true colour, or radar backscatter in dB repeated to three
    bands (Sentinel-1 has no colour); None when it cannot be read. And whether it is radar."""
    radar = scene is not None and scene_sensor(scene) == "S1"
    try:
        if radar:
            from imagery.sar import to_db

            return np.repeat(to_db(steps.read_sar(scene, grid, cache=cache).data[:1]), 3, axis=0), True
        if scene is not None and all(b in scene.assets for b in RGB):
            return steps.read(scene, grid, RGB, cache=cache).data, False
    except Exception as e:  # pictures are illustrations; the counts do not depend on them
        log.warning("report: could not read %s for its picture: %s", scene_id, e)
    return None, radar


def write_map(
    result: RunResult,
    grid: Grid,
    path: Path,
    pick: tuple[date, str] | None,
    image: np.ndarray | None,
    radar: bool,
) -> tuple[Path, str]:
    """map.png: the ``pick``ed day's detections over its ``image`` (see ``map_day``), and its caption."""
    zones = agg.zone_areas(result.aoi, grid.crs)
    if pick is None:
        rep.plot_map(None, grid, result.detections.iloc[0:0], path, zones=zones, title="no day was observed")
        return path, "No day of the period was observed, so there is nothing to map."
    day, scene_id = pick
    dets = result.detections[result.detections["scene"] == scene_id]
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
    baseline: tuple[date, date] | None = None,
    baseline_params: BaselineParams | None = None,
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
        "baseline": (
            {
                "start": baseline[0].isoformat(),
                "end": baseline[1].isoformat(),
                **vars(baseline_params or BaselineParams()),
            }
            if baseline
            else None
        ),
    }
