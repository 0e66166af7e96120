"""`harborwatch run` (fetch → detect → daily counts → report) and `harborwatch demo` (the same, offline)."""

from __future__ import annotations

import sys
from typing import Any

import click
import pandas as pd

from detect.cli.app import cli, emit
from detect.cli.commands.detect_cmd import METHODS
from detect.core.device import device_option
from imagery.errors import InputError

_JSON = click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON summary to stdout (no progress bar)."
)


@cli.command("run")
@click.option(
    "--aoi", "aoi", required=True, help="Bundled AOI name, GeoJSON file or bbox 'west,south,east,north'."
)
@click.option("--start", required=True, help="First day, YYYY-MM-DD (UTC).")
@click.option("--end", required=True, help="Last day, YYYY-MM-DD (UTC, inclusive).")
@click.option(
    "--source",
    default="earth-search",
    show_default=True,
    help="earth-search | earth-search:gcp | planetary-computer | sentinelhub | stac:URL (any STAC API) | "
    "local:DIR | samples",
)
@click.option(
    "--collection",
    default=None,
    help="Catalogue collection; default sentinel-2-l1c before 2018-12, else sentinel-2-l2a "
    "(Sentinel-1: sentinel-1-grd).",
)
@click.option(
    "--sensors",
    default=None,
    help="s2 (default), s1, or s2,s1: Sentinel-1 radar fills the days clouds hid (ships only; "
    "needs --source planetary-computer, sentinelhub or local:DIR).",
)
@click.option(
    "--ais",
    "ais",
    default=None,
    type=click.Path(dir_okay=False),
    help="AIS fixes (CSV or Parquet: mmsi, timestamp, lat, lon[, sog, cog, length]): ships without an AIS "
    "partner are counted as dark.",
)
@click.option("--classes", default="ship", show_default=True, help="Comma-separated: ship, truck.")
@click.option(
    "--claims",
    "claims",
    default=None,
    help="YAML file of claims to compare with, or a bundled one by name (e.g. longkou-2018).",
)
@click.option(
    "--baseline-start",
    default=None,
    help="First day of a baseline period to compare the run's period with (YYYY-MM-DD; with --baseline-end): "
    "the ratio of mean daily counts per zone and class, with a bootstrap interval.",
)
@click.option("--baseline-end", default=None, help="Last day of the baseline period (inclusive).")
@click.option(
    "--max-cloud",
    type=click.FloatRange(0, 100),
    default=None,
    help="Skip scenes whose catalogue cloud cover (whole tile, %) is above this.",
)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Imagery cache folder.")
@click.option(
    "--method",
    default="auto",
    show_default=True,
    help="Ship detector: auto (the default: per scene, the best measured model for its bands: since session "
    "25 seg-ens on every band set), seg-ens (seg-b4 and seg, their probabilities averaged), seg-b4 (hull "
    "segmentation on a pretrained encoder, any bands with B08 or true colour),"
    " seg (the plain U-Net v7, the same bands), yolo (oriented boxes), yolo-tta (yolo "
    "with flip test-time augmentation: 4x the model's compute), yolo-onnx, baseline (classical, optical) "
    "or cfar (Sentinel-1).",
)
@click.option(
    "--device", default="cpu", show_default=True, callback=device_option, help="cpu, cuda, cuda:0, mps."
)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run folder (resumable).")
@_JSON
def run_cmd(
    aoi: str,
    start: str,
    end: str,
    source: str,
    collection: str | None,
    sensors: str | None,
    ais: str | None,
    classes: str,
    claims: str | None,
    baseline_start: str | None,
    baseline_end: str | None,
    max_cloud: float | None,
    cache_dir: str | None,
    method: str,
    device: str,
    out: str,
    as_json: bool,
) -> None:
    """Daily counts of ships (and trucks) over an AOI and period, with a report, from free imagery.

    A rerun with the same --out skips the scenes already done, so an interrupted run resumes.
    """
    from detect.pipeline.runner import run

    class_list = tuple(c.strip() for c in classes.split(",") if c.strip())
    if not class_list:
        raise InputError("--classes is empty; use e.g. ship or ship,truck")
    if (baseline_start is None) != (baseline_end is None):
        raise InputError("give both --baseline-start and --baseline-end, or neither")
    result = run(
        aoi,
        start,
        end,
        out_dir=out,
        source=source,
        collection=collection,
        sensors=sensors,
        ais=ais,
        classes=class_list,
        max_cloud=max_cloud,
        claims=claims,
        baseline=(baseline_start, baseline_end) if baseline_start else None,
        cache_dir=cache_dir,
        method=method,
        device=device,
        progress=not as_json,
        command=["harborwatch", *sys.argv[1:]],
    )
    emit(result.summary(), as_json, _human([result]))
    _exit_if_every_scene_failed([result])


@cli.command("demo")
@click.option(
    "--out",
    "out",
    default="harborwatch-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the demo's run folders (one per bundled sample).",
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="auto",
    show_default=True,
)
@_JSON
def demo_cmd(out: str, method: str, as_json: bool) -> None:
    """Run the whole pipeline offline on the real Sentinel-2 sample chips bundled with harborwatch."""
    from detect.pipeline.demo import demo

    results = demo(out, progress=not as_json, method=method, command=["harborwatch", *sys.argv[1:]])
    emit([r.summary() for r in results], as_json, _human(results))
    _exit_if_every_scene_failed(results)


def _exit_if_every_scene_failed(results: list[Any]) -> None:
    """Exit 1 (the work failed) when a run found scenes and could process none: its all-unobserved
    counts would otherwise read like a quiet port. The outputs are written; a rerun retries the scenes."""
    for r in results:
        if r.every_scene_failed:
            first = str(r.scenes["reason"].iloc[0])
            click.echo(
                f"harborwatch: error: all {len(r.scenes)} scene(s) of {r.aoi.name} failed (first: {first}); "
                f"outputs in {r.out_dir}; a rerun retries them",
                err=True,
            )
            sys.exit(1)


def _human(results: list[Any]) -> str:
    lines = []
    for r in results:
        days = {c: r.daily(class_name=c).set_index("date") for c in r.classes}
        lines.append(
            f"{r.aoi.name}  {r.start} – {r.end}  ({len(r.scenes)} scene(s), {len(r.detections)} detections)"
        )
        for day, row in days[r.classes[0]].iterrows():
            sensor = f"  ({row.sensor})" if len(r.sensors) > 1 and row.sensor else ""
            counts = ", ".join(_class_count(c, d.loc[day], row.status) for c, d in days.items())
            lines.append(f"  {day}  {row.status:<17}  {counts}{sensor}")
        for v in r.verdicts:
            lines.append(f"  claim {v.claim.id}: {v.verdict}")
        for c in r.baseline:
            lines.append(
                f"  against the baseline {c.baseline_start} – {c.baseline_end}, {c.zone} {c.class_name}s: "
                f"ratio {_num(c.ratio)} ({c.confidence:.0%}: {_num(c.ratio_low)} – {_num(c.ratio_high)}), "
                f"{c.period_seen} vs {c.baseline_seen} days seen: {c.reading}"
            )
        lines.append(f"  report: {r.paths.get('report_html')}")
        if r.paths.get("map_html"):
            lines.append(f"  map: {r.paths['map_html']}")
        lines.append(f"  folder: {r.out_dir}")
    return "\n".join(lines)


def _class_count(class_name: str, row: pd.Series, status: str) -> str:
    """One class's count on a day's line; its status too when it is not the line's (the first class's)."""
    count = "NA" if pd.isna(row["count"]) else int(row["count"])
    own = "" if row["status"] == status else f" ({row['status']})"
    dark = "" if pd.isna(row["dark_count"]) else f", dark: {int(row['dark_count'])}"
    return f"{class_name}s: {count}{own}{dark}"


def _num(v: float | None) -> str:
    if v is None:
        return "NA"
    return "inf" if v == float("inf") else f"{v:.2f}"
