"""The run's second step: read, screen and detect one scene, and write its record."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from detect.counting import aggregate as agg
from detect.pipeline.plan import RunSetup
from detect.pipeline.records import base_record, load_done, safe_name, scene_key
from detect.pipeline.steps import Steps
from detect.sar.s1 import S1_MARGIN_M, margin_grid, on_grid, scene_sensor
from imagery.aoi import Aoi
from imagery.atomic import atomic_write_json, atomic_write_text
from imagery.clouds import S2CLOUDLESS_BANDS
from imagery.errors import MissingBandsError, RasterReadError
from imagery.sources.local import UNREADABLE, UNREADABLE_BANDS
from imagery.types import Grid, Scene

log = logging.getLogger(__name__)


def scene_bands(scene: Scene, detector: Sequence[str]) -> tuple[str, ...]:
    """Detector bands the scene has, plus what the cloud screen needs: SCL when the scene has it, else
    s2cloudless inputs. A band the scene lacks is left out (a detector that needs it says so by name);
    with none of them the list stays whole, so the read names what is missing."""
    bands = [b for b in detector if b in scene.assets] or list(detector)
    if "SCL" in scene.assets:
        extra: Sequence[str] = ("SCL",)
    elif scene.processing_level.upper() == "L1C":
        extra = S2CLOUDLESS_BANDS
    else:
        extra = ()
    bands += [b for b in extra if b in scene.assets and b not in bands]
    return tuple(bands)


def dark_b02(window: Any, valid: np.ndarray, cloud: np.ndarray | None) -> float | None:
    """A scene's haze index: B02's dark level (``detect.core.haze.dark_levels``, the 0.5th percentile) over
    the window's valid, cloud-free pixels, as reflectance; None without B02 or a clear pixel. It measures haze
    where the darkest pixels are clear water (~0.005–0.03 in L2A); L1C adds the air's path light, at least
    ~0.06 (Rayleigh, sun 20–25° from zenith), more with aerosol or a lower sun, so within L1C it also follows
    the season. On a window without water it is the darkest land (shadows), and turbid water or glint raise
    it too. Compare it between scenes of one AOI and one processing level (weights/trucks-s2.md and
    weights/ships-s2-seg.md, "Level-1C input")."""
    from detect.core.haze import dark_levels

    if "B02" not in window.band_names:
        return None
    clear = valid if cloud is None else valid & ~np.asarray(cloud, dtype=bool)
    level = dark_levels(window.band("B02")[None], ("B02",), clear).get("B02")
    return None if level is None else round(level, 4)


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
    rec = base_record(scene, key)
    rec["sensor"] = sensor = sensor or scene_sensor(scene)
    name = safe_name(scene.id)
    unseen: dict[str, str] = {}  # class -> why this scene cannot show it (a band its model needs)
    try:
        check_readable(scene)
        if sensor == "S1":
            from detect.sar.s1 import s1_observation

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
            # a band of all nodata would blank every pixel's validity (and the scene's screen): left out, and
            # said in the record; a detector that needs it fails the scene naming it as empty
            window = steps.read(scene, grid, scene_bands(scene, bands), cache=cache).without_empty_bands()

            def find() -> list[Any]:
                return detect_classes(window, methods, steps, unseen, conf=conf, device=device)

        screen, cloud, valid = steps.screen(window, masks[agg.ALL_ZONE])
        coverage = agg.zone_coverage(scene.id, masks, valid, cloud)
        cov_all = next(c for c in coverage if c["zone"] == agg.ALL_ZONE)
        rec.update(
            cloud_fraction=finite_or(screen.cloud_fraction),
            valid_fraction=finite_or(screen.valid_fraction, window.valid_fraction),
            observed_fraction=cov_all["observed_fraction"],
            dark_b02=None if sensor == "S1" else dark_b02(window, valid, cloud),
            status=str(screen.status),
            reason=screen_reason(screen),
            coverage=coverage,
        )
        left_out = scene.properties.get(UNREADABLE_BANDS)
        if left_out:  # corrupt band files this run did not need: said, not silently ignored
            add_reason(rec, f"unreadable band file(s) not used: {', '.join(left_out)}")
        empty_bands = window.meta.get("empty_bands")
        if empty_bands:
            add_reason(rec, f"band(s) with no data left out: {', '.join(empty_bands)}")
        if max(c["observed_fraction"] for c in coverage) < params.partial_min:
            add_reason(rec, f"no zone at least {params.partial_min:.0%} clear and valid: detection skipped")
            detections: list[Any] = []
        else:
            detections = flag_trucks(find(), aoi)
        if sensor == "S2" and cloud is not None and detections:  # count what was seen, not what clouds made
            detections, hidden = seen_only(detections, grid, cloud, valid)
            if hidden:
                add_reason(rec, f"{hidden} detection(s) under cloud or cloud shadow left out")
        if unseen:  # the scene counts for its other classes; for these its days stay unobserved
            rec["unobserved_classes"] = ";".join(unseen)
            add_reason(rec, *(f"no {c} detection: {why}" for c, why in unseen.items()))
        rows = agg.detection_rows(detections, aoi)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # one bad scene must not sink the run: record it, go on, retry on rerun
        rec.update(status="failed", reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        rec["unobserved_classes"] = ""  # a failed scene saw no class; it is retried whole
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


#: Cloud (or shadow) patches smaller than this (m², 0.1 km²: 1,000 px at 10 m) do not hide a detection:
#: Sen2Cor's SCL can call a bright hull cloud or a dark one shadow, and the largest ships cover ~0.025 km²;
#: real clouds that hide ships are larger.
MIN_HIDING_CLOUD_M2 = 100_000.0


def seen_only(
    detections: Sequence[Any], grid: Grid, cloud: np.ndarray, valid: np.ndarray
) -> tuple[list[Any], int]:
    """The detections whose centre pixel on ``grid`` is clear and valid, and how many were not: the
    screen's cloud (and shadow) pixels are unobserved, so what is found there is not counted (a bright
    cloud edge makes false ships; the day's count is a floor over the clear part). Cloud patches smaller
    than ``MIN_HIDING_CLOUD_M2`` are not taken to hide anything (a ship may be one)."""
    from scipy import ndimage

    from detect.sar.detector import detection_pixels

    labels, n = ndimage.label(cloud)
    if n:
        sizes = np.bincount(labels.ravel())
        big = sizes * grid.res_m**2 >= MIN_HIDING_CLOUD_M2
        big[0] = False
        cloud = big[labels]
    px = np.floor(detection_pixels(detections, grid)).astype(int)
    h, w = cloud.shape
    kept = [
        d
        for d, (col, row) in zip(detections, px, strict=True)
        if not (0 <= row < h and 0 <= col < w) or (valid[row, col] and not cloud[row, col])
    ]
    return kept, len(detections) - len(kept)


def add_reason(rec: dict[str, Any], *notes: str) -> None:
    """Append ``notes`` to a scene record's ``reason`` ("; "-joined, empty parts left out)."""
    rec["reason"] = "; ".join(r for r in (rec["reason"], *notes) if r)


def detect_classes(
    window: Any,
    methods: dict[str, str],
    steps: Steps,
    unseen: dict[str, str],
    *,
    conf: float | None,
    device: str,
) -> list[Any]:
    """Each class's detections on ``window`` by its own method. A class whose model lacks a band this
    scene does not have (``MissingBandsError``) is left out and named in ``unseen`` with the error, so the
    scene still counts the other classes (a scene whose B08 is empty still counts ships); when no class
    could run, the first class's error fails the scene."""
    found: list[Any] = []
    errors: list[MissingBandsError] = []
    for c, m in methods.items():
        try:
            found += steps.detect(window, classes=(c,), method=m, conf=conf, device=device)
        except MissingBandsError as e:
            errors.append(e)
            unseen[c] = str(e).splitlines()[0]
    if errors and len(errors) == len(methods):
        raise errors[0]
    return found


def check_readable(scene: Scene) -> None:
    """Raise the error the catalogue met when it listed the scene: a corrupt local file is found and
    listed (``imagery.sources.local.UNREADABLE``), so it fails here, in its own record, like any read."""
    why = scene.properties.get(UNREADABLE)
    if why:
        raise RasterReadError(str(why))


def flag_trucks(detections: list[Any], aoi: Aoi) -> list[Any]:
    """Mark trucks on or off the AOI's road and bridge-deck zones (``on_road``); ships pass unchanged.

    Off-road trucks are kept, flagged, so a user sees them; per-zone counts come from the zones themselves.
    """
    trucks = [d for d in detections if d.class_name == "truck"]
    if not trucks:
        return detections
    from detect.trucks.detector import flag_on_road

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


def finite_or(v: Any, default: float | None = None) -> float | None:
    if v is None:
        return default
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return f if np.isfinite(f) else default


def scene_cache(cache_dir: str | Path | None, source: str) -> Any:
    """The imagery cache; none for local folders unless asked (their files are already on disk)."""
    from imagery.cache import Cache

    if cache_dir is None and source.startswith("local:"):
        return None
    return Cache(cache_dir)


def progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc="scenes",
        unit="scene",
        file=sys.stderr,
        disable=not (enabled and sys.stderr.isatty()),
        leave=False,
    )


def process_scenes(
    found: Sequence[Scene],
    setup: RunSetup,
    *,
    steps: Steps,
    masks: dict[str, np.ndarray],
    bands: Sequence[str],
    conf: float | None,
    device: str,
    cache: Any,
    params: agg.AggregateParams,
    scenes_dir: Path,
    s1_margin_m: float = S1_MARGIN_M,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Every scene's record, in ``found``'s order: a finished scene's record from ``scenes_dir`` when its
    key matches (``records.load_done``), else ``process_scene`` does it now."""
    records = []
    bar = progress_bar(len(found), progress)
    try:
        for scene in found:
            sensor = scene_sensor(scene)
            key = scene_key(scene, setup.keys[sensor])
            rec = load_done(scenes_dir / f"{safe_name(scene.id)}.json", key)
            if rec is None:
                rec = process_scene(
                    scene,
                    aoi=setup.area,
                    grid=setup.grid,
                    masks=masks,
                    steps=steps,
                    bands=bands,
                    methods=setup.methods[sensor],
                    conf=conf,
                    device=device,
                    cache=cache,
                    params=params,
                    key=key,
                    scenes_dir=scenes_dir,
                    sensor=sensor,
                    s1_margin_m=s1_margin_m,
                )
            records.append(rec)
            bar.update(1)
    finally:
        bar.close()
    return records
