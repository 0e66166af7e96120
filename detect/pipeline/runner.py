"""`run`: AOI and period in, daily counts, visits, claim verdicts and a report folder out.

The recipe: plan (``plan.plan_run``) → search (``search.search_scenes``) → per scene
(``scene.process_scenes``: read window → cloud screen → detect → scenes/<id>.json) → tally
(``tally.tally``: daily counts, visits, AIS, claims) → outputs (``outputs.write_outputs``).
With a ``baseline`` period its scenes go through the same steps and its daily counts are compared with
the period's (``counting.baseline``).
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

from detect.core.registry import DEFAULT_SHIP_METHOD
from detect.counting import aggregate as agg
from detect.counting.ais import AisParams
from detect.counting.baseline import BaselineParams, compare_periods
from detect.counting.claims import Claim
from detect.counting.visits import VisitParams
from detect.pipeline.outputs import run_parameters, write_outputs
from detect.pipeline.plan import parse_date, plan_run
from detect.pipeline.result import RunResult
from detect.pipeline.scene import process_scenes, scene_cache
from detect.pipeline.search import search_scenes
from detect.pipeline.steps import Steps, default_steps
from detect.pipeline.tally import claim_list_of, load_ais_table, tally
from detect.sar.s1 import S1_MARGIN_M
from imagery.aoi import Aoi
from imagery.errors import InputError

log = logging.getLogger(__name__)


def remove_empty_run_folder(out: Path) -> None:
    """Remove ``out`` (and its ``scenes/``) where the run made them and nothing is in them yet."""
    try:
        (out / "scenes").rmdir()
        out.rmdir()
    except OSError:  # something is there after all: keep it
        pass


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
    method: str = DEFAULT_SHIP_METHOD,
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
    baseline: tuple[date | datetime | str, date | datetime | str] | None = None,
    baseline_params: BaselineParams | None = None,
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

    ``baseline``: (start, end) of a second period, before or after this one and not overlapping it, searched
    and counted the same way (same source and collection); ``result.baseline`` then compares the mean daily
    counts of the two per zone and class (``counting.baseline.compare_periods``, seeded bootstrap).
    """
    started = datetime.now(timezone.utc)
    d0, d1 = parse_date(start, "start"), parse_date(end, "end")
    if d1 < d0:
        raise InputError(f"end {d1} is before start {d0}")
    base = baseline_period(baseline, d0, d1)
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
    if setup.sources.get("S2") == "earth-search:gcp" and source == "earth-search":
        log.info("reading Earth Search L1C granules from the public Google Cloud bucket (earth-search:gcp)")
    claim_list = claim_list_of(claims)
    zones = agg.zone_names(setup.area)
    for c in claim_list:  # a claim's zone unknown to its AOI is a typo: said before any work
        if c.aoi == setup.area.name and c.zone not in zones:
            known = ", ".join(zones)
            area = setup.area.name
            raise InputError(f"claim {c.id!r} is about zone {c.zone!r}; AOI {area} has zones: {known}")
    ais_table, ais_info = load_ais_table(ais, ais_params)
    params = params or agg.AggregateParams()
    steps = steps or default_steps()
    out = Path(out_dir)
    fresh = not out.exists()
    (out / "scenes").mkdir(parents=True, exist_ok=True)  # first: an unwritable --out fails before any search
    try:
        cache = scene_cache(cache_dir, source)
        # Zone masks and the detectors (weights load here) before searching: a bad model fails fast.
        masks = agg.zone_masks(setup.area, setup.grid)
        bands = steps.required_bands(setup.methods["S2"]) if "S2" in setup.sensors else ()
        found = search_scenes(steps, setup, d0, d1, max_cloud=max_cloud)
    except BaseException:
        if fresh:  # nothing was written yet: leave no empty run folder behind (a bad --source, no network)
            remove_empty_run_folder(out)
        raise
    records = process_scenes(
        found,
        setup,
        steps=steps,
        masks=masks,
        bands=bands,
        conf=conf,
        device=device,
        cache=cache,
        params=params,
        scenes_dir=out / "scenes",
        s1_margin_m=s1_margin_m,
        progress=progress,
    )
    result = tally(
        records,
        setup,
        start=d0,
        end=d1,
        out_dir=out,
        params=params,
        visit_params=visit_params,
        ais=ais_table,
        ais_params=ais_params,
        claims=claim_list,
    )
    if base is not None:
        found_base = search_scenes(steps, setup, *base, max_cloud=max_cloud)
        records_base = process_scenes(
            found_base,
            setup,
            steps=steps,
            masks=masks,
            bands=bands,
            conf=conf,
            device=device,
            cache=cache,
            params=params,
            scenes_dir=out / "scenes",
            s1_margin_m=s1_margin_m,
            progress=progress,
        )
        base_daily = tally(
            records_base,
            setup,
            start=base[0],
            end=base[1],
            out_dir=out,
            params=params,
            ais=ais_table,
            ais_params=ais_params,
        ).daily_counts
        result = replace(
            result,
            baseline_daily=base_daily,
            baseline=compare_periods(result.daily_counts, base_daily, params=baseline_params),
        )
    parameters = run_parameters(
        setup,
        start=d0,
        end=d1,
        source=source,
        max_cloud=max_cloud,
        s1_margin_m=s1_margin_m,
        ais_info=ais_info,
        device=device,
        conf=conf,
        cache_dir=cache_dir,
        claims=claim_list,
        params=params,
        visit_params=visit_params,
        baseline=base,
        baseline_params=baseline_params,
    )
    paths = write_outputs(
        result,
        found=found,
        grid=setup.grid,
        steps=steps,
        cache=cache,
        parameters=parameters,
        method=(setup.methods.get("S2") or setup.methods["S1"]).get("ship", method),
        command=command,
        started=started,
        report=report,
    )
    result.paths.update(paths)
    return result


def baseline_period(
    baseline: tuple[date | datetime | str, date | datetime | str] | None, start: date, end: date
) -> tuple[date, date] | None:
    """The baseline period as dates, checked: in order, and apart from the run's period ``start``–``end``."""
    if baseline is None:
        return None
    if len(baseline) != 2:
        raise InputError("a baseline period is (start, end)")
    b0, b1 = parse_date(baseline[0], "baseline start"), parse_date(baseline[1], "baseline end")
    if b1 < b0:
        raise InputError(f"baseline end {b1} is before baseline start {b0}")
    if b0 <= end and start <= b1:
        raise InputError(
            f"the baseline {b0} – {b1} overlaps the period {start} – {end}; give one before or after it"
        )
    return b0, b1
