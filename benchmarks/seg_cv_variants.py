"""Inference-only variants of the segmentation model's cross-validation, from folds already trained
(``harborwatch train ships-seg``): no retraining, the shipped detector settings (every model band the scene
has, water check on), each fold's threshold chosen again on its own two inner cities.

- ``--cv-dir A`` alone: the run as trained (should repeat ``benchmarks/ship_cv_seg.py``'s ``default`` row);
- ``--cv-dir A --cv-dir B``: a snapshot ensemble, the hull and core probabilities of A's and B's fold models
  averaged (e.g. the 1,200-step and 2,400-step snapshots of one warm-restart run);
- ``--average-weights``: the fold models' weights averaged instead (one network, no extra inference time);
- every variant is scored with the threshold grid of training (0.3 … 0.95) and with a finer top end
  (… 0.96, 0.97, 0.98, 0.985, 0.99, 0.995), because the score saturates near 1.

    python benchmarks/seg_cv_variants.py --cv-dir RUNS/cvC [--cv-dir RUNS/cvB] [--average-weights]
        [--folds 0,1] [--data SEN2SHIPS_TRAINVAL] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detect.ships.segment import SegModel, SegSpec, UNet  # noqa: E402
from detect.ships.segment_train import (  # noqa: E402
    THRESHOLDS,
    VARIANTS,
    best_threshold,
    detect_cities,
    fold_plan,
    pool,
    prepare,
    scene_record,
)

FINE = tuple(sorted(set(THRESHOLDS) | {0.96, 0.97, 0.98, 0.985, 0.99, 0.995}))
GRIDS = {"training grid (0.3-0.95)": THRESHOLDS, "finer top (to 0.995)": FINE}


class EnsembleModel(SegModel):
    """Several networks of one architecture; probabilities averaged."""

    def __init__(self, nets: list[UNet], spec: SegSpec) -> None:
        super().__init__(nets[0], spec)
        self.nets = [n.eval() for n in nets]

    @torch.no_grad()
    def _forward(self, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        return torch.stack([torch.sigmoid(n(t))[0] for n in self.nets]).mean(0).numpy()


def load_net(path: Path, base: int) -> UNet:
    net = UNet(base=base)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


def average_weights(paths: list[Path], base: int) -> UNet:
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    avg = {k: (sum(s[k].float() for s in states) / len(states)).to(states[0][k].dtype) for k in states[0]}
    net = UNet(base=base)
    net.load_state_dict(avg)
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cv-dir", action="append", required=True, type=Path)
    ap.add_argument("--average-weights", action="store_true")
    ap.add_argument("--folds", default="0,1,2,3,4")
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    from detect.core.data import data_path
    from detect.ships.evaluate import load_coco_truth
    from imagery.errors import InputError

    torch.set_num_threads(a.threads)
    try:
        data = data_path("sen2ships", a.data)
    except InputError as e:
        sys.exit(f"seg_cv_variants: {e}")
    cities = prepare(data, a.cv_dir[0] / "scenes")
    plan = fold_plan(cities, 5)
    truth = load_coco_truth(data / "annotations_coco.json", data, cities)
    spec = SegSpec(name="variant", base=a.base)
    held: dict[str, list[dict]] = {g: [] for g in GRIDS}
    for f in (int(x) for x in a.folds.split(",")):
        paths = [d / f"fold{f}" / "model.pt" for d in a.cv_dir]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            sys.exit(f"seg_cv_variants: fold {f} not trained: {', '.join(missing)}")
        nets = [average_weights(paths, a.base)] if a.average_weights else [load_net(p, a.base) for p in paths]
        t0 = time.perf_counter()
        scored = plan[f]["inner"] + plan[f]["held_out"]
        found = detect_cities(EnsembleModel(nets, spec), data, scored, VARIANTS["default"], truth)
        for g, grid in GRIDS.items():
            inner = [c for c in plan[f]["inner"] if c in found]
            th, _ = best_threshold({t: [scene_record(*found[c], t) for c in inner] for t in grid})
            recs = [scene_record(*found[c], th) for c in plan[f]["held_out"] if c in found]
            held[g].extend(recs)
            s = pool(recs)
            print(
                f"fold {f} | {g} | threshold {th} | P {s['precision']} R {s['recall']} F1 {s['f1']} "
                f"| {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    what = " + ".join(d.name for d in a.cv_dir) + (" (weights averaged)" if a.average_weights else "")
    head = "| P | R | F1 | AP50 | R < 80 m | R 80–150 m | R > 150 m | length MAE |"
    print(f"\n| {what} | threshold grid {head}")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for g in GRIDS:
        s = pool(held[g])
        cols = ("precision", "recall", "f1", "ap50", "recall_0_80m", "recall_80_150m", "recall_150_upm")
        vals = " | ".join(str(s[k]) for k in cols)
        print(f"| folds {a.folds} | {g} | {vals} | {s['length_mae_m']} m |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
