"""Slicing: tiles cover the window, boxes come back in window pixels, seams yield one box per object."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest

from detect.core.bands import RGBN, default_normalisation
from detect.core.slicing import (
    CX,
    CY,
    SCORE,
    THETA,
    H,
    Tile,
    W,
    cut_tiles,
    make_tiles,
    merge_boxes,
    predict_tiles,
    rotated_corners,
    tile_starts,
)
from detect.core.weights import ModelSpec


class BlobModel:
    """Stand-in for YoloModel: finds blobs brighter than ``level`` in the last channel of each chip.

    It reports the minimum-area rectangle of each blob in chip pixels, like an OBB model, so
    slicing and merging can be checked against known objects. Records the batch sizes it saw.
    """

    def __init__(
        self, imgsz: int = 64, gsd_m: float = 10.0, level: int = 200, bands: tuple[str, ...] = RGBN
    ) -> None:
        self.spec = ModelSpec(
            name="blobs",
            task="obb",
            bands=bands,
            imgsz=imgsz,
            gsd_m=gsd_m,
            normalisation=default_normalisation(bands),
            sha256="0" * 64,
        )
        self.level = level
        self.batches: list[int] = []

    def predict(
        self, chips: np.ndarray, conf: float = 0.25, iou: float = 0.5, half: bool = False
    ) -> list[np.ndarray]:
        assert chips.dtype == np.uint8 and chips.shape[1:3] == (self.spec.imgsz, self.spec.imgsz)
        self.batches.append(len(chips))
        out = []
        for chip in chips:
            hot = (chip[..., -1] > self.level).astype(np.uint8)
            n, labels = cv2.connectedComponents(hot, connectivity=8)
            rows = []
            for i in range(1, n):
                r, c = np.nonzero(labels == i)
                pts = np.concatenate([np.stack([c + dc, r + dr], 1) for dc in (0, 1) for dr in (0, 1)])
                (cx, cy), (w, h), ang = cv2.minAreaRect(pts.astype(np.float32))
                rows.append([cx, cy, w, h, math.radians(ang), 0.5 + 0.001 * hot.sum(), 0])
            out.append(np.asarray(rows, np.float32).reshape(-1, 7))
        return out


def _image_with(rects: list[tuple[int, int, int, int]], shape: tuple[int, int] = (200, 260)) -> np.ndarray:
    img = np.full((*shape, 4), 20, np.uint8)
    for r0, c0, r1, c1 in rects:
        img[r0:r1, c0:c1, 3] = 250
    return img


def test_tile_starts_cover_the_length_and_end_on_the_border() -> None:
    assert tile_starts(50, 64, 16) == [0]
    starts = tile_starts(300, 64, 16)
    assert starts[0] == 0 and starts[-1] == 300 - 64
    assert all(b - a <= 48 for a, b in itertools.pairwise(starts))
    with pytest.raises(ValueError):
        tile_starts(100, 16, 16)


def test_make_tiles_skips_tiles_without_a_kept_pixel() -> None:
    keep = np.zeros((200, 260), bool)
    keep[10, 10] = True
    all_tiles = make_tiles(keep.shape, 64, 16)
    kept = make_tiles(keep.shape, 64, 16, keep=keep)
    assert len(all_tiles) == 4 * 6  # rows start 0, 45, 91, 136; columns 0, 39, ..., 196
    assert kept == [Tile(0, 0, 64, 64)]


def test_cut_tiles_pads_windows_smaller_than_a_tile() -> None:
    img = np.full((40, 50, 4), 7, np.uint8)
    chips = cut_tiles(img, make_tiles((40, 50), 64, 16), 64)
    assert chips.shape == (1, 64, 64, 4)
    assert (chips[0, :40, :50] == 7).all() and (chips[0, 40:] == 0).all() and (chips[0, :, 50:] == 0).all()


def test_boxes_come_back_in_window_pixels_and_a_seam_straddler_is_reported_once() -> None:
    # Tiles of 64 with overlap >= 16 start at columns 0, 39, 78, 118, 157, 196 and rows 0, 45, 91,
    # 136: the second object crosses several seams; the third lies at the bottom-right border.
    rects = [(20, 10, 26, 40), (100, 70, 106, 100), (180, 220, 190, 226)]
    model = BlobModel()
    img = _image_with(rects)
    tiles = make_tiles(img.shape[:2], 64, 16)
    boxes, truncated = predict_tiles(model, img, tiles, 64, batch_size=8)
    kept = boxes[merge_boxes(boxes, truncated)]
    assert len(kept) == len(rects)
    got = sorted(
        (round(b[CY], 1), round(b[CX], 1), round(max(b[W], b[H])), round(min(b[W], b[H]))) for b in kept
    )
    want = sorted(
        ((r0 + r1) / 2, (c0 + c1) / 2, max(r1 - r0, c1 - c0), min(r1 - r0, c1 - c0))
        for r0, c0, r1, c1 in rects
    )
    assert got == want
    assert model.batches == [8, 8, 8]


def test_batch_size_does_not_change_the_result() -> None:
    img = _image_with([(20, 10, 26, 40), (100, 70, 106, 100)])
    tiles = make_tiles(img.shape[:2], 64, 16)
    a, ta = predict_tiles(BlobModel(), img, tiles, 64, batch_size=1)
    b, tb = predict_tiles(BlobModel(), img, tiles, 64, batch_size=32)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ta, tb)


def test_merge_keeps_the_higher_score_and_separates_classes() -> None:
    boxes = np.array(
        [
            [50, 50, 30, 6, 0.0, 0.6, 0],
            [51, 50, 30, 6, 0.05, 0.9, 0],  # same object, better score
            [51, 50, 30, 6, 0.05, 0.8, 1],  # another class at the same place
            [150, 50, 30, 6, 0.0, 0.3, 0],  # elsewhere
        ],
        np.float32,
    )
    assert sorted(merge_boxes(boxes).tolist()) == [1, 2, 3]


def test_a_truncated_box_gives_way_to_the_fuller_view_even_with_a_higher_score() -> None:
    boxes = np.array([[50, 50, 40, 6, 0.0, 0.5, 0], [40, 50, 20, 6, 0.0, 0.9, 0]], np.float32)
    # IoU is 0.5 → plain NMS at 0.6 keeps both; the truncated half is still dropped.
    assert merge_boxes(boxes, np.array([False, True]), iou=0.6).tolist() == [0]
    assert sorted(merge_boxes(boxes, np.array([False, False]), iou=0.6).tolist()) == [0, 1]


def test_rotated_corners_follow_theta() -> None:
    c = rotated_corners(np.array([[10, 20, 8, 2, math.pi / 2, 1, 0]], np.float32))[0]
    assert np.ptp(c[:, 0]) == pytest.approx(2) and np.ptp(c[:, 1]) == pytest.approx(8)
    assert c.mean(0) == pytest.approx([10, 20])
    assert SCORE == 5 and THETA == 4
