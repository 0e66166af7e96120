"""Recall of the ship detectors on real AIS ships around Kiel Bay (eotdl Sentinel-2-Ships, T32UNF,
2022-08-12).

Each of the 33 real L2A chips (12 bands, no descriptions) is run through ``detect.detectors.detect_paths``,
the function behind ``harborwatch detect``. Every AIS contact in the tile at image time (not only the chip's
own ship) that lies inside a chip, is a vessel (Class A/B) and is at least ``--min-length`` metres long is a
truth; it is found when a detection's centre lies within half its AIS length (at least ``--radius`` m) of
its AIS position (the antenna sits anywhere along the hull and positions are seconds old). Precision is not
measurable: other ships in the chips carry no AIS label. Data: ``--data`` or
``$HARBORWATCH_DATA/eotdl-s2-ships`` (docs/data.md).

    python benchmarks/eotdl_recall.py [--data EOTDL] --method auto --method seg --method yolo \
        --method baseline

``--simulate-l1c AOT`` runs the same on copies of the chips given a simulated top-of-atmosphere look
(``benchmarks/_toa.py``: path reflectance and transmittance of air and of an aerosol layer of that optical
depth at 550 nm, the sun ``--sun-zenith`` degrees from zenith) and tagged ``PROCESSING_LEVEL`` L1C as
``harborwatch fetch`` tags an L1C file, so the ship model takes its dark-object subtraction
(``SegShipDetector(haze="auto")``); ``--tag-level L2A`` tags the same pixels L2A, which it reads as they are.
``--true-colour`` runs the same on copies holding only B02 B03 B04 (a TCI file, a browser export).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))  # _toa, also where the script is imported by path

EOTDL_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
#: The image time: sensing start of the datatake (S2A_MSIL1C_20220812T103031_..._T32UNF); the AIS rows are
#: positions at image time with no timestamp of their own.
EOTDL_TIME = datetime(2022, 8, 12, 10, 30, 31, tzinfo=timezone.utc)
LENGTH_CLASSES = ((0, 80), (80, 150), (150, 1e9))


def data_dir(arg: str | None, script: str = "eotdl_recall") -> Path:
    from detect.core.data import data_path
    from imagery.errors import InputError

    try:
        root = data_path("eotdl-s2-ships", arg)
    except InputError as e:
        sys.exit(f"{script}: {e}")
    if not (root / "chips").is_dir() or not list((root / "ais").glob("*.csv")):
        sys.exit(f"{script}: {root} lacks chips/ or ais/*.csv (see docs/data.md)")
    return root


def chip_paths(root: Path) -> list[Path]:
    return sorted((root / "chips").glob("ship_*.tif"))


def read_ais(root: Path) -> pd.DataFrame:
    """Every AIS ship (Class A/B) in the tile at image time, normalised (``detect.counting.ais``)."""
    from detect.counting.ais import load_ais

    return pd.concat([load_ais(p, when=EOTDL_TIME) for p in sorted((root / "ais").glob("*.csv"))])


def ais_truths(root: Path, min_length: float) -> list[dict]:
    ais = read_ais(root)
    ais = ais[ais["length_m"] >= min_length]
    return [
        {"mmsi": r.mmsi, "lat": r.lat, "lon": r.lon, "length_m": r.length_m, "status": r.nav_status}
        for r in ais.itertuples()
    ]


def chip_bounds(tif: Path) -> tuple[float, float, float, float]:
    meta = json.loads(tif.with_suffix(".json").read_text())
    return tuple(meta["bounding-box"])  # west, south, east, north


def metres(lon1, lat1, lon2, lat2):
    k = 111_320.0
    return np.hypot((lon2 - lon1) * k * math.cos(math.radians(lat1)), (lat2 - lat1) * 110_540.0)


def simulated_l1c(chips: list[Path], out: Path, aot: float, sun_zenith: float, level: str) -> list[Path]:
    """Copies of ``chips`` in ``out`` (same names) given a simulated top-of-atmosphere look
    (``_toa.to_toa`` per band, on the stored values, whose scale is 1e-4 reflectance) and tagged
    ``PROCESSING_LEVEL`` ``level``."""
    import rasterio
    from _toa import to_toa

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for tif in chips:
        with rasterio.open(tif) as src:
            dn, profile = src.read().astype(np.float64), src.profile
        for i, b in enumerate(EOTDL_BANDS):
            dn[i] = np.where(dn[i] != 0, to_toa(dn[i] * 1e-4, b, aot, sun_zenith) / 1e-4, 0)
        dst_path = out / tif.name
        with rasterio.open(dst_path, "w", **profile) as dst:
            dst.write(np.clip(np.round(dn), -32768, 32767).astype(profile["dtype"]))
            dst.update_tags(PROCESSING_LEVEL=level)
        paths.append(dst_path)
    return paths


def band_copies(chips: list[Path], out: Path, bands: tuple[str, ...]) -> list[Path]:
    """Copies of ``chips`` in ``out`` (same names) holding only ``bands`` of ``EOTDL_BANDS``, values, grid and
    tags unchanged: a scene that offers only those (``--true-colour``: B02 B03 B04, as a TCI file does)."""
    import rasterio

    out.mkdir(parents=True, exist_ok=True)
    idx = [EOTDL_BANDS.index(b) + 1 for b in bands]
    paths = []
    for tif in chips:
        with rasterio.open(tif) as src:
            data, profile, tags = src.read(idx), src.profile, src.tags()
        profile.update(count=len(idx))
        with rasterio.open(out / tif.name, "w", **profile) as dst:
            dst.write(data)
            dst.update_tags(**tags)
        paths.append(out / tif.name)
    return paths


def run(
    root: Path,
    method: str,
    min_length: float,
    radius_m: float,
    conf: float | None,
    inputs: list[Path] | None = None,
    bands: tuple[str, ...] = EOTDL_BANDS,
) -> dict:
    """Recall of ``method`` on the chips (or on ``inputs``, copies of them under the same names holding
    ``bands``)."""
    from detect.detectors import detect_paths

    chips = chip_paths(root)
    truths = ais_truths(root, min_length)
    dets, _ = detect_paths(inputs or chips, classes=("ship",), method=method, bands=bands, conf=conf)
    by_scene: dict[str, list] = {}
    for d in dets:
        by_scene.setdefault(d.scene, []).append(d)
    seen: dict[str, tuple[dict, bool]] = {}
    for tif in chips:
        w, s, e, n = chip_bounds(tif)
        ds = by_scene.get(tif.stem, [])
        for t in truths:
            if not (w <= t["lon"] <= e and s <= t["lat"] <= n):
                continue
            hit = any(
                metres(t["lon"], t["lat"], d.lon, d.lat) <= max(radius_m, 0.5 * t["length_m"]) for d in ds
            )
            prev = seen.get(t["mmsi"])
            seen[t["mmsi"]] = (t, hit or (prev[1] if prev else False))
    out = {
        "method": method,
        "chips": len(chips),
        "ais_ships": len(seen),
        "found": sum(h for _, h in seen.values()),
    }
    for lo, hi in LENGTH_CLASSES:
        sel = [h for t, h in seen.values() if lo <= t["length_m"] < hi]
        out[f"{lo}-{hi if hi < 1e9 else 'up'}"] = (sum(sel), len(sel))
    out["recall"] = out["found"] / out["ais_ships"] if out["ais_ships"] else float("nan")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data")
    ap.add_argument("--method", action="append")
    ap.add_argument("--min-length", type=float, default=40.0)
    ap.add_argument("--radius", type=float, default=60.0)
    ap.add_argument("--conf", type=float)
    ap.add_argument("--simulate-l1c", type=float, default=None, metavar="AOT")
    ap.add_argument("--sun-zenith", type=float, default=40.0, help="degrees (Kiel Bay, 12 August, 10:30 UTC)")
    ap.add_argument("--tag-level", choices=("L1C", "L2A"), default="L1C")
    ap.add_argument(
        "--true-colour", action="store_true", help="read copies of the chips holding only B02 B03 B04"
    )
    a = ap.parse_args(argv)
    if a.true_colour and a.simulate_l1c is not None:
        ap.error("--true-colour and --simulate-l1c: one at a time")
    root = data_dir(a.data)
    inputs = None
    if a.simulate_l1c is not None:
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix="eotdl-l1c-")
        inputs = simulated_l1c(chip_paths(root), Path(tmp.name), a.simulate_l1c, a.sun_zenith, a.tag_level)
        print(f"simulated L1C, aerosol optical depth {a.simulate_l1c:g}, tagged {a.tag_level}\n")
    bands = EOTDL_BANDS
    if a.true_colour:
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix="eotdl-tc-")
        bands = ("B02", "B03", "B04")
        inputs = band_copies(chip_paths(root), Path(tmp.name), bands)
        print("true colour only (B02 B03 B04 copies of the chips)\n")
    print(f"| method | AIS ships ≥ {a.min_length:.0f} m | found | recall | < 80 m | 80–150 m | > 150 m |")
    print("|---|---|---|---|---|---|---|")
    default = ["auto", "seg", "seg-b4"] if a.true_colour else ["auto", "seg", "seg-b4", "yolo", "baseline"]
    for m in a.method or default:  # yolo and baseline need B08
        r = run(root, m, a.min_length, a.radius, a.conf, inputs, bands)
        cls = [f"{r[k][0]}/{r[k][1]}" for k in ("0-80", "80-150", "150-up")]
        print(
            f"| {m} | {r['ais_ships']} | {r['found']} | {r['recall']:.2f} | " + " | ".join(cls) + " |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
