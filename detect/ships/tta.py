"""Test-time augmentation for the chip predictor: the four flips of every chip, boxes mapped back and
fused.

Ships have no preferred orientation in a nadir image, so a model's mistakes under a flip are partly
independent; averaging the four views' scores lifts the ships all views see above the clutter only
some see. Fusion per chip (``fuse``): boxes of all views sorted by score; each unclaimed box claims
the best overlapping box (rotated IoU > ``fuse_iou``) of each other view; the cluster keeps its best
box's geometry and the mean score over the four views (a view that missed the ship adds 0). Four
times the model's compute.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from detect.core.slicing import CX, CY, SCORE, THETA, Predictor, rotated_corners

#: (mirror columns, mirror rows) for each view.
FLIPS: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (False, True), (True, True))


def unflip(boxes: np.ndarray, width: int, height: int, cols: bool, rows: bool) -> np.ndarray:
    """Boxes predicted on a mirrored chip → boxes on the chip itself (a mirror negates the angle)."""
    out = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, 7)
    if cols:
        out[:, CX] = width - out[:, CX]
        out[:, THETA] = -out[:, THETA]
    if rows:
        out[:, CY] = height - out[:, CY]
        out[:, THETA] = -out[:, THETA]
    return out


def fuse(views: Sequence[np.ndarray], conf: float, fuse_iou: float = 0.3) -> np.ndarray:
    """Boxes of one chip from each view → one box per object, with the mean score over the views.

    Boxes are visited by score; an unclaimed box opens a cluster and claims the best unclaimed box of
    every *other* view that overlaps it (rotated IoU > ``fuse_iou``), so two ships a view told apart
    stay apart. The cluster keeps its best box's geometry; its score is the sum of its boxes' scores
    (at most one per view) over the number of views.
    """
    parts = [np.asarray(v, dtype=np.float32).reshape(-1, 7) for v in views]
    boxes = np.concatenate(parts) if parts else np.zeros((0, 7), np.float32)
    if len(boxes) == 0:
        return boxes
    view = np.concatenate([np.full(len(p), k) for k, p in enumerate(parts)])
    order = np.argsort(-boxes[:, SCORE], kind="stable")
    boxes, view = boxes[order], view[order]
    polys = shapely.polygons(rotated_corners(boxes))
    areas = shapely.area(polys)
    claimed = np.zeros(len(boxes), bool)
    kept = []
    for i in range(len(boxes)):
        if claimed[i]:
            continue
        claimed[i] = True
        inter = shapely.area(shapely.intersection(polys[i], polys))
        iou = inter / np.maximum(areas[i] + areas - inter, 1e-9)
        total = float(boxes[i, SCORE])
        for k in range(len(parts)):
            if k == view[i]:
                continue
            cand = np.flatnonzero(~claimed & (view == k) & (iou > fuse_iou))
            if cand.size:  # boxes are in score order: the first is the view's best
                claimed[cand[0]] = True
                total += float(boxes[cand[0], SCORE])
        best = boxes[i].copy()
        best[SCORE] = total / len(parts)
        if best[SCORE] >= conf:
            kept.append(best)
    return np.array(kept, dtype=np.float32).reshape(-1, 7)


class FlipTTA:
    """A ``Predictor`` that runs ``model`` on the four flips of each chip and fuses the boxes.

    Each view is run at half the requested threshold, so a ship one view scores just under it still
    adds to the mean; the fused score is then held to ``conf``.
    """

    def __init__(self, model: Predictor, fuse_iou: float = 0.3) -> None:
        self.model = model
        self.fuse_iou = fuse_iou
        self.spec = getattr(model, "spec", None)

    def predict(
        self, chips: np.ndarray, conf: float = 0.25, iou: float = 0.5, half: bool = False
    ) -> list[np.ndarray]:
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        height, width = chips.shape[1:3]
        per_chip: list[list[np.ndarray]] = [[] for _ in range(len(chips))]
        for cols, rows in FLIPS:
            view = chips[:, ::-1] if rows else chips
            view = view[:, :, ::-1] if cols else view
            preds = self.model.predict(np.ascontiguousarray(view), conf=conf / 2, iou=iou, half=half)
            for k, p in enumerate(preds):
                per_chip[k].append(unflip(p, width, height, cols, rows))
        return [fuse(v, conf, self.fuse_iou) for v in per_chip]
