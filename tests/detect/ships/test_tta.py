"""Flip test-time augmentation: views map back onto the chip and fuse into one box with the mean score."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import shapely

from detect.core.slicing import rotated_corners
from detect.ships.tta import FLIPS, FlipTTA, fuse, unflip


class BlobFinder:
    """A stand-in model: one oriented box around the bright pixels of channel 0, scored by the view.

    Scores 0.8 on views that are not mirrored left-right and 0.4 on those that are, so the fused score
    must be their mean (0.6).
    """

    def __init__(self) -> None:
        self.calls: list[float] = []

    def predict(self, chips, conf=0.25, iou=0.5, half=False):
        self.calls.append(conf)
        out = []
        for chip in chips:
            ys, xs = np.nonzero(chip[..., 0] > 128)
            pts = np.stack([xs, ys], 1).astype(np.float32)
            corners = (pts[:, None] + np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)).reshape(-1, 2)
            (cx, cy), (w, h), angle = cv2.minAreaRect(corners)
            mirrored = bool(chip[0, 0, 1])  # the marker pixel lands at (0, 0) only on left-right mirrors
            score = 0.4 if mirrored else 0.8
            out.append(np.array([[cx, cy, w, h, math.radians(angle), score, 0]], np.float32))
        return out


def _chip() -> np.ndarray:
    chip = np.zeros((64, 64, 2), np.uint8)
    pts = cv2.boxPoints(((22.0, 40.0), (20.0, 4.0), 30.0))
    mask = np.zeros((64, 64), np.uint8)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, shift=4)
    chip[..., 0] = mask
    chip[0, 63, 1] = 1  # right-hand markers: one lands at (0, 0) on the views mirrored left-right
    chip[63, 63, 1] = 1
    return chip


def test_each_view_maps_back_onto_the_chip() -> None:
    box = np.array([[10.0, 20.0, 12.0, 3.0, 0.4, 0.9, 0.0]], np.float32)
    ref = shapely.Polygon(rotated_corners(box)[0])
    for cols, rows in FLIPS:
        mirrored = box.copy()
        if cols:
            mirrored[:, 0], mirrored[:, 4] = 64 - mirrored[:, 0], -mirrored[:, 4]
        if rows:
            mirrored[:, 1], mirrored[:, 4] = 48 - mirrored[:, 1], -mirrored[:, 4]
        back = shapely.Polygon(rotated_corners(unflip(mirrored, 64, 48, cols, rows))[0])
        assert back.symmetric_difference(ref).area < 1e-3


def test_four_views_fuse_into_one_box_with_the_mean_score() -> None:
    model = BlobFinder()
    chip = _chip()
    (fused,) = FlipTTA(model).predict(chip[None], conf=0.3)
    assert len(model.calls) == 4 and model.calls[0] == pytest.approx(0.15)  # views run at conf / 2
    assert fused.shape == (1, 7) and fused[0, 5] == pytest.approx(0.6)
    (plain,) = model.predict(chip[None])
    a, b = shapely.Polygon(rotated_corners(fused)[0]), shapely.Polygon(rotated_corners(plain)[0])
    assert a.intersection(b).area / a.union(b).area > 0.95
    (none,) = FlipTTA(model).predict(chip[None], conf=0.7)  # the mean is held to conf
    assert len(none) == 0


def test_fuse_keeps_separate_ships_apart() -> None:
    a = [10, 10, 12, 3, 0, 0.9, 0]
    b = [40, 40, 12, 3, 0, 0.8, 0]
    views = [np.array([a, b]), np.array([[10.5, 10, 12, 3, 0, 0.7, 0]]), np.zeros((0, 7)), np.zeros((0, 7))]
    out = fuse(views, conf=0.1)
    assert len(out) == 2
    assert out[0, 5] == pytest.approx((0.9 + 0.7) / 4) and out[1, 5] == pytest.approx(0.8 / 4)


def test_fuse_never_merges_two_ships_one_view_told_apart() -> None:
    """Two rafted ships (IoU 0.33 > fuse_iou) seen apart in every view stay two, each with its mean."""
    ship1 = [20, 20, 30, 10, 0, 0.9, 0]
    ship2 = [20, 25, 30, 10, 0, 0.6, 0]
    out = fuse([np.array([ship1, ship2])] * 4, conf=0.1)
    assert len(out) == 2 and sorted(out[:, 5].tolist()) == pytest.approx([0.6, 0.9])
