"""CPU ship-detection speed on a 1000 × 1000 px 4-band scene: the default ``auto`` detector, the
hull-segmentation models (``seg-b4``, ``seg-ens`` = both averaged, and ``seg``: on onnxruntime where
installed, and on torch), the sliced, batched,
land-skipping YOLO ``ShipDetector`` (and with flip TTA) against a naive tile-by-tile loop,
plus the classical baseline.

    python benchmarks/detect_speed.py [--data SEN2SHIPS] [--model NAME] [--threads 2] [--repeat 5]
    python benchmarks/detect_speed.py --scene PATH | --mirrored-chip

The scene is the middle 1000 × 1000 px of sen2ships Valencia (``--data`` or ``$HARBORWATCH_DATA``; see
docs/data.md), or ``--scene PATH``, or (only when asked, ``--mirrored-chip``) the committed test chip
mirrored to size; without any of them the benchmark stops and says so.

Uses the shipped weights when present; otherwise an untrained model of the same architecture
(yolo11n-obb, 4 channels, 256 px; same compute, so the timing holds) and says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from affine import Affine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detect.core.bands import RGBN, default_normalisation, to_model_input  # noqa: E402
from detect.core.slicing import make_tiles, merge_boxes, predict_tiles  # noqa: E402
from detect.core.water import water_mask  # noqa: E402
from detect.core.weights import ModelSpec, resolve_weights  # noqa: E402
from detect.ships.baseline import BaselineDetector  # noqa: E402
from detect.ships.model import YoloModel, untrained_checkpoint  # noqa: E402
from detect.ships.yolo import ShipDetector  # noqa: E402
from imagery.read import open_raster  # noqa: E402
from imagery.types import Grid, RasterWindow  # noqa: E402

CHIP = REPO / "tests" / "fixtures" / "chips" / "honolulu_chip.tif"
SIZE = 1000


def scene_window(path: Path | None, data: str | None, mirrored: bool) -> tuple[RasterWindow, str]:
    """A 1000 × 1000 4-band window of a real port scene, or the test chip mirrored when asked for."""
    bands = ["B02", "B03", "B04", "B08"]
    src = path
    if src is None and not mirrored:
        from detect.core.data import data_path
        from imagery.errors import InputError

        try:
            src = data_path("sen2ships", data) / "valencia"
        except InputError as e:
            sys.exit(f"detect_speed: {e}; or time --scene PATH, or the test chip with --mirrored-chip")
    if src is not None:
        # sen2ships is reflectance × 65535; the per-file guess reads dark Valencia as × 1e-4 DN.
        w = open_raster(src, bands, scale=1 / 65535 if path is None else None)
        h0, w0 = max(0, (w.grid.height - SIZE) // 2), max(0, (w.grid.width - SIZE) // 2)
        data = w.data[:, h0 : h0 + SIZE, w0 : w0 + SIZE]
        if data.shape[1:] == (SIZE, SIZE):
            t = w.grid.transform @ Affine.translation(w0, h0)
            return RasterWindow(
                data, w.band_names, Grid(w.grid.crs, t, SIZE, SIZE), scene_id=w.scene_id
            ), str(src)
    w = open_raster(CHIP, bands)
    reps = -(-SIZE // w.grid.width)
    tiled = np.concatenate([np.concatenate([w.data, w.data[:, :, ::-1]] * reps, axis=2)] * reps, axis=1)
    tiled = np.concatenate([tiled, tiled[:, ::-1]], axis=1)[:, :SIZE, :SIZE]
    grid = Grid(w.grid.crs, w.grid.transform, SIZE, SIZE)
    return RasterWindow(np.ascontiguousarray(tiled), w.band_names, grid, scene_id="chip-mirrored"), str(CHIP)


def load_model(name: str) -> tuple[YoloModel, str]:
    pt, _ = resolve_weights(name)
    if pt.is_file():
        return YoloModel.load(name), f"{name} ({pt})"
    tmp = Path(tempfile.mkdtemp()) / "untrained.pt"
    untrained_checkpoint(tmp, channels=4)
    spec = ModelSpec("untrained", "obb", RGBN, 256, 10.0, default_normalisation(RGBN))
    return YoloModel(spec, tmp), "untrained yolo11n-obb, 4 channels, 256 px (no weights yet: timing only)"


def timed(fn, repeat: int) -> tuple[float, object]:
    fn()  # warm-up (first call builds the predictor)
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def naive(model: YoloModel, window: RasterWindow, conf: float, overlap: int) -> int:
    """Every tile, one at a time, no land skipping: the loop the sliced detector replaces."""
    spec = model.spec
    image = to_model_input(window, spec)
    tiles = make_tiles(image.shape[:2], spec.imgsz, overlap)
    boxes, trunc = predict_tiles(model, image, tiles, spec.imgsz, conf=conf, batch_size=1)
    return len(merge_boxes(boxes, trunc))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ships-s2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--scene", type=Path, default=None)
    ap.add_argument("--data", default=None, help="sen2ships trainval folder (default $HARBORWATCH_DATA/...).")
    ap.add_argument("--mirrored-chip", action="store_true", help="Time the committed test chip, mirrored.")
    ap.add_argument("--tile", type=int, default=None, help="Tile size in px (default: the model's imgsz).")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch  # only to pin the thread count the target is stated for

    window, source = scene_window(args.scene, args.data, args.mirrored_chip)
    model, model_desc = load_model(args.model)
    if args.tile and args.tile != model.spec.imgsz:
        # A fully convolutional model runs at any multiple of 32 px at the same ground sampling.
        model = YoloModel(dataclasses.replace(model.spec, imgsz=args.tile), model.weights)
        model_desc += f", run on {args.tile} px tiles"
    det = ShipDetector(model, batch_size=args.batch_size)
    det.detect(window)
    # ultralytics pins torch to cpu_count - 1 threads when its predictor starts (1 on a 2-core box).
    torch.set_num_threads(args.threads)
    spec = model.spec
    all_tiles = len(make_tiles(window.grid.shape, spec.imgsz, det.overlap))
    wm = water_mask(window)
    run_tiles = len(make_tiles(window.grid.shape, spec.imgsz, det.overlap, keep=window.valid_mask & wm.mask))

    rows = {}
    from detect.ships.auto import AutoShipDetector
    from detect.ships.segment import SegShipDetector

    seg = SegShipDetector()
    seg.detect(window)
    auto = AutoShipDetector()
    auto.detect(window)  # its model loads here (a YOLO predictor would pin torch's threads again)
    torch.set_num_threads(args.threads)
    rows[f"default auto (--method auto: {auto.choose(window)} on 4 bands)"] = timed(
        lambda: len(auto.detect(window)), args.repeat
    )
    from detect.ships.segment import B4_SEG_MODEL, ENSEMBLE_SEG_MODEL

    for method, weights in (("seg-b4", B4_SEG_MODEL), ("seg-ens", ENSEMBLE_SEG_MODEL)):
        other = SegShipDetector(weights)
        other.detect(window)
        torch.set_num_threads(args.threads)
        rows[f"{method} (--method {method}, {other.model.runtime})"] = timed(
            lambda d=other: len(d.detect(window)), args.repeat
        )
    rows[f"seg, water skipping (--method seg, {seg.model.runtime})"] = timed(
        lambda: len(seg.detect(window)), args.repeat
    )
    l1c = dataclasses.replace(window, processing_level="L1C")  # the same pixels, called L1C
    rows[f"seg on an L1C window (dark subtraction, {seg.model.runtime})"] = timed(
        lambda: len(seg.detect(l1c)), args.repeat
    )
    b08 = RasterWindow(window.select(("B08",)), ("B08",), window.grid, scene_id=window.scene_id)
    rows[f"seg on B08 only (no water mask, {seg.model.runtime})"] = timed(
        lambda: len(seg.detect(b08)), args.repeat
    )
    from detect.ships.segment import SegModel

    seg_torch = SegShipDetector(SegModel.load(runtime="torch"))
    rows["seg, water skipping, on torch"] = timed(lambda: len(seg_torch.detect(window)), args.repeat)
    rows["sliced+batched+water (ShipDetector.detect)"] = timed(lambda: len(det.detect(window)), args.repeat)
    rows["  of which water mask"] = timed(lambda: water_mask(window), args.repeat)
    rows["  of which to_model_input"] = timed(lambda: to_model_input(window, spec), args.repeat)
    rows["sliced+batched, no water skipping"] = timed(
        lambda: len(ShipDetector(model, water_mask=False, batch_size=args.batch_size).detect(window)),
        args.repeat,
    )
    tta = ShipDetector(model, batch_size=args.batch_size, tta=True)
    tta.detect(window)
    rows["flip TTA (--method yolo-tta)"] = timed(lambda: len(tta.detect(window)), args.repeat)
    rows["naive tile-by-tile (batch 1, all tiles)"] = timed(
        lambda: naive(model, window, det.conf, det.overlap), args.repeat
    )
    rows["baseline CFAR (BaselineDetector.detect)"] = timed(
        lambda: len(BaselineDetector().detect(window)), args.repeat
    )

    result = {
        "scene": source,
        "window_px": list(window.grid.shape),
        "model": model_desc,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "tiles_all": all_tiles,
        "tiles_run": run_tiles,
        "water_fraction": round(wm.water_fraction, 3),
        "seconds": {k.strip(): round(v[0], 3) for k, v in rows.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"scene {source}: {SIZE}×{SIZE} px, 4 bands; model {model_desc}")
    print(
        f"torch threads {result['torch_threads']}; tiles {run_tiles} of {all_tiles} run "
        f"(water {result['water_fraction']:.0%}); median of {args.repeat}"
    )
    for name, (sec, n) in rows.items():
        extra = f"  ({n} detections)" if isinstance(n, int) else ""
        print(f"{name:<44}{sec:>8.3f} s{extra}")


if __name__ == "__main__":
    main()
