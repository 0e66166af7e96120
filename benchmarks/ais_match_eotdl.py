"""AIS matching measured on real AIS: the eotdl Sentinel-2-Ships chips around Kiel Bay (T32UNF,
2022-08-12) with every AIS contact in the tile at image time.

The 33 chips go through ``detect.detectors.detect_paths`` (the function behind ``harborwatch detect``,
method ``auto``), then each chip's detections through ``detect.counting.ais.match_ais`` against the AIS
ships (Class A/B) whose position lies in that chip. Boxes whose centres lie within 30 m of each other are
one object (chips overlap, and the detector sometimes gives one ship two boxes); an AIS ship is one MMSI,
matched when it is matched in any chip. The table gives, by ship length (the AIS length where there is
one, else the detected length): matched detections, detections called dark (those at a chip edge and on
land counted apart: a ship cut by the edge or a false detection on land), and AIS ships no detection took.
``--residuals`` prints what the gates were measured from: pairs of one detection and one AIS ship within
300 m of each other and of nothing else, the detection relative to the AIS position along and across the
AIS heading. ``--legacy`` runs the matcher as it was before issue 16 (500 m between centres, lengths
within 60 %). Data: ``--data`` or ``$HARBORWATCH_DATA/eotdl-s2-ships``.

    python benchmarks/ais_match_eotdl.py [--data EOTDL] [--legacy] [--residuals] [--pairs]
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eotdl_recall import EOTDL_BANDS, EOTDL_TIME, chip_bounds, chip_paths, data_dir, read_ais  # noqa: E402

LENGTH_CLASSES = (("< 40 m", 0, 40), ("40–80 m", 40, 80), ("80–150 m", 80, 150), ("> 150 m", 150, math.inf))
#: Two detections from overlapping chips closer than this are the same object.
SAME_OBJECT_M = 30.0
#: Pairs with nothing else within this distance are unambiguous (``--residuals``).
ISOLATION_M = 300.0


def length_class(length_m: float | None) -> str:
    if length_m is None or not np.isfinite(length_m):
        return "unknown"
    return next(name for name, lo, hi in LENGTH_CLASSES if lo <= length_m < hi)


def in_bounds(ais: pd.DataFrame, bounds: tuple[float, float, float, float]) -> pd.DataFrame:
    w, s, e, n = bounds
    return ais[ais["lon"].between(w, e) & ais["lat"].between(s, n)]


def ship_axes(
    lon: float, lat: float, ref_lon: float, ref_lat: float, heading_deg: float
) -> tuple[float, float]:
    """(along, across) metres of a point from a reference, along and to starboard of the heading."""
    dx = (lon - ref_lon) * 111_320.0 * math.cos(math.radians(ref_lat))
    dy = (lat - ref_lat) * 110_574.0
    h = math.radians(heading_deg)
    return dx * math.sin(h) + dy * math.cos(h), dx * math.cos(h) - dy * math.sin(h)


@dataclass
class Chip:
    path: Path
    bounds: tuple[float, float, float, float]
    detections: list
    ais: pd.DataFrame


def load_chips(root: Path, method: str) -> list[Chip]:
    from detect.detectors import detect_paths

    paths = chip_paths(root)
    ais = read_ais(root)
    dets, _ = detect_paths(paths, classes=("ship",), method=method, bands=EOTDL_BANDS)
    by_scene: dict[str, list] = {}
    for d in dets:
        by_scene.setdefault(d.scene, []).append(d)
    return [Chip(p, chip_bounds(p), by_scene.get(p.stem, []), in_bounds(ais, chip_bounds(p))) for p in paths]


def at_edge(det, bounds: tuple[float, float, float, float], px: int = 128) -> bool:
    """The box touches the chip's border (within one pixel): the object may be cut by the edge."""
    w, s, e, n = bounds
    x0, y0, x1, y1 = det.polygon.bounds
    tol_x, tol_y = (e - w) / px, (n - s) / px
    return x0 - w < tol_x or e - x1 < tol_x or y0 - s < tol_y or n - y1 < tol_y


def match_chips(chips: list[Chip], params) -> dict:
    """Objects (detections merged across chips) and AIS ships with their status, and the pairs made."""
    from detect.counting.ais import match_ais

    objects: list[dict] = []
    ships: dict[int, dict] = {}
    pairs: list[dict] = []
    for chip in chips:
        result = match_ais(chip.detections, chip.ais, params, when=EOTDL_TIME)
        by_mmsi = chip.ais.set_index("mmsi")
        for m in result.matches:
            d = chip.detections[m.detection_index]
            pairs.append(
                {
                    "chip": chip.path.stem,
                    "mmsi": m.mmsi,
                    "ais_length_m": m.ais_length_m,
                    "det_length_m": round(d.length_m),
                    "distance_m": round(m.distance_m),
                    "along_m": m.along_m,
                    "across_m": m.across_m,
                }
            )
        for r in chip.ais.itertuples():
            s = ships.setdefault(
                r.mmsi,
                {
                    "mmsi": r.mmsi,
                    "length_m": r.length_m,
                    "type": r.ship_type,
                    "status": r.nav_status,
                    "chip": chip.path.stem,
                    "matched": False,
                },
            )
            s["matched"] |= r.mmsi in {m.mmsi for m in result.matches}
        for d in result.detections:
            mmsi = d.properties.get("mmsi")
            same = next(
                (
                    o
                    for o in objects
                    if math.hypot((o["lon"] - d.lon) * 64_700.0, (o["lat"] - d.lat) * 110_574.0)
                    < SAME_OBJECT_M
                ),
                None,
            )
            if same is None:
                same = {
                    "chip": chip.path.stem,
                    "lon": d.lon,
                    "lat": d.lat,
                    "length_m": d.length_m,
                    "mmsi": None,
                    "edge": True,
                    "land": bool(d.properties.get("on_land")),
                    "boxes": {},
                }
                objects.append(same)
            same["boxes"][chip.path.stem] = same["boxes"].get(chip.path.stem, 0) + 1
            if mmsi is not None and same["mmsi"] is None:
                same["mmsi"] = mmsi
                same["length_m"] = by_mmsi.loc[mmsi, "length_m"]
            same["edge"] &= at_edge(d, chip.bounds)  # cut in every chip that shows it
    return {"objects": objects, "ships": list(ships.values()), "pairs": pairs}


def table(res: dict) -> list[dict]:
    rows = []
    for name in [c[0] for c in LENGTH_CLASSES] + ["unknown", "all"]:
        objs = [o for o in res["objects"] if name == "all" or length_class(o["length_m"]) == name]
        ships = [s for s in res["ships"] if name == "all" or length_class(s["length_m"]) == name]
        dark = [o for o in objs if o["mmsi"] is None]
        rows.append(
            {
                "length": name,
                "detections": len(objs),
                "matched": sum(o["mmsi"] is not None for o in objs),
                "dark": len(dark),
                "dark_edge": sum(o["edge"] for o in dark),
                "dark_land": sum(o["land"] and not o["edge"] for o in dark),
                "ais_ships": len(ships),
                "ais_without_detection": sum(not s["matched"] for s in ships),
            }
        )
    return rows


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}\n")
    print(
        "| length | detections | matched | dark (at chip edge, on land) | AIS ships | AIS without detection |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        dark = f"{r['dark']} ({r['dark_edge']}, {r['dark_land']})"
        print(
            f"| {r['length']} | {r['detections']} | {r['matched']} | {dark} | {r['ais_ships']} | "
            f"{r['ais_without_detection']} |"
        )


def unambiguous_pairs(chips: list[Chip]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Detection–AIS pairs within ISOLATION_M of each other and of no other detection or AIS ship (the AIS
    giving a heading): the detection centre along and across the heading from the AIS position, the box's
    extent along it, and the gaps between box and AIS hull in the ship frame with the hull exactly its AIS
    length (no antenna spread). Also every other (wrong) pairing of those detections with AIS ships in
    their chips, with its gaps and whether the default gates would allow it."""
    from detect.counting.ais import AisParams, ais_positions_at, distance_matrix_m, ship_frame

    bare = AisParams(aft_antenna_spread=0.0, antenna_spread=0.0)
    rows, wrong, seen = [], [], set()
    for chip in chips:
        if not chip.detections or chip.ais.empty:
            continue
        ais = ais_positions_at(chip.ais, EOTDL_TIME)
        dist = distance_matrix_m(
            np.array([d.lat for d in chip.detections]),
            np.array([d.lon for d in chip.detections]),
            ais["lat"].to_numpy(),
            ais["lon"].to_numpy(),
        )
        frame, gates = ship_frame(chip.detections, ais, bare), ship_frame(chip.detections, ais)
        near = dist <= ISOLATION_M
        for i, j in zip(*np.nonzero(near), strict=True):
            a = ais.iloc[j]
            alone = near[i].sum() == 1 and near[:, j].sum() == 1
            if not alone or a["mmsi"] in seen or not np.isfinite(a["heading_deg"]):
                continue
            seen.add(a["mmsi"])
            d = chip.detections[i]
            along, across = ship_axes(d.lon, d.lat, a["lon"], a["lat"], a["heading_deg"])
            ext = [
                ship_axes(x, y, a["lon"], a["lat"], a["heading_deg"])[0] for x, y in d.polygon.exterior.coords
            ]
            rows.append(
                {
                    "mmsi": int(a["mmsi"]),
                    "type": a["ship_type"],
                    "status": a["nav_status"],
                    "lat": round(a["lat"], 3),
                    "ais_length_m": a["length_m"],
                    "box_along_m": round(max(ext) - min(ext)),
                    "along_m": round(along),
                    "across_m": round(across),
                    "box_front_m": round(max(ext)),
                    "gap_along_m": round(frame.gap_along_m[i, j]),
                    "gap_across_m": round(frame.gap_across_m[i, j]),
                }
            )
            for k in range(len(ais)):
                if k != j and dist[i, k] <= 1000.0:
                    wrong.append(
                        {
                            "gap_along_m": frame.gap_along_m[i, k],
                            "gap_across_m": frame.gap_across_m[i, k],
                            "allowed": bool(gates.allowed[i, k]),
                        }
                    )
    return pd.DataFrame(rows), pd.DataFrame(wrong)


def print_residuals(res: pd.DataFrame, wrong: pd.DataFrame) -> None:
    from detect.counting.ais import AisParams, is_aft_bridge

    print(
        f"\nUnambiguous pairs (nothing else within {ISOLATION_M:.0f} m, AIS heading given): detection centre"
    )
    print("from the AIS position along / across the heading; gaps between the box and the AIS hull.\n")
    print("| length | pairs | along median (min … max) | |across| median / max | box > 1.25 × L | gaps max |")
    print("|---|---:|---:|---:|---:|---:|")
    res = res.assign(cls=[length_class(x) for x in res["ais_length_m"]])
    for name in [c[0] for c in LENGTH_CLASSES] + ["all"]:
        r = res if name == "all" else res[res["cls"] == name]
        if r.empty:
            continue
        a = r["across_m"].abs()
        wake = (r["box_along_m"] > 1.25 * r["ais_length_m"]).sum()
        print(
            f"| {name} | {len(r)} | {r['along_m'].median():.0f} ({r['along_m'].min():.0f} … "
            f"{r['along_m'].max():.0f}) | {a.median():.0f} / {a.max():.0f} | {wake} | "
            f"{r['gap_along_m'].max():.0f} / {r['gap_across_m'].max():.0f} |"
        )
    hull = res[res["box_along_m"] <= 1.25 * res["ais_length_m"]]
    aft = hull[[is_aft_bridge(t) for t in hull["type"]]]
    if len(aft):
        frac = aft["along_m"] / aft["ais_length_m"]
        print(
            f"\nCargo ships and tankers whose box is the hull (≤ 1.25 × L), n = {len(aft)}: box centre "
            f"{frac.median():.2f} × L ahead of the antenna (median; {frac.min():.2f} … {frac.max():.2f})."
        )
    moving = res[res["box_along_m"] > 1.25 * res["ais_length_m"]]
    if len(moving):
        front = moving["box_front_m"]
        print(
            f"Boxes longer than 1.25 × L (wake aft), n = {len(moving)}: box front end "
            f"{front.median():.0f} m "
            f"ahead of the antenna (median; {front.min():.0f} … {front.max():.0f})."
        )
    if len(wrong):
        p = AisParams()
        print(
            f"Other AIS ships within 1 km of those detections, n = {len(wrong)}: smallest gaps "
            f"{wrong['gap_along_m'].min():.0f} m along, {wrong['gap_across_m'].min():.0f} m across; "
            f"allowed by the gates ({p.along_gate_m:.0f} m + speed × {p.scene_time_uncertainty_s:.0f} s "
            "along, "
            f"{p.across_gate_m:.0f} m across): {int(wrong['allowed'].sum())}."
        )
    print("\n" + res.drop(columns="cls").sort_values("lat", ascending=False).to_string(index=False))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data")
    ap.add_argument("--method", default="auto")
    ap.add_argument("--legacy", action="store_true", help="the matcher before issue 16 (isotropic, 500 m)")
    ap.add_argument("--residuals", action="store_true", help="the residuals the gates were measured from")
    ap.add_argument("--pairs", action="store_true", help="every pair made")
    a = ap.parse_args(argv)
    from detect.counting.ais import AisParams

    root = data_dir(a.data, "ais_match_eotdl")
    chips = load_chips(root, a.method)
    params = AisParams.legacy() if a.legacy else AisParams()
    res = match_chips(chips, params)
    name = "legacy matcher (500 m between centres, lengths within 60 %)" if a.legacy else "ship-frame matcher"
    print_table(table(res), f"{len(chips)} chips, detector {a.method}, {name}")
    own = {int(p.stem.split("_")[1]) for p in chip_paths(root)}
    found = sum(s["matched"] for s in res["ships"] if s["mmsi"] in own)
    doubled = sum(max(o["boxes"].values()) - 1 for o in res["objects"])
    print(
        f"\nThe ship each chip was cut around: {found} of {len(own)} matched. Boxes on an object already "
        f"boxed in the same chip (counted once above): {doubled}."
    )
    if a.pairs:
        print("\n" + pd.DataFrame(res["pairs"]).to_string(index=False))
        missed = pd.DataFrame([s for s in res["ships"] if not s["matched"] and s["length_m"] >= 40])
        print("\nAIS ships of 40 m or more that no detection took:\n")
        print(missed.drop(columns="matched").sort_values("length_m").to_string(index=False))
    if a.residuals:
        print_residuals(*unambiguous_pairs(chips))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
