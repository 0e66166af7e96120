"""End-to-end throughput (scenes/hour, km²/s, peak memory of the whole process tree): `harborwatch batch`
on a dask LocalCluster against the single-process `run` on the same scenes, measured in the same run.

    nice python benchmarks/bench_batch.py [--scenes 6] [--px 1000] [--workers 2] [--method yolo]

Scenes are 4-band COGs (B04 B03 B02 B08) made from real Sentinel-2 pixels (sen2ships Valencia from
``--data`` / ``$HARBORWATCH_DATA``, or the bundled sample with ``--sample``), one acquisition per
day, in a local folder read
through the local catalogue: read → cloud screen → detect → per-scene record → daily counts. Each
row starts from an empty output folder (nothing resumed) and includes starting the cluster; the
last row reruns the finished batch (everything skipped).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import transform_bounds

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from _measure import machine, measure, table  # noqa: E402
from bench_read import BANDS, source_pixels  # noqa: E402

from detect import pipeline  # noqa: E402
from detect.pipeline import batch  # noqa: E402
from detect.pipeline.jobs import Job  # noqa: E402

DAY0 = date(2023, 6, 1)


def make_scenes(root: Path, n: int, px: int, data: str | None = None, sample: bool = False) -> str:
    """``n`` daily scenes of ``px``² px; returns the AOI as a lon/lat bbox string inside them."""
    pixels, _ = source_pixels(data, sample)
    transform = Affine(10, 0, 725000, 0, -10, 4375000)
    for i in range(n):
        folder = root / f"scene-{i:02d}"
        folder.mkdir(parents=True)
        rng = np.random.default_rng(i)
        r0 = int(rng.integers(0, max(1, pixels["B04"].shape[0] - px)))
        c0 = int(rng.integers(0, max(1, pixels["B04"].shape[1] - px)))
        stack = np.stack([np.resize(pixels[b][r0:, c0:], (px, px)) for b in BANDS])
        profile = dict(
            driver="COG", width=px, height=px, count=len(BANDS), dtype="uint16", crs="EPSG:32630",
            transform=transform, nodata=0, compress="deflate", blocksize=256,
        )  # fmt: skip
        with rasterio.open(folder / f"scene-{i:02d}.tif", "w", **profile) as dst:
            dst.write(stack)
            for k, b in enumerate(BANDS, start=1):
                dst.set_band_description(k, b)
        when = f"{DAY0 + timedelta(days=i)}T10:30:00Z"
        meta = {"id": f"scene-{i:02d}", "datetime": when, "platform": "sentinel-2", "processing_level": "L2A"}
        (folder / "scene.json").write_text(json.dumps({**meta, "bands": list(BANDS)}))
    w, s, e, n_ = transform_bounds(
        "EPSG:32630", "EPSG:4326", 725000, 4375000 - 10 * px, 725000 + 10 * px, 4375000
    )
    dx, dy = (e - w) * 0.05, (n_ - s) * 0.05
    return f"{w + dx},{s + dy},{e - dx},{n_ - dy}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--px", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--method", default="auto")
    ap.add_argument("--data", default=None, help="sen2ships trainval folder (default $HARBORWATCH_DATA/...).")
    ap.add_argument("--sample", action="store_true", help="Use the bundled sample's pixels instead.")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        aoi = make_scenes(tmp / "scenes", args.scenes, args.px, args.data, args.sample)
        end = DAY0 + timedelta(days=args.scenes - 1)
        job = Job(aoi=aoi, start=DAY0, end=end, source=f"local:{tmp / 'scenes'}", method=args.method)
        km2 = args.scenes * args.px**2 * 1e-4
        runs = iter(range(1000))

        def single() -> int:
            r = pipeline.run(aoi, DAY0, end, out_dir=tmp / f"run-{next(runs)}", source=job.source,
                             method=args.method, progress=False, report=False)  # fmt: skip
            return len(r.detections)

        def batched(workers: int, threads: int, method: str, out: Path | None = None) -> int:
            j = Job(**{**job.__dict__, "method": method})
            r = batch.run_batch(
                [j], out or tmp / f"batch-{next(runs)}", workers=workers, threads_per_worker=threads
            )
            return sum(len(o.result.detections) for o in r.jobs if o.result is not None)

        cases = [
            ("single-process `run` (baseline)", single),
            (
                f"batch, LocalCluster {args.workers} workers × 1 thread",
                lambda: batched(args.workers, 1, args.method),
            ),
            ("batch, LocalCluster 1 worker × 2 threads", lambda: batched(1, 2, args.method)),
        ]
        if args.method == "yolo":
            cases.append(
                (f"batch, {args.workers} workers, onnxruntime (yolo-onnx)",
                 lambda: batched(args.workers, 1, "yolo-onnx"))
            )  # fmt: skip
        done = tmp / "batch-done"
        batched(args.workers, 1, args.method, done)
        cases.append(
            ("batch rerun, everything finished (resume)", lambda: batched(args.workers, 1, args.method, done))
        )
        rows, base = [], None
        for name, fn in cases:
            m = measure(
                fn,
                repeat=1,
                warmup=0 if "resume" in name or "single" not in name else 1,
                sample_during=True,
            )
            base = base or m.seconds
            rows.append([
                name, f"{m.seconds:.1f}", f"{args.scenes / m.seconds * 3600:.0f}", f"{km2 / m.seconds:.1f}",
                f"{base / m.seconds:.2f}×", f"{m.peak_rss_mb:.0f}", m.value,
            ])  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"machine: {machine()}")
    print(
        f"{args.scenes} scenes × {args.px}² px ({args.px**2 * 1e-4:.0f} km² each), 4 bands, local COGs; "
        f"method {args.method}; one run each (cluster start-up included)\n"
    )
    headers = ["path", "wall s", "scenes/hour", "km²/s", "vs run", "peak RSS MB (tree)", "detections"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
