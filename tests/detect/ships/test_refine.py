"""Box refinement from the pixels: a loose detector box shrinks to the hull; merged or dark cases keep it."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from affine import Affine

from detect.core.water import water_mask
from detect.ships.refine import RefineParams, refine_boxes
from imagery.types import Grid, RasterWindow

SHAPE = (160, 160)


def _sea(land_cols: slice | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    b03 = np.full(SHAPE, 0.06, np.float32)
    b08 = (0.015 + rng.normal(0, 0.002, SHAPE)).astype(np.float32)
    if land_cols is not None:
        b03[:, land_cols], b08[:, land_cols] = 0.08, 0.25  # a bright quay / city along one side
    return b03, b08


def _ship(b08: np.ndarray, centre: tuple[float, float], length: float, width: float, deg: float) -> None:
    pts = cv2.boxPoints((centre, (length, width), deg))
    mask = np.zeros(SHAPE, np.uint8)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1, shift=4)
    b08[mask.astype(bool)] = 0.3


def _window(b03: np.ndarray, b08: np.ndarray) -> RasterWindow:
    grid = Grid("EPSG:32633", Affine(10, 0, 400_000, 0, -10, 5_000_000), *SHAPE)
    return RasterWindow(np.stack([b03, b08]), ("B03", "B08"), grid, scene_id="sea")


def _box(cx: float, cy: float, w: float, h: float, deg: float) -> np.ndarray:
    return np.array([[cx, cy, w, h, math.radians(deg), 0.7, 0.0]])


def test_a_loose_box_around_a_free_ship_takes_the_hulls_length_width_and_axis() -> None:
    b03, b08 = _sea()
    _ship(b08, (80.0, 70.0), 18, 3, 30)  # 180 m × 30 m at 30° from the column axis
    window = _window(b03, b08)
    detector_box = _box(81.0, 71.0, 26, 8, 20)  # 260 m × 80 m, 10° off: what a weak model gives
    out, sources = refine_boxes(window, detector_box, water_mask(window))
    assert sources == ["pixels"]
    cx, cy, w, h, theta = out[0, :5]
    length, width = max(w, h), min(w, h)
    # Lengths are of the whole-pixel footprint (as the sen2ships truths are): a slanted hull adds ~1–2 px.
    assert 175 <= length * 10 <= 215 and 25 <= width * 10 <= 65
    axis = math.degrees(theta if w >= h else theta + math.pi / 2) % 180
    assert min(abs(axis - 30), 180 - abs(axis - 30)) < 6
    assert (cx, cy) == pytest.approx((80, 70), abs=1)
    assert out[0, 5:].tolist() == [0.7, 0.0]  # score and class untouched


def test_a_ship_alongside_a_quay_is_measured_along_its_axis_and_a_dark_one_keeps_the_box() -> None:
    b03, b08 = _sea(land_cols=slice(0, 60))
    _ship(b08, (61.5, 80.0), 20, 3, 90)  # alongside the quay: one bright blob with the land
    _ship(b08, (120.0, 40.0), 16, 3, 0)
    b08[100:104, 110:130] = 0.016  # a "ship" no brighter than the water (a dark hull in glint)
    window = _window(b03, b08)
    boxes = np.vstack([_box(62, 80, 8, 24, 0), _box(120, 40, 20, 6, 0), _box(120, 102, 20, 4, 0)])
    out, sources = refine_boxes(window, boxes, water_mask(window))
    assert sources == ["axis", "pixels", "box"]
    # Merged with the quay: no outline, but the bright run along the box's axis is the hull's length.
    assert max(out[0, 2:4]) * 10 == pytest.approx(200, abs=15) and out[0, 1] == pytest.approx(80, abs=1)
    # Its beam: twice the walk from the centre line to the open water (the other side is the quay). The
    # hull is 4 px (cols 60–63) as _ship rasterises it; the box's own width was 80 m.
    assert min(out[0, 2:4]) * 10 == pytest.approx(40, abs=8)
    np.testing.assert_array_equal(out[2], boxes[2])
    # Without the axis fallback the merged ship keeps the detector's box.
    out, sources = refine_boxes(window, boxes, water_mask(window), RefineParams(axis_fallback=False))
    assert sources == ["box", "pixels", "box"]
    np.testing.assert_array_equal(out[0], boxes[0])


def test_without_nir_the_visible_bands_are_used_and_without_either_nothing_changes() -> None:
    _, b08 = _sea()
    _ship(b08, (80.0, 80.0), 15, 3, 0)
    grid = Grid("EPSG:32633", Affine(10, 0, 400_000, 0, -10, 5_000_000), *SHAPE)
    box = _box(80, 80, 22, 7, 0)
    visible = RasterWindow(np.stack([b08, b08, b08]), ("B04", "B03", "B02"), grid)
    out, sources = refine_boxes(visible, box, None)
    assert sources == ["pixels"] and max(out[0, 2:4]) * 10 == pytest.approx(150, abs=15)
    swir_only = RasterWindow(b08[None], ("B11",), grid)
    out, sources = refine_boxes(swir_only, box, None)
    assert sources == ["box"] and np.array_equal(out, box)


def test_a_hull_cut_by_nodata_keeps_the_detector_box() -> None:
    """Neither the outline nor the axis walk may stop at missing data: that length would be too short."""
    b03, b08 = _sea()
    _ship(b08, (80.0, 80.0), 20, 3, 0)  # columns 70–89
    b08[:, 86:] = np.nan  # the swath edge cuts the hull's last 4 px
    b03[:, 86:] = np.nan
    window = _window(b03, b08)
    box = _box(80, 80, 26, 8, 0)
    out, sources = refine_boxes(window, box, water_mask(window))
    assert sources == ["box"] and np.array_equal(out, box)
