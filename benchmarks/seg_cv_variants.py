"""Inference-only variants of the segmentation model's cross-validation, from folds already trained
(``harborwatch train ships-seg``): no retraining, the shipped detector settings (every model band the scene
has, water check on), each fold's threshold chosen again on its own two inner cities.

- ``--cv-dir A`` alone: the run as trained (should repeat ``benchmarks/ship_cv_seg.py``'s ``default`` row);
- ``--cv-dir A --cv-dir B``: an ensemble, the hull and core probabilities of A's and B's fold models averaged
  (e.g. the 1,200-step and 2,400-step snapshots of one warm-restart run, or two architectures: the plain U-Net
  and the pretrained-encoder network, each rebuilt from its weights);
- ``--average-weights``: the fold models' weights averaged instead (one network, no extra inference time);
- ``--views 2|4|8``: test-time augmentation, probabilities averaged over the identity and its transpose (2),
  the four flips (4) or all eight rotations and flips (8) of every tile, at that many times the inference;
- every variant is scored with the threshold grid of training (0.3 … 0.95) and with a finer top end
  (… 0.96, 0.97, 0.98, 0.985, 0.99, 0.995), because the score saturates near 1.

    python benchmarks/seg_cv_variants.py --cv-dir RUNS/cvC [--cv-dir RUNS/cvB] [--average-weights]
        [--views 4] [--folds 0,1] [--data SEN2SHIPS_TRAINVAL] [--threads 1]

    python benchmarks/seg_cv_variants.py --cv-dir B4_RUN --cv-dir V7_RUN   # the two shipped recipes averaged
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

from detect.ships.segment import SegEnsemble, SegModel, SegSpec, network_for  # noqa: E402
from detect.ships.segment_train import (  # noqa: E402
    THRESHOLDS,
    VARIANTS,
    average_states,
    best_threshold,
    detect_cities,
    pool,
    scene_record,
)

FINE = tuple(sorted(set(THRESHOLDS) | {0.96, 0.97, 0.98, 0.985, 0.99, 0.995}))
GRIDS = {"training grid (0.3-0.95)": THRESHOLDS, "finer top (to 0.995)": FINE}


#: Test-time views (mirror columns, mirror rows, transpose) by ``--views``.
VIEWS = {
    1: ((False, False, False),),
    2: ((False, False, False), (False, False, True)),
    4: ((False, False, False), (True, False, False), (False, True, False), (True, True, False)),
    8: tuple((c, r, t) for c in (False, True) for r in (False, True) for t in (False, True)),
}


def to_view(a: torch.Tensor, view: tuple[bool, bool, bool]) -> torch.Tensor:
    """(…, H, W) tensor seen in ``view``: columns mirrored, rows mirrored, then transposed."""
    cols, rows, transpose = view
    if cols:
        a = a.flip(-1)
    if rows:
        a = a.flip(-2)
    return a.transpose(-1, -2) if transpose else a


def from_view(a: torch.Tensor, view: tuple[bool, bool, bool]) -> torch.Tensor:
    """Undo ``to_view`` (transpose first, then the mirrors)."""
    cols, rows, transpose = view
    if transpose:
        a = a.transpose(-1, -2)
    if rows:
        a = a.flip(-2)
    return a.flip(-1) if cols else a


class ViewsModel(SegModel):
    """One network run on every test-time view of each tile, its probabilities averaged over the views
    (several networks: a ``SegEnsemble`` of these)."""

    def __init__(self, net: torch.nn.Module, spec: SegSpec, views: int = 1) -> None:
        super().__init__(net, spec)
        self.views = VIEWS[views]

    @torch.no_grad()
    def _forward(self, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        probs = [from_view(torch.sigmoid(self.net(to_view(t, v)))[0], v) for v in self.views]
        return torch.stack(probs).mean(0).numpy()


def average_weights(paths: list[Path]) -> torch.nn.Module:
    """The runs' weights averaged as they are (batch-norm statistics too, not re-estimated; for that see
    ``harborwatch train ships-seg --average-cycles`` and ``benchmarks/seg_cv_rescore.py``); one network
    architecture."""
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    if len({tuple(s) for s in states}) > 1:
        sys.exit("seg_cv_variants: --average-weights needs runs of one architecture")
    net = network_for(states[0])
    net.load_state_dict(average_states(states))
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cv-dir", action="append", required=True, type=Path)
    ap.add_argument("--average-weights", action="store_true")
    ap.add_argument("--views", type=int, choices=sorted(VIEWS), default=1, help="test-time views per tile")
    ap.add_argument("--folds", default="0,1,2,3,4")
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--spec-out",
        type=Path,
        help="write an ensemble spec (weights/<name>.json) of the shipped --members, with the folds' median "
        "threshold (training grid) and this CV as its metrics",
    )
    ap.add_argument("--members", help="comma-separated weights names, one per --cv-dir, in the same order")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        choices=[v for v in VARIANTS if v != "default"],
        help="also score the held-out cities with this input (e.g. B08, rgb, rgb8) at each fold's threshold "
        "(training grid), as training's result.json does",
    )
    a = ap.parse_args(argv)
    if a.spec_out and (not a.members or len(a.members.split(",")) != len(a.cv_dir) or a.average_weights):
        sys.exit("seg_cv_variants: --spec-out needs --members naming one weights per --cv-dir (no averaging)")
    from _seg_cv import cv_inputs, fold_model

    data, plan, truth = cv_inputs("seg_cv_variants", a.data, a.cv_dir[0] / "scenes", a.threads)
    spec = SegSpec(name="variant")
    held: dict[str, list[dict]] = {g: [] for g in GRIDS}
    by_input: dict[str, list[dict]] = {v: [] for v in a.variant}
    thresholds: dict[str, dict[str, float]] = {g: {} for g in GRIDS}
    per_fold: dict[str, dict[str, float]] = {g: {} for g in GRIDS}
    for f in (int(x) for x in a.folds.split(",")):
        paths = [d / f"fold{f}" / "model.pt" for d in a.cv_dir]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            sys.exit(f"seg_cv_variants: fold {f} not trained: {', '.join(missing)}")
        nets = [average_weights(paths)] if a.average_weights else [fold_model(d, f).net for d in a.cv_dir]
        t0 = time.perf_counter()
        scored = plan[f]["inner"] + plan[f]["held_out"]
        model = SegEnsemble([ViewsModel(n, spec, a.views) for n in nets], spec)
        found = detect_cities(model, data, scored, VARIANTS["default"], truth)
        for g, grid in GRIDS.items():
            inner = [c for c in plan[f]["inner"] if c in found]
            th, _ = best_threshold({t: [scene_record(*found[c], t) for c in inner] for t in grid})
            recs = [scene_record(*found[c], th) for c in plan[f]["held_out"] if c in found]
            held[g].extend(recs)
            s = pool(recs)
            thresholds[g][f"fold{f}"], per_fold[g][f"fold{f}"] = th, s["f1"]
            if g == next(iter(GRIDS)):
                for v in a.variant:
                    seen = detect_cities(model, data, plan[f]["held_out"], VARIANTS[v], truth)
                    by_input[v].extend(scene_record(*seen[c], th) for c in plan[f]["held_out"] if c in seen)
            print(
                f"fold {f} | {g} | threshold {th} | P {s['precision']} R {s['recall']} F1 {s['f1']} "
                f"| {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    what = " + ".join(d.name for d in a.cv_dir) + (" (weights averaged)" if a.average_weights else "")
    what += f", {a.views} views" if a.views > 1 else ""
    head = "| P | R | F1 | AP50 | `ap_count` | `f1_best` | R < 80 m | R 80–150 m | R > 150 m | length MAE |"
    print(f"\n| {what} | threshold grid {head}")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    cols = ("precision", "recall", "f1", "ap50", "ap_count", "f1_best")
    cols += ("recall_0_80m", "recall_80_150m", "recall_150_upm")
    for g in GRIDS:
        s = pool(held[g])
        vals = " | ".join(str(s.get(k)) for k in cols)
        print(f"| folds {a.folds} | {g} | {vals} | {s['length_mae_m']} m |")
        print(f"  per-fold F1 {per_fold[g]}; thresholds {thresholds[g]}")
    for v, recs in by_input.items():
        s = pool(recs)
        vals = " | ".join(str(s.get(k)) for k in cols)
        print(f"| input {v} ({s['n_truth']} ships) | training grid | {vals} | {s['length_mae_m']} m |")
    if a.spec_out:
        grid = next(iter(GRIDS))  # the training grid, as training chooses its thresholds
        path = write_ensemble_spec(
            a.spec_out,
            a.members.split(","),
            thresholds[grid],
            pool(held[grid]),
            {
                "protocol": "leave-cities-out 5-fold CV on sen2ships trainval, whole held-out scenes, match "
                "IoU >= 0.1 or centres <= 30 m; the members' fold models' probabilities averaged; each "
                "fold's threshold chosen on 2 of its training cities held out of its training",
                "runs": [str(d) for d in a.cv_dir],
                "per_fold_f1": per_fold[grid],
                "thresholds": thresholds[grid],
                "by_input": {"default": pool(held[grid]), **{v: pool(r) for v, r in by_input.items()}},
            },
        )
        print(f"wrote {path}")
    return 0


def write_ensemble_spec(
    out: Path, members: list[str], thresholds: dict[str, float], pooled: dict, cv: dict
) -> Path:
    """The ensemble's spec: the members' sha256 (from their shipped specs), the median of the folds'
    thresholds, the members' shared input settings, and this CV as its metrics."""
    import statistics
    from dataclasses import replace

    from detect.core.weights import resolve_weights
    from detect.ships.segment import ensemble_digest

    specs = [SegSpec.read(resolve_weights(m)[1]) for m in members]
    if any(s.members or s.dark_reference != specs[0].dark_reference for s in specs):
        sys.exit("seg_cv_variants: members must be single models with one dark_reference")
    spec = SegSpec(
        name=out.stem,
        threshold=float(statistics.median(thresholds.values())),
        dark_reference=specs[0].dark_reference,
        members={m: s.sha256 for m, s in zip(members, specs, strict=True)},
        metrics={"cv": {**cv, "pooled": pooled}},
    )
    return replace(spec, sha256=ensemble_digest(spec)).write(out)


if __name__ == "__main__":
    raise SystemExit(main())
