"""Read throughput: AOI-sized windows from tile-sized COGs, local and over HTTP range requests, against
reading whole bands and cropping (the naive way), with peak memory.

    nice python benchmarks/bench_read.py [--size 4096] [--window 1000] [--windows 6] [--markdown]

The COGs (B04 B03 B02 B08, uint16, deflate, 256 px blocks, overviews) are made from real Sentinel-2
pixels (sen2ships Valencia from ``--data`` / ``$HARBORWATCH_DATA``, or the bundled sample with
``--sample``) mirrored to ``--size`` px, in a temp folder; HTTP is ``tests/rangeserver.py`` on
127.0.0.1 (no network latency: the HTTP rows measure request overhead and bytes moved, not a real bucket).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from shapely.geometry import box

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from _measure import machine, measure, table  # noqa: E402

from imagery.gdal import gdal_env, vsi_path  # noqa: E402
from imagery.read import read_window  # noqa: E402
from imagery.types import Asset, Grid, Scene  # noqa: E402
from tests.rangeserver import RangeServer  # noqa: E402

BANDS = ("B04", "B03", "B02", "B08")


def source_pixels(data: str | None = None, sample: bool = False) -> tuple[dict[str, np.ndarray], str]:
    """The real Valencia pixels of sen2ships (``data`` or ``$HARBORWATCH_DATA``; docs/data.md), or the
    first bundled sample when ``sample`` is asked for. Without either the benchmark stops and says so."""
    if not sample:
        from detect.core.data import data_path
        from imagery.errors import InputError

        try:
            valencia = data_path("sen2ships", data) / "valencia"
        except InputError as e:
            sys.exit(f"{Path(sys.argv[0]).name}: {e}; or use the bundled sample with --sample")
        out = {}
        for b in BANDS:
            with rasterio.open(valencia / f"valencia_{b}.tif") as src:
                out[b] = src.read(1)
        return out, "sen2ships valencia (real L2A)"
    from imagery.samples import list_samples

    s = list_samples()[0]
    with rasterio.open(s.path) as src:
        names = list(src.descriptions)
        return {b: src.read(names.index(b) + 1) for b in BANDS}, f"bundled sample {s.id}"


def make_cogs(
    folder: Path, size: int, data: str | None = None, sample: bool = False
) -> tuple[dict[str, Path], str]:
    """One COG per band, ``size`` px square, the real pixels mirrored to fill it."""
    pixels, origin = source_pixels(data, sample)
    paths = {}
    for b, arr in pixels.items():
        reps = (-(-size // arr.shape[0]), -(-size // arr.shape[1]))
        tiles = [[arr[:, ::-1] if (i + j) % 2 else arr for j in range(reps[1])] for i in range(reps[0])]
        big = np.block(tiles)[:size, :size]
        path = folder / f"scene_{b}.tif"
        profile = dict(
            driver="COG", width=size, height=size, count=1, dtype="uint16", crs="EPSG:32630",
            transform=Affine(10, 0, 700000, 0, -10, 4400000), nodata=0, compress="deflate", blocksize=256,
        )  # fmt: skip
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(big, 1)
        paths[b] = path
    return paths, origin


def scene_for(hrefs: dict[str, str]) -> Scene:
    return Scene(
        id="bench",
        source="local",
        collection="bench",
        datetime=datetime(2023, 6, 1, tzinfo=timezone.utc),
        platform="sentinel-2",
        processing_level="L2A",
        cloud_cover=None,
        footprint=box(0, 0, 1, 1),
        assets={b: Asset(href=h, band=b, offset_dn=0.0, scale=1e-4, nodata=0) for b, h in hrefs.items()},
        crs="EPSG:32630",
    )


def windows(size: int, px: int, n: int) -> list[Grid]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        r, c = rng.integers(0, size - px, 2)
        out.append(Grid("EPSG:32630", Affine(10, 0, 700000 + 10 * c, 0, -10, 4400000 - 10 * r), px, px))
    return out


def windowed(scene: Scene, grids: list[Grid]) -> int:
    return sum(int(np.isfinite(read_window(scene, g, BANDS).data).sum()) for g in grids)


def whole_then_crop(hrefs: dict[str, str], grids: list[Grid]) -> int:
    """The naive reader: every band read whole for every window, then cropped."""
    n = 0
    for g in grids:
        for h in hrefs.values():
            with gdal_env(), rasterio.open(vsi_path(h)) as src:
                full = src.read(1)
                c, r = ~src.transform * (g.transform.c, g.transform.f)
                n += int((full[int(r) : int(r) + g.height, int(c) : int(c) + g.width] > 0).sum())
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096, help="COG side in px (a full S2 tile is 10980)")
    ap.add_argument("--window", type=int, default=1000, help="window side in px (1000 px = 100 km²)")
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", default=None, help="sen2ships trainval folder (default $HARBORWATCH_DATA/...).")
    ap.add_argument("--sample", action="store_true", help="Use the bundled sample's pixels instead.")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-read-") as tmp:
        paths, origin = make_cogs(Path(tmp), args.size, args.data, args.sample)
        file_mb = sum(p.stat().st_size for p in paths.values()) / 2**20
        grids = windows(args.size, args.window, args.windows)
        km2 = args.windows * (args.window * 10 / 1000) ** 2
        out_mb = args.windows * args.window**2 * len(BANDS) * 4 / 2**20  # float32 reflectance delivered
        rows = []
        local = {b: str(p) for b, p in paths.items()}
        with RangeServer(tmp) as server:
            http = {b: server.url(p.name) for b, p in paths.items()}
            cases = [
                ("local COG, windowed (read_window)", lambda: windowed(scene_for(local), grids)),
                ("local COG, whole band then crop (naive)", lambda: whole_then_crop(local, grids)),
                ("HTTP range, windowed (read_window)", lambda: windowed(scene_for(http), grids)),
                ("HTTP, whole band then crop (naive)", lambda: whole_then_crop(http, grids)),
            ]
            for name, fn in cases:
                server.clear()
                m = measure(fn, repeat=args.repeat, warmup=0, sample_during=True)  # bytes counted per call
                sent = server.bytes_sent / args.repeat / 2**20 if name.startswith("HTTP") else None
                rows.append(
                    [
                        name,
                        f"{m.seconds / args.windows * 1000:.0f}",
                        f"{km2 / m.seconds:.0f}",
                        f"{out_mb / m.seconds:.0f}",
                        "" if sent is None else f"{sent:.1f}",
                        f"{m.peak_rss_mb:.0f} (+{m.rss_growth_mb:.0f})",
                    ]
                )
    print(f"machine: {machine()}")
    print(
        f"COGs: 4 bands × {args.size}² px uint16 ({file_mb:.0f} MB on disk) from {origin}; "
        f"{args.windows} windows of {args.window}² px ({km2 / args.windows:.0f} km² each), "
        f"median of {args.repeat}\n"
    )
    headers = ["reader", "ms / window", "km²/s", "MB/s out", "MB over HTTP", "peak RSS MB (+growth)"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
