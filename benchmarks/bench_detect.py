"""Detection throughput (km²/s, chips/s, peak memory) of the ship detector's execution paths against the
naive tile-by-tile loop, measured in the same run, and their accuracy on the labelled test chips so a
faster path can never silently cost accuracy.

    nice python benchmarks/bench_detect.py [--repeat 3] [--scenes 4] [--no-onnx]

CPU rows always; GPU rows (fp32, fp16, cross-scene batches) when ``torch.cuda.is_available()``. The
window is the 1000 × 1000 px (100 km²) crop of ``benchmarks/detect_speed.py``. km²/s counts the whole
window's area, so skipping land tiles counts as speed (that is what a user gets).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from _measure import machine, measure, table  # noqa: E402
from detect_speed import naive, scene_window  # noqa: E402

from detect.core.slicing import make_tiles  # noqa: E402
from detect.core.water import water_mask  # noqa: E402
from detect.pipeline.gpu import BatchingPredictor  # noqa: E402
from detect.ships.model import YoloModel, export_onnx  # noqa: E402
from detect.ships.yolo import ShipDetector  # noqa: E402

CHIPS = REPO / "tests" / "fixtures" / "chips"


def concurrent(detector: ShipDetector, windows: list[Any]) -> int:
    """Each window in its own thread, all meeting in the detector's BatchingPredictor."""
    counts = [0] * len(windows)

    def one(i: int) -> None:
        counts[i] = len(detector.detect(windows[i]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(windows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def accuracy(detector: ShipDetector) -> dict[str, float]:
    from detect.ships.evaluate import evaluate

    rep = evaluate(detector, CHIPS, CHIPS / "annotations.json")
    o = rep.overall
    return {"P": o.precision, "R": o.recall, "F1": o.f1, "AP50": o.ap50, "pred": o.n_pred, "truth": o.n_truth}


def agreement(ref: list[Any], got: list[Any]) -> float:
    """Share of the reference detections with a partner of IoU >= 0.9 and |Δscore| <= 0.02."""
    if not ref:
        return 1.0
    hit = 0
    for a in ref:
        best = max(
            ((a.polygon.intersection(b.polygon).area / a.polygon.union(b.polygon).area, b) for b in got),
            default=(0.0, None),
            key=lambda t: t[0],
        )
        hit += best[0] >= 0.9 and abs(best[1].score - a.score) <= 0.02
    return hit / len(ref)


def cv_table() -> str:
    card = (REPO / "weights" / "ships-s2.md").read_text()
    if "__CV_TABLE__" in card or "| fold" not in card:
        return "(the model card's cross-validation table is not filled in yet: run benchmarks/ship_cv.py)"
    lines = card.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| detector | fold")), None)
    if start is None:
        return "(no '| detector | fold' table in weights/ships-s2.md: run benchmarks/ship_cv.py --markdown)"
    end = next((j for j in range(start, len(lines)) if not lines[j].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scenes", type=int, default=4, help="windows detected concurrently in batched rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-onnx", action="store_true")
    args = ap.parse_args()

    import torch

    window, source = scene_window(None)
    km2 = window.grid.width * window.grid.height * 1e-4
    model = YoloModel.load("ships-s2")
    spec = model.spec
    ShipDetector(model).detect(window)  # starts ultralytics' predictor, which pins torch threads
    torch.set_num_threads(args.threads)
    wm = water_mask(window)
    tiles_all = len(make_tiles(window.grid.shape, spec.imgsz, 48))
    tiles_water = len(make_tiles(window.grid.shape, spec.imgsz, 48, keep=window.valid_mask & wm.mask))

    paths: dict[str, tuple[ShipDetector | None, Any, int]] = {}  # name → (detector, call, chips per call)
    paths["naive: tile by tile, batch 1, every tile (torch)"] = (
        None, lambda: naive(model, window, 0.25, 48), tiles_all,
    )  # fmt: skip
    for bs in (16, 64):
        det = ShipDetector(model, batch_size=bs)
        call = lambda d=det: len(d.detect(window))  # noqa: E731
        paths[f"sliced, batch {bs}, land skipped (torch)"] = (det, call, tiles_water)
    det = ShipDetector(model, water_mask=False)
    paths["sliced, batch 16, every tile (torch)"] = (det, lambda d=det: len(d.detect(window)), tiles_all)
    onnx_dir = tempfile.mkdtemp(prefix="bench-onnx-")
    if not args.no_onnx:
        from detect.ships.onnx_runtime import OnnxYoloModel

        onnx = OnnxYoloModel.load(export_onnx("ships-s2", Path(onnx_dir) / "ships-s2.onnx"))
        for water in (True, False):
            det = ShipDetector(onnx, water_mask=water, batch_size=64)
            name = f"sliced, batch 64, {'land skipped' if water else 'every tile'} (onnxruntime)"
            paths[name] = (det, lambda d=det: len(d.detect(window)), tiles_water if water else tiles_all)
    windows = [window] * args.scenes
    bp_cpu = BatchingPredictor(model, max_batch=256)
    det = ShipDetector(bp_cpu, batch_size=64)
    paths[f"{args.scenes} scenes at once, cross-scene batches (torch)"] = (
        det, lambda d=det: concurrent(d, windows) // args.scenes, tiles_water * args.scenes,
    )  # fmt: skip
    gpu = torch.cuda.is_available()
    if gpu:
        g32 = YoloModel.load("ships-s2", device="cuda:0")
        det = ShipDetector(g32, batch_size=64, device="cuda:0")
        paths["GPU fp32, batch 64, land skipped"] = (det, lambda d=det: len(d.detect(window)), tiles_water)
        bp = BatchingPredictor(g32, max_batch=512, half=True)
        det = ShipDetector(bp, batch_size=128, device="cuda:0")
        paths[f"GPU fp16, {args.scenes * 4} scenes at once, cross-scene batches"] = (
            det, lambda d=det: concurrent(d, windows * 4) // (args.scenes * 4), tiles_water * args.scenes * 4,
        )  # fmt: skip

    rows, results = [], {}
    base_s = None
    for name, (det, call, chips) in paths.items():
        torch.set_num_threads(args.threads)  # ultralytics re-pins it (cores - 1) when a predictor starts
        m = measure(call, repeat=args.repeat)
        n_windows = chips / (tiles_water if "land skipped" in name or "scenes" in name else tiles_all)
        per_window = m.seconds / max(n_windows, 1)
        base_s = base_s or per_window
        rows.append([
            name, f"{per_window:.3f}", f"{km2 / per_window:.0f}", f"{chips / m.seconds:.0f}",
            f"{base_s / per_window:.1f}×", f"{m.peak_rss_mb:.0f}", m.value,
        ])  # fmt: skip
        if det is not None:
            results[name] = det

    print(f"machine: {machine()}; torch threads {torch.get_num_threads()}")
    print(
        f"window: {source}, {window.grid.width}×{window.grid.height} px = {km2:.0f} km², water "
        f"{wm.water_fraction:.0%}; tiles {spec.imgsz} px: {tiles_all} in all, {tiles_water} with water; "
        f"median of {args.repeat}\n"
    )
    headers = ["path", "s / window", "km²/s", "chips/s", "vs naive", "peak RSS MB", "detections"]
    print(table(headers, rows))

    print("\naccuracy on the labelled test chips (tests/fixtures/chips: Honolulu 12 vessels + open sea)")
    ref_name = "sliced, batch 16, land skipped (torch)"
    ref_dets = results[ref_name].detect(window)
    acc_rows = []
    for name, det in results.items():
        a = accuracy(det)
        agree = agreement(ref_dets, det.detect(window)) if "scenes" not in name else float("nan")
        acc_rows.append([
            name, f"{a['P']:.3f}", f"{a['R']:.3f}", f"{a['F1']:.3f}", f"{a['AP50']:.3f}",
            f"{a['pred']}/{a['truth']}", "ref" if name == ref_name else f"{agree:.3f}",
        ])  # fmt: skip
    print(table(["path", "P", "R", "F1", "AP50", "pred/truth", "agrees with ref on the window"], acc_rows))
    bp_cpu.close()
    print("\nmodel card cross-validation (weights/ships-s2.md):\n" + cv_table())
    if not gpu:
        print("\nno CUDA device here: GPU rows not measured")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
