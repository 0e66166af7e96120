"""Truck detector accuracy: precision/recall on simulated trucks in held-out real cities, detections per
km² on open water and city land with no injected trucks, the count on the S2TD motorway chip, and the
figure docs/figures/trucks-s2td.png.

    python benchmarks/truck_eval.py [--data SEN2SHIPS_ROOT] [--json out.json] [--write-spec]
        [--simulate-l1c AOT [--haze off|on]]

``--data`` (the sen2ships folder that holds trainval/) defaults to ``$HARBORWATCH_DATA/sen2ships``.
``--simulate-l1c AOT`` gives every held-out scene, after the trucks are injected, a simulated Level-1C
(top-of-atmosphere) look (``benchmarks/_toa.py``: path light added, contrast lowered, aerosol optical depth
AOT at 550 nm, sun ``--sun-zenith`` degrees from zenith), as the detector would see a 2018 scene over China;
``--haze on`` then runs the detector's dark-object subtraction first (``detect.core.haze``), down to the
model's ``dark_reference``. The S2TD chip (no known scale) is skipped then.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from detect.core.water import ndwi_array  # noqa: E402
from detect.trucks.detector import (  # noqa: E402
    DEFAULT_MODEL,
    S2TD_SCALE,
    TRUCK_BANDS,
    TruckDetector,
    candidate_to_detection,
    candidates_from_probability,
    count_in_zones,
    flag_on_road,
    read_s2td_chip,
)
from detect.trucks.sim import find_roads  # noqa: E402
from detect.trucks.train import HELDOUT_CITIES, combine, load_city, match, simulate_scene, summarise  # noqa: E402
from imagery.atomic import atomic_path, atomic_write_json  # noqa: E402

S2TD_CHIP = REPO / "tests" / "fixtures" / "trucks" / "s2td-motorway.tif"
FIGURE = REPO / "docs" / "figures" / "trucks-s2td.png"
#: Hand-picked dense-city windows with streets but no motorway (row0, row1, col0, col1) on the UTM grid.
CITY_WINDOWS = {"marseille": (855, 1055, 908, 1150)}
#: A2 motorway centre-line in the S2TD chip, (col, row) pixel centres, drawn by eye on the RGB composite;
#: a 40 m buffer covers both carriageways and the hard shoulders (the paved band is ~6–8 px wide).
S2TD_MOTORWAY_PX = ((0, 7.0), (20, 12.0), (50, 22.0), (75, 30.0), (100, 38.5), (132, 46.5))
S2TD_MOTORWAY_BUFFER_M = 40.0


def s2td_motorway_aoi(window):
    """A one-zone AOI (kind ``road``) for the S2TD chip's motorway, in EPSG:4326."""
    from shapely.geometry import LineString, box

    from imagery.aoi import Aoi, Zone, to_crs

    t = window.grid.transform
    line = LineString([t @ (c + 0.5, r + 0.5) for c, r in S2TD_MOTORWAY_PX])
    bounds = box(*window.grid.bounds)
    return Aoi(
        name="s2td-a2",
        kind="custom",
        geometry=to_crs(bounds, "EPSG:4326", src_crs=window.grid.crs),
        zones=(
            Zone(
                name="A2",
                kind="road",
                geometry=to_crs(line, "EPSG:4326", src_crs=window.grid.crs),
                buffer_m=S2TD_MOTORWAY_BUFFER_M,
            ),
        ),
    )


def as_seen(aot550: float | None, sun_zenith: float, haze: str, det: TruckDetector):
    """The function that turns a (4, H, W) L2A array of ``TRUCK_BANDS`` into what the detector is given:
    itself, or a simulated L1C at aerosol depth ``aot550`` (``_toa``), haze-corrected first where ``haze``
    is "on" (``detect.core.haze.subtract_dark`` down to the model's ``dark_reference``)."""
    if aot550 is None:
        return lambda data: data
    from _toa import simulate_toa_array

    from detect.core.haze import subtract_dark

    reference = det.spec.dark_reference
    if haze == "on" and not reference:
        sys.exit(f"{det.spec.name} has no dark_reference for --haze on")

    def look(data: np.ndarray) -> np.ndarray:
        toa = simulate_toa_array(data, TRUCK_BANDS, aot550, sun_zenith)
        if haze == "on":
            toa, _ = subtract_dark(toa, TRUCK_BANDS, np.all(np.isfinite(data), axis=0), reference)
        return toa

    return look


def add_l1c_arguments(p: argparse.ArgumentParser) -> None:
    """The simulated-L1C options ``truck_eval.py`` and ``truck_count_real.py`` share."""
    p.add_argument("--simulate-l1c", type=float, metavar="AOT", help="simulated L1C at this aerosol depth")
    p.add_argument("--sun-zenith", type=float, default=25.0, help="sun zenith of --simulate-l1c (degrees)")
    p.add_argument("--haze", choices=("off", "on"), default="off", help="dark-object subtraction first")


def l1c_look(script: str, args: argparse.Namespace, det: TruckDetector) -> tuple[Any, dict | None]:
    """(``as_seen`` for ``add_l1c_arguments``' options, the settings to record, None without
    ``--simulate-l1c``); exits on ``--haze on`` without ``--simulate-l1c``, and says what it simulates."""
    if args.haze == "on" and args.simulate_l1c is None:
        sys.exit(f"{script}: --haze on is for --simulate-l1c (the scenes are read as they are)")
    look = as_seen(args.simulate_l1c, args.sun_zenith, args.haze, det)
    if args.simulate_l1c is None:
        return look, None
    print(f"simulated L1C: aerosol {args.simulate_l1c:g}, sun zenith {args.sun_zenith:g}°, haze {args.haze}")
    return look, {"aot550": args.simulate_l1c, "sun_zenith": args.sun_zenith, "haze": args.haze}


def water_mask(data: np.ndarray) -> np.ndarray:
    """Open water: NDWI(B03, B08) > 0.3, eroded 3 px so shorelines and quays are not counted."""
    return ndimage.binary_erosion(np.nan_to_num(ndwi_array(data[1], data[3])) > 0.3, iterations=3)


def land_mask(data: np.ndarray) -> np.ndarray:
    valid = np.all(np.isfinite(data), axis=0)
    ndwi = np.nan_to_num(ndwi_array(data[1], data[3]), nan=1.0)
    return ndimage.binary_erosion(valid & (ndwi < 0.0), iterations=3)


def per_km2(cands, mask: np.ndarray, gsd_m: float) -> tuple[int, float, float]:
    n = sum(
        bool(mask[round(c.row), round(c.col)])
        for c in cands
        if 0 <= round(c.row) < mask.shape[0] and 0 <= round(c.col) < mask.shape[1]
    )
    area = float(mask.sum()) * gsd_m**2 / 1e6
    return n, area, (n / area if area else float("nan"))


def draw_figure(window, cands, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rgb = np.moveaxis(window.select(("B04", "B03", "B02")), 0, -1)
    rgb = np.clip(rgb / np.nanpercentile(rgb, 99.5), 0, 1) ** 0.8
    h, w = rgb.shape[:2]
    fig, ax = plt.subplots(figsize=(w / 10, h / 10 + 0.8), dpi=100)
    ax.imshow(rgb, interpolation="nearest")
    cols, rows = zip(*S2TD_MOTORWAY_PX, strict=True)
    ax.plot(cols, rows, color="cyan", lw=0.8, ls="--")
    for c in cands:
        ax.add_patch(plt.Circle((c.col, c.row), 2.2, fill=False, color="yellow", lw=1.2))
        ax.annotate(
            "",
            xy=(c.col + c.d_col, c.row + c.d_row),
            xytext=(c.col - c.d_col, c.row - c.d_row),
            arrowprops={"arrowstyle": "->", "color": "yellow", "lw": 1.0},
        )
        ax.text(c.col + 2.6, c.row - 2.0, f"{c.speed_kmh(window.grid.res_m):.0f}", color="yellow", fontsize=7)
    ax.set_title(
        f"S2TD motorway chip (A2 near Braunschweig): {len(cands)} moving-truck detections\n"
        "arrow = B02→B04 travel direction, label = km/h, dashed = A2 centre-line (zone ±40 m).\n"
        "Contains modified Copernicus Sentinel data; chip from hfisser/S2TD (MIT)",
        fontsize=7,
    )
    ax.set_axis_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def yolo_comparison(args: argparse.Namespace, det: TruckDetector) -> dict:
    """Held-out P/R of the YOLO comparison model (conf chosen by F1 on the validation city)."""
    from detect.ships.model import YoloModel
    from detect.trucks.train import VAL_CITIES, yolo_candidates

    model = YoloModel.load(args.yolo)

    def run(city: str, seed: int) -> tuple:
        data, gsd = load_city(args.data, city, args.cache)
        scene = simulate_scene(data, city, seed, args.trucks if city != VAL_CITIES[0] else 400, gsd)
        return scene, yolo_candidates(model, scene.data, conf=0.05)

    val_scene, val_cands = run(VAL_CITIES[0], 7)
    table = {}
    for conf in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        kept = [c for c in val_cands if c.score >= conf]
        table[conf] = summarise(match(kept, val_scene.trucks, val_scene.gsd_m))
    conf = max(table, key=lambda k: table[k]["f1"])
    print(f"\nYOLO comparison ({args.yolo}): conf {conf} chosen on {VAL_CITIES[0]}: {table[conf]}")
    results = []
    for ci, city in enumerate(HELDOUT_CITIES):
        for k in range(args.rounds):
            scene, cands = run(city, args.seed + 100 * ci + k)
            results.append(match([c for c in cands if c.score >= conf], scene.trucks, scene.gsd_m))
    total = summarise(combine(results))
    print(f"YOLO held-out (same simulated scenes as above): {total}")
    return {"conf": conf, "validation": table[conf], "heldout": total}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="sen2ships root (default $HARBORWATCH_DATA/sen2ships)")
    p.add_argument("--weights", default=DEFAULT_MODEL, help="model name or spec JSON path")
    p.add_argument("--cache", default=str(REPO / "work-data" / "trucks"))
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--trucks", type=int, default=300)
    p.add_argument("--json", help="write all numbers to this JSON file")
    p.add_argument(
        "--write-spec", action="store_true", help="store the held-out metrics in the weights' JSON"
    )
    p.add_argument("--no-figure", action="store_true")
    p.add_argument("--yolo", help="also evaluate a YOLO comparison model (.pt with its .json)")
    p.add_argument("--yolo-only", action="store_true", help="with --yolo: skip everything else")
    add_l1c_arguments(p)
    args = p.parse_args(argv)
    from detect.core.data import data_path
    from imagery.errors import InputError

    try:
        args.data = str(data_path("sen2ships-root", args.data))
    except InputError as e:
        sys.exit(f"truck_eval: {e}")

    det = TruckDetector.load(args.weights)
    thr = det.spec.threshold
    print(f"model {det.spec.name} ({args.weights}), threshold {thr:.2f}")
    out: dict = {"model": det.spec.name, "threshold": thr, "heldout": {}, "clean": {}}
    look, l1c = l1c_look("truck_eval", args, det)
    if l1c:
        out["simulated_l1c"] = l1c
    if args.yolo:
        out["yolo"] = yolo_comparison(args, det)
        if args.yolo_only:
            if args.json:
                atomic_write_json(args.json, out)
            return 0
    all_res = []
    all_trucks = []
    px_total, t_total = 0, 0.0
    print("\nHeld-out cities, simulated trucks (match: midpoint within 2 px)")
    print(
        f"{'city':<11}{'trucks':>7}{'TP':>6}{'FP':>6}{'FN':>6}{'P':>7}{'R':>7}{'F1':>7}"
        f"{'|dv| med':>10}{'bias':>7}{'head med':>10}{'sense':>7}"
    )
    clean_rows = []
    for ci, city in enumerate(HELDOUT_CITIES):
        data, gsd = load_city(args.data, city, args.cache)
        res = []
        for k in range(args.rounds):
            scene = simulate_scene(data, city, args.seed + 100 * ci + k, args.trucks, gsd)
            scene = replace(scene, data=look(scene.data))
            t0 = time.perf_counter()
            prob = det.probability(scene.data)
            cands = candidates_from_probability(scene.data, prob, thr)
            t_total += time.perf_counter() - t0
            px_total += scene.data.shape[1] * scene.data.shape[2]
            res.append(match(cands, scene.trucks, gsd))
            all_trucks.extend(scene.trucks)
        r = combine(res)
        all_res.append(r)
        s = summarise(r)
        out["heldout"][city] = s
        print(
            f"{city:<11}{r.tp + r.fn:>7}{r.tp:>6}{r.fp:>6}{r.fn:>6}{s['precision']:>7.3f}{s['recall']:>7.3f}"
            f"{s['f1']:>7.3f}{s['speed_abs_err_kmh_median']:>10.1f}{s['speed_bias_kmh']:>7.1f}"
            f"{s['heading_err_deg_median']:>10.1f}{s['travel_sense_correct']:>7.3f}"
        )
        # The same scene with no trucks injected: every detection is a false positive or a real vehicle.
        data = look(data)
        cands = det.candidates(data)
        n_w, a_w, d_w = per_km2(cands, water_mask(data), gsd)
        land = land_mask(data)
        roads = ndimage.binary_dilation(find_roads(data, TRUCK_BANDS).mask, iterations=1)
        n_l, a_l, d_l = per_km2(cands, land, gsd)
        n_o, a_o, d_o = per_km2(cands, land & ~roads, gsd)
        row = {
            "water_n": n_w,
            "water_km2": round(a_w, 2),
            "water_per_km2": round(d_w, 3),
            "land_n": n_l,
            "land_km2": round(a_l, 2),
            "land_per_km2": round(d_l, 2),
            "land_off_roadlike_n": n_o,
            "land_off_roadlike_km2": round(a_o, 2),
            "land_off_roadlike_per_km2": round(d_o, 2),
        }
        if city in CITY_WINDOWS:
            r0, r1, c0, c1 = CITY_WINDOWS[city]
            m = np.zeros(land.shape, bool)
            m[r0:r1, c0:c1] = True
            n_c, a_c, d_c = per_km2(cands, m & np.all(np.isfinite(data), axis=0), gsd)
            row.update(
                {
                    "city_window": [r0, r1, c0, c1],
                    "city_window_n": n_c,
                    "city_window_km2": round(a_c, 2),
                    "city_window_per_km2": round(d_c, 2),
                }
            )
        out["clean"][city] = row
        clean_rows.append((city, row))
    total = summarise(combine(all_res))
    out["heldout"]["all"] = total
    print(
        f"{'all':<11}{total['tp'] + total['fn']:>7}{total['tp']:>6}{total['fp']:>6}{total['fn']:>6}"
        f"{total['precision']:>7.3f}{total['recall']:>7.3f}{total['f1']:>7.3f}"
        f"{total['speed_abs_err_kmh_median']:>10.1f}{total['speed_bias_kmh']:>7.1f}"
        f"{total['heading_err_deg_median']:>10.1f}{total['travel_sense_correct']:>7.3f}"
    )
    found = combine(all_res).found
    print("\nRecall by roof kind and by speed (all held-out cities)")
    by: dict[str, list[bool]] = {}
    for t, f in zip(all_trucks, found, strict=True):
        by.setdefault(f"roof {t.roof.kind}", []).append(f)
        lo = int(t.speed_kmh // 20 * 20)
        by.setdefault(f"speed {lo:3d}-{lo + 20} km/h", []).append(f)
    out["recall_by"] = {k: {"n": len(v), "recall": round(sum(v) / len(v), 3)} for k, v in sorted(by.items())}
    for k, v in out["recall_by"].items():
        print(f"  {k:<22} n={v['n']:>5}  recall {v['recall']:.3f}")
    out["throughput_mpx_per_s"] = round(px_total / t_total / 1e6, 3)
    print(f"throughput: {out['throughput_mpx_per_s']} Mpx/s (features + classifier + peaks, 1 thread)")

    print("\nSame held-out scenes with no injected trucks (detections per km²)")
    print(
        f"{'city':<11}{'water n':>8}{'km²':>7}{'/km²':>7}{'land n':>8}{'km²':>7}{'/km²':>7}"
        f"{'off-road n':>11}{'/km²':>7}{'city win n':>11}{'/km²':>7}"
    )
    for city, row in clean_rows:
        print(
            f"{city:<11}{row['water_n']:>8}{row['water_km2']:>7.1f}{row['water_per_km2']:>7.2f}"
            f"{row['land_n']:>8}{row['land_km2']:>7.1f}{row['land_per_km2']:>7.2f}"
            f"{row['land_off_roadlike_n']:>11}{row['land_off_roadlike_per_km2']:>7.2f}"
            f"{row.get('city_window_n', '-'):>11}{row.get('city_window_per_km2', float('nan')):>7.2f}"
        )

    s2td = {}
    if args.simulate_l1c is None:
        print("\nS2TD motorway chip (no labels; B04,B03,B02,B08 at a 0–255-like scale)")
    for name, scale in (("1/255 (default)", S2TD_SCALE), ("1/340 (medians matched to Marseille)", 1 / 340)):
        if args.simulate_l1c is not None:
            break
        win = read_s2td_chip(S2TD_CHIP, scale=scale)
        cands = det.candidates(win.select(TRUCK_BANDS))
        speeds = [round(c.speed_kmh(win.grid.res_m)) for c in cands]
        aoi = s2td_motorway_aoi(win)
        dets = flag_on_road([candidate_to_detection(c, win, det.name) for c in cands], aoi)
        on_road = count_in_zones(dets, aoi)["A2"]
        s2td[name] = {"count": len(cands), "on_motorway": on_road, "speeds_kmh": speeds}
        print(
            f"  scale {name}: {len(cands)} trucks, {on_road} inside the A2 zone (±40 m), speeds km/h {speeds}"
        )
        if scale == S2TD_SCALE and not args.no_figure:
            draw_figure(win, cands, FIGURE)
            print(f"  figure: {FIGURE.relative_to(REPO)}")
    out["s2td"] = s2td

    if args.json:
        atomic_write_json(args.json, out)
    if args.write_spec and args.simulate_l1c is not None:
        sys.exit("truck_eval: --write-spec stores the L2A metrics; run it without --simulate-l1c")
    if args.write_spec:
        from detect.core.weights import weights_dir

        spec_path = (
            Path(args.weights) if args.weights.endswith(".json") else weights_dir() / f"{args.weights}.json"
        )
        spec = json.loads(spec_path.read_text())
        spec.setdefault("metrics", {})["heldout"] = {
            "cities": list(HELDOUT_CITIES),
            "seed": args.seed,
            "rounds": args.rounds,
            "trucks_per_round": args.trucks,
            **total,
            "clean": out["clean"],
            "s2td": s2td,
        }
        atomic_write_json(spec_path, spec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
