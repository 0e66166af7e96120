"""ShipDetector: sliced model output becomes ground-true Detection records; land is skipped or flagged.

The synthetic-window tests use ``BlobModel`` (a model stand-in with the real ``ModelSpec`` and
``predict`` shapes); the real-chip tests use the shipped weights and skip only while they are absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from detect.core.slicing import make_tiles
from detect.core.weights import resolve_weights
from detect.detectors import get_detector
from detect.ships.evaluate import load_coco_truth, match_scene
from detect.ships.yolo import ShipDetector
from imagery.errors import MissingBandsError
from imagery.read import open_raster
from imagery.types import Grid, RasterWindow
from tests.detect.core.test_slicing import BlobModel

CHIPS = Path(__file__).parents[2] / "fixtures" / "chips"
WEIGHTS, _ = resolve_weights("ships-s2")
#: Overlap must exceed the longest object (40 px here) so that some tile sees each ship whole.
OVERLAP = 44
#: What the shipped model must at least do on the Honolulu chip at its default threshold.
RECALL_FLOOR = 0.5
MAX_EXTRA = 7


def _harbour(shape: tuple[int, int] = (300, 300)) -> RasterWindow:
    """Water west of column 200, land east of it; ships are NIR-bright rectangles.

    Ship A (water): rows 100–106, cols 40–70 (300 m E–W). Ship B (water): rows 20–60, cols 120–126
    (400 m N–S, crossing tile seams). Ship C (land): rows 200–205, cols 250–270.
    """
    h, w = shape
    b02, b03, b04, b08 = (np.full(shape, v, np.float32) for v in (0.04, 0.05, 0.03, 0.01))
    land = np.zeros(shape, bool)
    land[:, 200:] = True
    for band, v in ((b02, 0.07), (b03, 0.08), (b04, 0.09), (b08, 0.15)):
        band[land] = v
    for r0, r1, c0, c1 in ((100, 106, 40, 70), (20, 60, 120, 126), (200, 205, 250, 270)):
        b08[r0:r1, c0:c1] = 0.4
        b03[r0:r1, c0:c1] = 0.1
    grid = Grid("EPSG:32631", Affine(10, 0, 500_000, 0, -10, 4_800_000), w, h)
    return RasterWindow(
        np.stack([b02, b03, b04, b08]), ("B02", "B03", "B04", "B08"), grid, scene_id="harbour"
    )


def test_ships_on_water_become_detections_with_ground_lengths_and_headings() -> None:
    model = BlobModel(imgsz=64)
    dets = ShipDetector(model, overlap=OVERLAP).detect(_harbour())
    by_len = sorted(dets, key=lambda d: d.length_m)
    assert len(dets) == 2
    a, b = by_len
    assert a.length_m == pytest.approx(300, abs=1) and a.width_m == pytest.approx(60, abs=1)
    assert a.heading_deg == pytest.approx(90, abs=1)
    assert b.length_m == pytest.approx(400, abs=1) and min(b.heading_deg, 180 - b.heading_deg) < 1
    assert {d.class_name for d in dets} == {"ship"} and all(d.properties["on_land"] is False for d in dets)
    assert all(d.scene == "harbour" and d.detector == "yolo:blobs" for d in dets)
    # Lon/lat centre of ship A: column 55, row 103 on the grid.
    ex, ny = 500_000 + 55 * 10, 4_800_000 - 103 * 10
    from pyproj import Transformer

    lon, lat = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform(ex, ny)
    assert (a.lon, a.lat) == pytest.approx((lon, lat), abs=1e-6)


def test_land_only_tiles_are_not_run_and_land_ships_are_dropped() -> None:
    model = BlobModel(imgsz=64)
    ShipDetector(model, overlap=OVERLAP).detect(_harbour())
    with_mask = sum(model.batches)
    model_all = BlobModel(imgsz=64)
    ShipDetector(model_all, overlap=OVERLAP, water_mask=False).detect(_harbour())
    assert with_mask < sum(model_all.batches) == len(make_tiles((300, 300), 64, OVERLAP))


def test_keep_land_keeps_ships_off_water_flagged() -> None:
    dets = ShipDetector(BlobModel(imgsz=64), overlap=OVERLAP, keep_land=True).detect(_harbour())
    assert sorted(d.properties["on_land"] for d in dets) == [False, False, True]


def test_without_nir_the_window_is_refused_naming_the_band() -> None:
    win = _harbour()
    rgb = RasterWindow(win.data[:3], win.band_names[:3], win.grid)
    with pytest.raises(MissingBandsError, match="B08"):
        ShipDetector(BlobModel(imgsz=64)).detect(rgb)


def test_without_nir_there_is_no_water_mask_and_nothing_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    # An RGB model on a window without B08: the stand-in sees the ships in red (B04 is last).
    win = _harbour()
    data = win.data[:3].copy()
    data[2][win.data[3] > 0.3] = 0.3  # ships bright in B04 too
    rgb = RasterWindow(data, win.band_names[:3], win.grid, scene_id="harbour")
    dets = ShipDetector(BlobModel(imgsz=64, bands=("B02", "B03", "B04")), overlap=OVERLAP).detect(rgb)
    assert len(dets) == 3  # the land ship included: no mask, nothing filtered
    assert all(d.properties["on_land"] is None for d in dets)
    assert "no water mask" in caplog.text and "B08" in caplog.text


def test_a_model_at_half_the_ground_sampling_gets_upsampled_input_and_boxes_map_back() -> None:
    # At 5 m the 40 px ship is 80 px: tiles of 128 with 96 px overlap still see it whole.
    model = BlobModel(imgsz=128, gsd_m=5.0)
    dets = ShipDetector(model, overlap=96).detect(_harbour())
    native = ShipDetector(BlobModel(imgsz=128), overlap=96).detect(_harbour())
    # Bilinear upsampling softens each end by one 5 m pixel under the stand-in's fixed threshold.
    assert sorted(d.length_m for d in dets) == pytest.approx([300, 400], abs=10)
    by_length = sorted(dets, key=lambda d: d.length_m), sorted(native, key=lambda d: d.length_m)
    for a, b in zip(*by_length, strict=True):
        assert (a.lon, a.lat) == pytest.approx((b.lon, b.lat), abs=2e-5)  # same centre within ~2 m
    # The 300 × 300 window became 600 × 600 model pixels.
    assert sum(model.batches) > len(make_tiles((300, 300), 128, 96))


# ------------------------------------------------------------------------------ the shipped model

needs_weights = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"shipped weights {WEIGHTS} not present yet")


@pytest.fixture(scope="module")
def shipped() -> ShipDetector:
    detector = get_detector("ship", "yolo")  # the process-wide instance the CLI tests use too
    assert isinstance(detector, ShipDetector) and detector.spec.name == "ships-s2"
    return detector


@needs_weights
def test_shipped_model_finds_the_labelled_ships_on_the_real_chip(shipped: ShipDetector) -> None:
    # A floor, not the target (cross-validated scores are in weights/ships-s2.md): this pins the
    # inference path (bands, normalisation, tiling, merging, geometry) against real labels; a broken
    # path finds ~0. Scored at conf 0.15, below the operating 0.25, because the 12 ships here are
    # moored side by side, the case the model scores lowest: model sha256 bf9d3eef… finds 8 of 12
    # with 5 extra boxes at 0.15 (2 of 12 at 0.25); the previous model (4feefd6b…) found 4 of 12.
    window = open_raster(CHIPS / "honolulu_chip.tif")
    truths = load_coco_truth(CHIPS / "annotations.json", CHIPS)["honolulu_chip"]
    dets = shipped.detect(window, conf=0.15)
    m = match_scene(dets, truths)
    tp = int((m.match >= 0).sum())
    assert tp / len(truths) >= RECALL_FLOOR
    assert len(dets) - tp <= MAX_EXTRA  # unlabelled small craft exist in the chip, so a few are allowed
    # Matched ships have the right size on the ground: a unit slip (pixels for metres, the Mercator
    # scale) would be off by hundreds of metres; the model's own box errors are tens.
    errors = [abs(dets[i].length_m - truths[j].length_m) for i, j in enumerate(m.match) if j >= 0]
    assert np.median(errors) < 60 and max(errors) < 200


@needs_weights
def test_shipped_model_stays_quiet_on_open_sea(shipped: ShipDetector) -> None:
    assert len(shipped.detect(open_raster(CHIPS / "marseille_water.tif"))) == 0
