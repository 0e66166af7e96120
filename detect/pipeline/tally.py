"""The run's third step: scene records → detections, daily counts, visits, AIS matches and claim verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from detect.core.geometry import Detection
from detect.counting import aggregate as agg
from detect.counting.ais import AisParams
from detect.counting.claims import Claim, compare, load_claims
from detect.counting.visits import VisitParams, VisitSummary, estimate_visits
from detect.pipeline.plan import RunSetup
from detect.pipeline.records import load_detections
from detect.pipeline.result import RunResult


def load_ais_table(
    ais: str | Path | pd.DataFrame | None, params: AisParams | None
) -> tuple[pd.DataFrame | None, dict[str, Any] | None]:
    """The AIS table (normalised) and what run.json says about it."""
    from detect.counting.ais import load_ais, normalise_ais

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
    """Ship detections matched with AIS (``counting.ais.match_ais``): ``dark`` True when no AIS position lies
    within the gates, else False with the partner's ``mmsi``; and per scene ``ais_fixes``, the fixes within
    the time window of its acquisition (anywhere). A scene with none was outside the AIS data: its
    detections stay ``<NA>``, because no AIS there says nothing about the ships. Works on any sensor.
    """
    from detect.counting.ais import match_ais

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
        matched = match_ais([row_detection(r) for r in detections.loc[idx].to_dict("records")], ais, p)
        detections.loc[idx, "dark"] = [bool(d.properties["dark"]) for d in matched.detections]
        detections.loc[idx, "mmsi"] = pd.array(matched.mmsi_by_detection, dtype="Int64")
    return detections, scenes


def row_detection(row: dict[str, Any]) -> Detection:
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


def claim_list_of(claims: str | Path | Sequence[Claim] | None) -> tuple[Claim, ...]:
    if claims is None:
        return ()
    if isinstance(claims, str | Path):
        return load_claims(claims)
    return tuple(claims)


def visit_tables(
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


def tally(
    records: Sequence[dict[str, Any]],
    setup: RunSetup,
    *,
    start: date,
    end: date,
    out_dir: Path,
    params: agg.AggregateParams,
    visit_params: VisitParams | None = None,
    ais: pd.DataFrame | None = None,
    ais_params: AisParams | None = None,
    claims: Sequence[Claim] = (),
) -> RunResult:
    """The run's tables from its scene records: detections (matched with ``ais`` when given), scenes,
    zone coverage, daily counts, visits and stays, and the verdict on each of ``claims``."""
    area, classes = setup.area, setup.classes
    detections = agg.detections_table(load_detections(out_dir / "scenes", records))
    scenes = agg.scenes_table(records)
    if ais is not None:
        detections, scenes = apply_ais(detections, scenes, ais, ais_params)
    coverage = agg.coverage_table([c for r in records for c in r.get("coverage", [])])
    zones = agg.zone_names(area)
    daily = agg.daily_counts(
        detections,
        scenes,
        coverage,
        aoi=area.name,
        zones=zones,
        start=start,
        end=end,
        classes=classes,
        params=params,
    )
    visits, stays = visit_tables(detections, daily, zones, classes, visit_params)
    result = RunResult(
        aoi=area,
        start=start,
        end=end,
        classes=classes,
        out_dir=out_dir,
        detections=detections,
        scenes=scenes,
        coverage=coverage,
        daily_counts=daily,
        visits=visits,
        stays=stays,
        verdicts=(),
        sensors=setup.sensors,
    )
    if claims:
        result = replace(result, verdicts=tuple(compare(claims, result, params=visit_params)))
    return result
