"""`harborwatch search`: list acquisitions over an AOI from one catalogue source."""

from __future__ import annotations

import logging
from typing import Any

import click

from detect.cli.app import cli, emit
from imagery.catalog import resolve_aoi, scene_summary, search
from imagery.sources.base import empty_result_hint, parse_period

log = logging.getLogger("harborwatch")

SOURCE_HELP = (
    "earth-search (earth-search:gcp: L1C bands from Google Cloud), planetary-computer, "
    "sentinelhub (alias cdse), stac:URL (any STAC API), local:DIR or samples"
)
COLLECTION_HELP = (
    "sentinel-2-l2a, sentinel-2-l1c, sentinel-2-c1-l2a (Earth Search), sentinel-1-grd, or 'any' (local "
    "folders). Default as for `run`: sentinel-2-l1c before 2018-12 (L2A is not global before), else "
    "sentinel-2-l2a (Planetary Computer: always l2a); local folders: any"
)


@cli.command("search")
@click.option(
    "--aoi",
    "aoi_spec",
    required=True,
    metavar="NAME|FILE|BBOX",
    help="Bundled AOI name, GeoJSON file or bbox 'west,south,east,north'.",
)
@click.option("--start", required=True, metavar="YYYY-MM-DD", help="First day (UTC).")
@click.option("--end", required=True, metavar="YYYY-MM-DD", help="Last day (UTC, inclusive).")
@click.option("--collection", default=None, help=COLLECTION_HELP)
@click.option("--source", default="earth-search", show_default=True, help=SOURCE_HELP)
@click.option(
    "--max-cloud",
    type=click.FloatRange(0, 100),
    default=None,
    help="Keep scenes whose tile cloud cover is at most this percentage.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N scenes (oldest first).")
@click.option(
    "--aoi-clouds",
    is_flag=True,
    help="Also measure cloud and valid-data fraction over the AOI (reads SCL or L1C bands).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
def search_cmd(
    aoi_spec: str,
    start: str,
    end: str,
    collection: str | None,
    source: str,
    max_cloud: float | None,
    limit: int | None,
    aoi_clouds: bool,
    as_json: bool,
) -> None:
    """List acquisitions over an AOI: id, UTC time, platform, level, tile cloud %, AOI coverage %."""
    aoi = resolve_aoi(aoi_spec)
    t0, t1 = parse_period(start, end)
    if collection is None:
        from detect.pipeline.plan import default_collection  # lazily: the pipeline is slow to import

        collection = default_collection(source, t0.date())
    scenes = search(aoi, t0, t1, collection=collection, source=source, max_cloud=max_cloud, limit=limit)
    rows = [scene_summary(s) for s in scenes]
    if aoi_clouds:
        for scene, row in zip(scenes, rows, strict=True):
            row.update(_aoi_clouds(scene, aoi))
    if not rows:
        what = "scenes" if collection == "any" else f"{collection} scenes"
        click.echo(
            f"no {what} over {aoi.name} from {t0:%Y-%m-%d} to {t1:%Y-%m-%d} on {source}"
            f"{'' if max_cloud is None else f' with tile cloud <= {max_cloud:g}%'}; "
            f"{empty_result_hint(collection, t0, source)}",
            err=True,
        )
    else:
        log.info("%d scene(s) over %s", len(rows), aoi.name)
    emit(rows, as_json, _table(rows, aoi_clouds) if rows else None)


def _aoi_clouds(scene: Any, aoi: Any) -> dict[str, Any]:
    from imagery import clouds  # written alongside; imported only when asked for

    screen = getattr(clouds, "aoi_cloud_screen", None)
    if screen is not None:
        result = screen(scene, aoi, None)
        return {
            "aoi_cloud_pct": _pct(result.cloud_fraction),
            # nothing was read ("none": no SCL nor s2cloudless bands, or the read failed): the valid share is
            # unknown, not 0 % (the screen's 0.0 is a placeholder)
            "aoi_valid_pct": None if result.method == "none" else _pct(result.valid_fraction),
            "cloud_status": result.status,
        }
    return {"aoi_cloud_pct": _pct(clouds.aoi_cloud_fraction(scene, aoi, cache=None))}


def _pct(fraction: float | None) -> float | None:
    return None if fraction is None else round(100 * fraction, 1)


def _fmt(v: float | None, width: int) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width}.1f}"


def _table(rows: list[dict[str, Any]], aoi_clouds: bool) -> str:
    head = f"{'datetime (UTC)':<20} {'platform':<12} {'level':<5} {'tile cloud%':>11} {'AOI cover%':>10}"
    if aoi_clouds:
        head += f" {'AOI cloud%':>10} {'AOI valid%':>10}"
    lines = [head + "  id"]
    for r in rows:
        line = (
            f"{r['datetime']:<20} {r['platform']:<12} {r['processing_level']:<5} "
            f"{_fmt(r['cloud_cover_pct'], 11)} {_fmt(r['aoi_coverage_pct'], 10)}"
        )
        if aoi_clouds:
            line += f" {_fmt(r.get('aoi_cloud_pct'), 10)} {_fmt(r.get('aoi_valid_pct'), 10)}"
        lines.append(line + f"  {r['id']}")
    return "\n".join(lines)
