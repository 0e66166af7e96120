"""`harborwatch fetch`: search a catalogue, then write one COG per acquisition over the AOI and a manifest."""

from __future__ import annotations

from typing import Any

import click

from detect.cli.app import cli, emit, res_option
from imagery.errors import InputError


def _bands(text: str) -> tuple[str, ...]:
    from imagery.read import normalise_band_name
    from imagery.types import CATEGORICAL_LAYERS, S2_BANDS

    known = (*S2_BANDS, *sorted(CATEGORICAL_LAYERS), "VV", "VH", "HH", "HV")
    canonical = {k.upper(): k for k in known}
    names = [normalise_band_name(b) for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b.upper() not in canonical]
    bands = tuple(canonical.get(b.upper(), b) for b in names)
    if not bands or unknown:
        raise InputError(
            f"--bands: unknown band(s) {', '.join(unknown) or '(none given)'}; "
            f"use names like B02,B03,B04,B08 from: {', '.join(known)}"
        )
    return bands


@cli.command("fetch")
@click.option(
    "--aoi", "aoi_spec", required=True, help="Bundled AOI name, GeoJSON file or bbox 'west,south,east,north'."
)
@click.option("--start", required=True, help="First day, YYYY-MM-DD (UTC).")
@click.option("--end", required=True, help="Last day, YYYY-MM-DD (UTC, inclusive).")
@click.option(
    "--collection",
    default=None,
    help="sentinel-2-l1c | sentinel-2-l2a | sentinel-2-c1-l2a (which exist depends on --source) | any (local "
    "folders). Default as for `run`: sentinel-2-l1c before 2018-12, else sentinel-2-l2a; local folders: any.",
)
@click.option(
    "--source",
    default="earth-search",
    show_default=True,
    help="earth-search | planetary-computer | sentinelhub | stac:URL (any STAC API) | local:DIR | samples.",
)
@click.option(
    "--max-cloud",
    type=click.FloatRange(0, 100),
    default=None,
    help="Skip scenes whose catalogue (whole-tile) cloud cover exceeds this percentage.",
)
@click.option(
    "--cloudy-above",
    type=click.FloatRange(0, 1),
    default=0.3,
    show_default=True,
    help="Flag an acquisition 'cloudy' when more than this fraction of the AOI is cloud.",
)
@click.option(
    "--bands",
    "bands_text",
    default="B02,B03,B04,B08",
    show_default=True,
    help="Comma-separated Sentinel band names to write.",
)
@click.option(
    "--res",
    "res_m",
    type=float,
    callback=res_option,
    default=10.0,
    show_default=True,
    help="Pixel size in metres of the AOI's UTM grid.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Cache folder (default $HARBORWATCH_CACHE_DIR, else ~/.cache/harborwatch).",
)
@click.option("--no-cache", is_flag=True, help="Read everything again, store nothing.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the GeoTIFFs and manifest.json/.csv (a rerun resumes).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def fetch_cmd(
    aoi_spec: str,
    start: str,
    end: str,
    collection: str | None,
    source: str,
    max_cloud: float | None,
    cloudy_above: float,
    bands_text: str,
    res_m: float,
    cache_dir: str | None,
    no_cache: bool,
    out_dir: str,
    as_json: bool,
) -> None:
    """Write one GeoTIFF per acquisition, clipped to the AOI's UTM grid, with a manifest.

    Cloudy or partial acquisitions are written and flagged in the manifest, not dropped.
    Offline example on a bundled sample chip (Durban):

    \b
        harborwatch fetch --aoi 31.0,-29.89,31.04,-29.855 \\
            --start 2023-08-21 --end 2023-08-21 --source samples --out out
    """
    import logging

    from detect.pipeline.plan import default_collection
    from imagery.aoi import get_aoi
    from imagery.cache import Cache
    from imagery.catalog import search
    from imagery.fetch import fetch
    from imagery.sources.base import parse_period

    log = logging.getLogger("harborwatch")
    bands = _bands(bands_text)
    aoi = get_aoi(aoi_spec)
    collection = collection or default_collection(source, parse_period(start, end)[0].date())
    scenes = search(aoi, start, end, collection=collection, source=source, max_cloud=max_cloud)
    if not scenes:
        log.warning("no scenes found for %s, %s to %s in %s (%s)", aoi.name, start, end, collection, source)
    cache = None if no_cache else Cache(cache_dir)
    result = fetch(aoi, scenes, out_dir, bands, cache, res_m=res_m, max_cloud=cloudy_above)
    lines = [_line(r) for r in result.records]
    counts = ", ".join(f"{result.count(o)} {o}" for o in ("written", "exists", "empty", "failed"))
    lines.append(f"{len(result.records)} acquisitions ({counts}); manifest: {result.manifest_json}")
    emit(result.to_dict(), as_json, "\n".join(lines))
    if result.records and result.count("failed") == len(result.records):
        click.get_current_context().exit(1)  # every acquisition failed: the work failed


def _line(r: Any) -> str:
    """One acquisition's summary line: its outcome, what was measured of a written file, its error."""
    measured = f", {r.status}, cloud {_share(r.cloud_fraction)}, valid {_share(r.valid_fraction)}"
    return f"{r.acquisition}: {r.outcome}{measured if r.path else ''}{f' — {r.error}' if r.error else ''}"


def _share(x: float | None) -> str:
    """A fraction for the summary line: "unknown" where it was not measured (no cloud mask)."""
    return "unknown" if x is None or x != x else f"{x:.4g}"
