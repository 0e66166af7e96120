"""Sliced inference: cut a window image into overlapping model-sized tiles, predict in batches,
map boxes back to window pixels and merge them across tile seams.

A box is the float row ``[cx, cy, w, h, theta_rad, score, class_id]`` (pixels, the model's format);
after merging each kept box also carries a ``truncated`` flag (touches an inner tile edge).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import shapely

#: Columns of a box row.
CX, CY, W, H, THETA, SCORE, CLS = range(7)


class Predictor(Protocol):
    """What slicing needs from a model: ``detect.ships.model.YoloModel.predict``."""

    def predict(
        self, chips: np.ndarray, conf: float = 0.25, iou: float = 0.5, half: bool = False
    ) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class Tile:
    """One tile of a window: its top-left pixel and the part of it that lies inside the window."""

    row: int
    col: int
    height: int  # rows inside the window (<= tile size; the rest is padding)
    width: int

    def inner_edges(self, shape: tuple[int, int]) -> tuple[bool, bool, bool, bool]:
        """Which of (left, top, right, bottom) edges lie inside the window (seams, not borders)."""
        h, w = shape
        return (self.col > 0, self.row > 0, self.col + self.width < w, self.row + self.height < h)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the fewest tiles covering ``length`` with at least ``overlap`` shared pixels,
    spread evenly from 0 to ``length - tile``: only windows smaller than a tile need padding."""
    if tile <= overlap:
        raise ValueError(f"tile size {tile} must exceed overlap {overlap}")
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / (tile - overlap)) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def make_tiles(
    shape: tuple[int, int],
    tile: int,
    overlap: int = 48,
    *,
    keep: np.ndarray | None = None,
) -> list[Tile]:
    """Tiles covering a (height, width) window; with ``keep`` (bool mask), tiles holding no True
    pixel are left out (nodata-only or land-only tiles cost nothing)."""
    h, w = shape
    tiles = []
    if keep is not None:
        # Integral image: any-True test per tile in O(1).
        ii = np.zeros((h + 1, w + 1), np.int64)
        ii[1:, 1:] = np.cumsum(np.cumsum(keep, axis=0, dtype=np.int64), axis=1)
    for r in tile_starts(h, tile, overlap):
        for c in tile_starts(w, tile, overlap):
            th, tw = min(tile, h - r), min(tile, w - c)
            if keep is not None:
                n = ii[r + th, c + tw] - ii[r, c + tw] - ii[r + th, c] + ii[r, c]
                if n == 0:
                    continue
            tiles.append(Tile(r, c, th, tw))
    return tiles


def cut_tiles(image: np.ndarray, tiles: Sequence[Tile], tile: int, pad_value: int = 0) -> np.ndarray:
    """Stack (N, tile, tile, C) chips from an (H, W, C) image, padding past the window's border."""
    out = np.full((len(tiles), tile, tile, image.shape[2]), pad_value, dtype=image.dtype)
    for i, t in enumerate(tiles):
        out[i, : t.height, : t.width] = image[t.row : t.row + t.height, t.col : t.col + t.width]
    return out


def _touches_seam(boxes: np.ndarray, t: Tile, shape: tuple[int, int], margin: float) -> np.ndarray:
    """True for boxes (tile px) whose extent reaches within ``margin`` of an inner tile edge."""
    if len(boxes) == 0:
        return np.zeros(0, bool)
    corners = rotated_corners(boxes)
    x0, x1 = corners[..., 0].min(1), corners[..., 0].max(1)
    y0, y1 = corners[..., 1].min(1), corners[..., 1].max(1)
    left, top, right, bottom = t.inner_edges(shape)
    hit = np.zeros(len(boxes), bool)
    if left:
        hit |= x0 <= margin
    if top:
        hit |= y0 <= margin
    if right:
        hit |= x1 >= t.width - margin
    if bottom:
        hit |= y1 >= t.height - margin
    return hit


def predict_tiles(
    model: Predictor,
    image: np.ndarray,
    tiles: Sequence[Tile],
    tile: int,
    *,
    conf: float = 0.25,
    iou: float = 0.5,
    batch_size: int = 16,
    edge_margin: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` over ``tiles`` of ``image`` in batches.

    Returns (boxes (K, 7) in window pixels, truncated (K,) bool).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    shape = image.shape[:2]
    all_boxes, all_trunc = [], []
    for i in range(0, len(tiles), batch_size):
        batch = tiles[i : i + batch_size]
        preds = model.predict(cut_tiles(image, batch, tile), conf=conf, iou=iou)
        for t, p in zip(batch, preds, strict=True):
            p = np.asarray(p, dtype=np.float32).reshape(-1, 7)
            if len(p) == 0:
                continue
            # Boxes centred in padding belong to no pixel of the window.
            p = p[(p[:, CX] < t.width) & (p[:, CY] < t.height)]
            all_trunc.append(_touches_seam(p, t, shape, edge_margin))
            p = p.copy()
            p[:, CX] += t.col
            p[:, CY] += t.row
            all_boxes.append(p)
    if not all_boxes:
        return np.zeros((0, 7), np.float32), np.zeros(0, bool)
    return np.concatenate(all_boxes), np.concatenate(all_trunc)


def rotated_corners(boxes: np.ndarray) -> np.ndarray:
    """(K, 4, 2) corners of rotated boxes [cx, cy, w, h, theta, ...]; ``w`` runs along ``theta``."""
    boxes = np.atleast_2d(np.asarray(boxes, dtype=np.float64))
    cx, cy, w, h, th = (boxes[:, k] for k in (CX, CY, W, H, THETA))
    c, s = np.cos(th), np.sin(th)
    dx = np.stack([c * w / 2, s * w / 2], axis=1)  # half-vector along w
    dy = np.stack([-s * h / 2, c * h / 2], axis=1)  # half-vector along h
    ctr = np.stack([cx, cy], axis=1)
    return np.stack([ctr + dx + dy, ctr - dx + dy, ctr - dx - dy, ctr + dx - dy], axis=1)


def _overlaps(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i < j) of boxes that overlap, with intersection area and both areas' minimum."""
    n = len(corners)
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    ii, jj = np.triu_indices(n, k=1)
    cand = (
        (lo[ii, 0] < hi[jj, 0]) & (lo[jj, 0] < hi[ii, 0]) & (lo[ii, 1] < hi[jj, 1]) & (lo[jj, 1] < hi[ii, 1])
    )
    ii, jj = ii[cand], jj[cand]
    polys = shapely.polygons(corners)
    inter = shapely.area(shapely.intersection(polys[ii], polys[jj])) if len(ii) else np.zeros(0)
    return ii, jj, inter


def merge_boxes(
    boxes: np.ndarray,
    truncated: np.ndarray | None = None,
    *,
    iou: float = 0.5,
    cover: float = 0.6,
) -> np.ndarray:
    """Rotated-box NMS across tiles; returns indices of kept boxes, best first.

    Boxes are visited whole-before-truncated, then by score; a box is dropped when its rotated IoU
    with a kept box of the same class reaches ``iou``, or, if it is truncated by a seam, when a kept
    box covers at least ``cover`` of its area (the fuller view of the same object from a
    neighbouring tile).
    """
    n = len(boxes)
    if n == 0:
        return np.zeros(0, np.int64)
    truncated = np.zeros(n, bool) if truncated is None else np.asarray(truncated, bool)
    order = np.lexsort((-boxes[:, SCORE], truncated))
    corners = rotated_corners(boxes)
    area = np.abs(boxes[:, W] * boxes[:, H]).astype(np.float64)
    ii, jj, inter = _overlaps(corners)
    same = boxes[ii, CLS] == boxes[jj, CLS]
    ii, jj, inter = ii[same], jj[same], inter[same]
    union = area[ii] + area[jj] - inter
    iou_pair = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
    # Suppression links in both directions; which one applies depends on visiting order.
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    first = np.where(rank[ii] < rank[jj], ii, jj)
    second = np.where(rank[ii] < rank[jj], jj, ii)
    covered = inter / np.maximum(area[second], 1e-9)
    kills = (iou_pair >= iou) | (truncated[second] & (covered >= cover))
    victims: dict[int, list[int]] = {}
    for a, b in zip(first[kills].tolist(), second[kills].tolist(), strict=True):
        victims.setdefault(a, []).append(b)
    removed = np.zeros(n, bool)
    keep = []
    for k in order.tolist():
        if removed[k]:
            continue
        keep.append(k)
        for v in victims.get(k, ()):
            removed[v] = True
    return np.asarray(keep, np.int64)
