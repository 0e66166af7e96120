"""`harborwatch aoi list|show|export`: the bundled AOI registry and user AOIs (GeoJSON file or bbox)."""

from __future__ import annotations

from typing import Any

import click

from detect.cli.app import check_geojson_out, cli, emit, res_option
from imagery.aoi import aoi_details, aoi_summary, aois, export_aoi, get_aoi


@cli.group("aoi")
def aoi_group() -> None:
    """Areas of interest: bundled ports and bridges, or your own GeoJSON file / bbox."""


@aoi_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
def list_cmd(as_json: bool) -> None:
    """List the bundled AOIs with their kind, centre, area and zones."""
    rows = [aoi_summary(a) for a in aois().values()]
    lines = [f"{'name':<20} {'kind':<10} {'centre (lon, lat)':<20} {'km2':>8}  zones"]
    for r in rows:
        lon, lat = r["centre"]
        zones = ", ".join(f"{z['name']} ({z['kind']})" for z in r["zones"])
        centre = f"{lon:>9.4f}, {lat:<8.4f}"
        lines.append(f"{r['name']:<20} {r['kind']:<10} {centre:<20} {r['area_km2']:>8.1f}  {zones}")
    emit(rows, as_json, "\n".join(lines))


@aoi_group.command("show")
@click.argument("spec", metavar="NAME_OR_PATH_OR_BBOX")
@click.option(
    "--res",
    "res_m",
    type=float,
    callback=res_option,
    default=10.0,
    show_default=True,
    help="Grid resolution in metres for the reported grid size.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
def show_cmd(spec: str, res_m: float, as_json: bool) -> None:
    """Show one AOI: zones, buffers, areas, sources, certainty, UTM CRS and grid size.

    SPEC is a bundled name (see `aoi list`), a GeoJSON file, or a bbox "west,south,east,north"
    in degrees (put `--` before a bbox that starts with a minus sign).
    """
    info = aoi_details(get_aoi(spec), res_m=res_m)
    emit(info, as_json, _format_details(info))


@aoi_group.command("export")
@click.argument("spec", metavar="NAME_OR_PATH_OR_BBOX")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="GeoJSON file to write (atomically); edit it and pass it back as --aoi FILE.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
def export_cmd(spec: str, out: str, as_json: bool) -> None:
    """Write an AOI as a GeoJSON FeatureCollection you can copy and edit."""
    check_geojson_out(out)
    aoi = get_aoi(spec)
    path = export_aoi(aoi, out)
    emit(
        {"aoi": aoi.name, "path": str(path), "zones": len(aoi.zones)},
        as_json,
        f"wrote {aoi.name} ({len(aoi.zones)} zones) to {path}",
    )


def _format_details(info: dict[str, Any]) -> str:
    g = info["grid"]
    lon, lat = info["centre"]
    lines = [
        f"{info['name']}  ({info['kind']})",
        f"  {info['description']}" if info["description"] else None,
        f"  centre      {lon:.5f}, {lat:.5f}   bbox {', '.join(f'{v:.4f}' for v in info['bbox'])}",
        f"  area        {info['area_km2']:.2f} km2",
        f"  UTM CRS     {info['utm_crs']}   grid at {g['res_m']:g} m: {g['width']} x {g['height']} px",
        f"  source      {info['source']}" if info["source"] else None,
        f"  certainty   {info['certainty']}" if info["certainty"] else None,
        f"  zones       {len(info['zones'])}",
    ]
    for z in info["zones"]:
        shape_text = z["geometry_type"]
        if z["length_m"] is not None:
            shape_text += f" {z['length_m']:.0f} m"
        if z["buffer_m"]:
            shape_text += f" + {z['buffer_m']:g} m buffer"
        lines += [
            f"  - {z['name']} ({z['kind']}): {shape_text}, {z['area_km2']:.3f} km2",
            f"      {z['description']}" if z["description"] else None,
            f"      source: {z['source']}" if z["source"] else None,
            f"      certainty: {z['certainty']}" if z["certainty"] else None,
        ]
    return "\n".join(line for line in lines if line is not None)
