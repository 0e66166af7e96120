"""Does the truck detector's haze correction need open water in the window? Simulated trucks in the held-out
cities (as ``truck_eval.py``, ``--rounds`` copies of each scene), each scene cut into AOI-sized windows; every
window is given a simulated Level-1C look (``_toa``) and run as the pipeline runs an AOI: as L2A (no
atmosphere), as L1C read as it is, and as L1C with the dark-object subtraction computed on that window
alone. Windows are split by whether ``--min-water`` of their pixels are open water (NDWI(B03, B08) > 0.3):
the subtraction's reference is the dark level of the training scenes, which is set by water, and a window of
land only has no such dark object. (The detector's own rule, ``MIN_WATER_SHARE``, came from this table.)

    python benchmarks/truck_l1c_tiles.py [--aot 0.5] [--tile 256] [--cities a,b] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _toa import simulate_toa_array  # noqa: E402

from detect.core.haze import subtract_dark  # noqa: E402
from detect.trucks.detector import DEFAULT_MODEL, TRUCK_BANDS, TruckDetector, water_share  # noqa: E402
from detect.trucks.train import HELDOUT_CITIES, combine, load_city, match, simulate_scene, summarise  # noqa: E402
from imagery.atomic import atomic_write_json  # noqa: E402

#: Context read around each window, as ``truck_count_real.py`` does (the widest feature filter is 15 px).
MARGIN_PX = 24
CONDITIONS = ("L2A", "L1C as read", "L1C + subtraction")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="sen2ships root (default $HARBORWATCH_DATA/sen2ships)")
    p.add_argument("--weights", default=DEFAULT_MODEL)
    p.add_argument("--cache", default=str(REPO / "work-data" / "trucks"))
    p.add_argument("--aot", type=float, default=0.5, help="aerosol optical depth at 550 nm")
    p.add_argument("--sun-zenith", type=float, default=25.0)
    p.add_argument("--tile", type=int, default=256, help="window size (px)")
    p.add_argument("--min-water", type=float, default=0.01, help="share of open water for 'has water'")
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--trucks", type=int, default=300)
    p.add_argument("--cities", default=",".join(HELDOUT_CITIES), help="sen2ships cities (default: held out)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    from detect.core.data import data_path
    from imagery.errors import InputError

    try:
        args.data = str(data_path("sen2ships-root", args.data))
    except InputError as e:
        sys.exit(f"truck_l1c_tiles: {e}")
    det = TruckDetector.load(args.weights)
    ref = det.spec.dark_reference
    if not ref:
        sys.exit(f"truck_l1c_tiles: {det.spec.name} has no dark_reference")
    results: dict[tuple[str, str], list] = {}
    windows = {"water": 0, "dry": 0}
    for ci, city in enumerate(args.cities.split(",")):
        data, gsd = load_city(args.data, city, args.cache)
        h, w = data.shape[1:]
        for k in range(args.rounds):
            scene = simulate_scene(data, city, args.seed + 100 * ci + k, args.trucks, gsd)
            for r0 in range(0, h, args.tile):
                for c0 in range(0, w, args.tile):
                    r1, c1 = min(r0 + args.tile, h), min(c0 + args.tile, w)
                    a0, a1 = max(r0 - MARGIN_PX, 0), min(r1 + MARGIN_PX, h)
                    b0, b1 = max(c0 - MARGIN_PX, 0), min(c1 + MARGIN_PX, w)
                    l2a = scene.data[:, a0:a1, b0:b1]
                    valid = np.all(np.isfinite(l2a), axis=0)
                    if valid.mean() < 0.5:
                        continue
                    toa = simulate_toa_array(l2a, TRUCK_BANDS, args.aot, args.sun_zenith)
                    kind = "water" if water_share(toa, valid) >= args.min_water else "dry"
                    windows[kind] += int(k == 0)
                    looks = {
                        "L2A": l2a,
                        "L1C as read": toa,
                        "L1C + subtraction": subtract_dark(toa, TRUCK_BANDS, valid, ref)[0],
                    }
                    trucks = tuple(
                        replace(t, row=t.row - a0, col=t.col - b0)
                        for t in scene.trucks
                        if r0 <= round(t.row) < r1 and c0 <= round(t.col) < c1
                    )
                    for name, x in looks.items():
                        cands = [
                            c
                            for c in det.candidates(x)
                            if r0 <= round(c.row) + a0 < r1 and c0 <= round(c.col) + b0 < c1
                        ]
                        results.setdefault((kind, name), []).append(match(cands, trucks, gsd))
        print(f"{city}: done (windows so far: {windows})", flush=True)
    print(
        f"\n{det.spec.name}, threshold {det.spec.threshold}; simulated L1C aerosol {args.aot:g}, sun zenith "
        f"{args.sun_zenith:g}°; {args.tile} px windows, 'water' = at least {args.min_water:.0%} open water"
    )
    print(f"{'windows':<8}{'n':>5}{'look':>20}{'trucks':>8}{'TP':>6}{'FP':>6}{'P':>7}{'R':>7}{'F1':>7}")
    out: dict = {"aot550": args.aot, "tile": args.tile, "min_water": args.min_water, "rows": {}}
    for kind in ("water", "dry"):
        for name in CONDITIONS:
            s = summarise(combine(results.get((kind, name), [])))
            out["rows"][f"{kind} / {name}"] = {"windows": windows[kind], **s}
            print(
                f"{kind:<8}{windows[kind]:>5}{name:>20}"
                f"{s['tp'] + s['fn']:>8}{s['tp']:>6}{s['fp']:>6}{s['precision']:>7.3f}{s['recall']:>7.3f}"
                f"{s['f1']:>7.3f}"
            )
    if args.json:
        atomic_write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
