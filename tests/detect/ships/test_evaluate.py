"""Evaluation: COCO labels on a Web Mercator grid reach the ground correctly, and scores on a
hand-made case match the values worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Point, box

from detect.core.geometry import Detection
from detect.core.rle import decode_rle, encode_rle
from detect.ships.evaluate import Truth, average_precision, evaluate, load_coco_truth, summarise
from imagery.errors import InputError

CHIPS = Path(__file__).parents[2] / "fixtures" / "chips"
LAT = 44.4
MERC = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)


def _mask(h: int, w: int, rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[rows, cols] = True
    return m


@pytest.fixture()
def mercator_scene(tmp_path: Path) -> tuple[Path, Path]:
    """A 100 × 100 px EPSG:3857 band file (10 map-metre pixels at 44.4° N) with three labelled boxes."""
    x0, y0 = MERC.transform(8.9, LAT)
    folder = tmp_path / "scene"
    folder.mkdir()
    with rasterio.open(
        folder / "port_B08.tif",
        "w",
        driver="GTiff",
        width=100,
        height=100,
        count=1,
        dtype="uint16",
        crs="EPSG:3857",
        transform=Affine(10, 0, x0, 0, -10, y0),
    ) as dst:
        dst.write(np.full((1, 100, 100), 300, np.uint16))
    anns = [
        # 7 × 2 px ship with a mask: length from the mask, 70 map-m = 70·cos(44.4°) ground metres.
        {
            "id": 1,
            "image_id": 1,
            "bbox": [10, 10, 7, 2],
            "segmentation": encode_rle(_mask(100, 100, slice(10, 12), slice(10, 17))),
        },
        {"id": 2, "image_id": 1, "bbox": [50, 50, 10, 5]},
        {"id": 3, "image_id": 1, "bbox": [80, 20, 6, 3]},
    ]
    coco = {
        "images": [{"id": 1, "file_name": "scene/port_B08.tif", "width": 100, "height": 100}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "ship"}],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    return tmp_path, path


def _det(poly, score: float, length_m: float) -> Detection:
    c = poly.centroid
    return Detection("ship", score, poly, c.x, c.y, length_m, 10.0, 0.0, scene="scene")


def _offset(lon: float, lat: float, east_m: float) -> tuple[float, float]:
    return lon + east_m / (111_320 * math.cos(math.radians(lat))), lat


def test_coco_boxes_land_on_the_ground_through_the_image_crs(mercator_scene: tuple[Path, Path]) -> None:
    images, coco = mercator_scene
    truths = load_coco_truth(coco, images)["scene"]
    assert [t.ann_id for t in truths] == [1, 2, 3]
    t1, t2, _ = truths
    cos = math.cos(math.radians(t1.lat))
    assert t1.length_source == "mask" and t1.length_m == pytest.approx(70 * cos, abs=0.1)
    assert t2.length_source == "box" and t2.length_m == pytest.approx(100 * cos, abs=0.1)
    # Centre of box 2 is pixel (55, 52.5) from the top-left corner.
    x0, y0 = MERC.transform(8.9, LAT)
    lon, lat = MERC.transform(x0 + 550, y0 - 525, direction="INVERSE")
    assert (t2.lon, t2.lat) == pytest.approx((lon, lat), abs=1e-9)


def test_hand_made_case_scores_as_worked_out(mercator_scene: tuple[Path, Path]) -> None:
    images, coco = mercator_scene
    t1, t2, _t3 = load_coco_truth(coco, images)["scene"]
    # p1 covers t1 exactly (IoU 1), length 10 m long. p2 is a 10 m speck 20 m east of t2's centre:
    # IoU < 0.1 but centres <= 30 m, so it matches, length 30 m short; it is no AP hit (IoU < 0.5).
    # p3 is 2 km away: a false positive. t3 is missed.
    s = 5e-5  # ~5 m in degrees
    lon2, lat2 = _offset(t2.lon, t2.lat, 20.0)
    preds = [
        _det(t1.polygon, 0.9, t1.length_m + 10),
        _det(box(lon2 - s, lat2 - s, lon2 + s, lat2 + s), 0.7, t2.length_m - 30),
        _det(Point(_offset(t2.lon, t2.lat, 2000.0)).buffer(s, cap_style=3), 0.8, 50.0),
    ]

    class Fixed:
        name, classes, required_bands, conf = "fixed", ("ship",), ("B08",), 0.5

        def detect(self, window, *, conf=None):
            assert window.scene_id == "scene"
            return [p for p in preds if p.score >= (self.conf if conf is None else conf)]

    report = evaluate(Fixed(), images, coco)
    row = report.overall
    assert (row.n_truth, row.n_pred, row.tp) == (3, 3, 2)
    assert (row.precision, row.recall, row.f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert row.count_error == 0 and report.count_mae == 0
    assert row.length_mae_m == pytest.approx(20.0)
    assert row.ap50 == pytest.approx(1 / 3)  # hit, miss, miss in score order: precision 1 up to recall 1/3
    # At an operating threshold of 0.75 only p1 and the false positive count.
    high = evaluate(Fixed(), images, coco, conf=0.75).overall
    assert (high.tp, high.n_pred, high.count_error) == (1, 2, -1)
    assert (high.precision, high.recall) == pytest.approx((0.5, 1 / 3))
    assert high.length_mae_m == pytest.approx(10.0)
    assert high.ap50 == pytest.approx(1 / 3)  # AP still uses every detection
    d = report.to_dict()
    assert d["overall"]["tp"] == 2 and d["scenes"][0]["scene"] == "scene"
    assert "overall" in report.table() and "scene" in report.table()


def test_each_truth_is_matched_once_greedily_by_score() -> None:
    poly = box(0, 0, 0.001, 0.0005)
    t = Truth("s", 1, poly, poly.centroid.x, poly.centroid.y, 100.0, "box")
    dets = [_det(poly, 0.6, 90.0), _det(poly, 0.9, 100.0)]
    report = summarise("x", {"s": (dets, [t])}, conf=0.5)
    assert (report.overall.tp, report.overall.n_pred) == (1, 2)
    assert report.overall.length_mae_m == 0.0  # the 0.9 prediction took the truth


def test_scenes_missing_bands_are_reported_as_skipped(mercator_scene: tuple[Path, Path]) -> None:
    images, coco = mercator_scene

    class NeedsRgb:
        name, classes, required_bands, conf = "rgb", ("ship",), ("B04", "B03", "B02"), 0.5

        def detect(self, window, *, conf=None):
            raise AssertionError("must not run")

    report = evaluate(NeedsRgb(), images, coco)
    assert report.scenes[0].skipped.startswith("missing band(s) B04, B03, B02")
    assert report.overall.n_truth == 0


def test_average_precision_all_point_interpolation() -> None:
    # hits T F T over 2 truths: precision 1 at recall .5, 2/3 at recall 1 → AP = .5 + .5·2/3
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 2) == pytest.approx(
        5 / 6
    )
    assert average_precision(np.array([]), np.array([], bool), 3) == 0.0


def test_rle_round_trip_and_compressed_counts() -> None:
    m = _mask(5, 4, slice(1, 3), slice(0, 2))
    m[4, 3] = True
    rle = encode_rle(m)
    np.testing.assert_array_equal(decode_rle(rle), m)
    assert encode_rle(np.ones((2, 2), bool))["counts"] == [0, 4]
    # COCO's compact string: '3' '2' '5' are single chunks; 'X1' is 8 + (1 << 5) = 40; the 4th count
    # is stored relative to the 2nd. Runs must fill the mask: 3 + 40 + 7 = 5×10.
    assert decode_rle({"size": [5, 10], "counts": "3X17"}).sum() == 40
    flat = (
        decode_rle({"size": [2, 7], "counts": "3252"}).T.ravel().astype(int).tolist()
    )  # runs 3, 2, 5, 2 + 2
    assert flat == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1]


def test_fixture_labels_load_with_mask_lengths() -> None:
    truths = load_coco_truth(CHIPS / "annotations.json", CHIPS)
    assert len(truths["honolulu_chip"]) == 12 and truths["marseille_water"] == []
    assert all(t.length_source == "mask" and 40 <= t.length_m <= 250 for t in truths["honolulu_chip"])


def test_unknown_cities_are_an_input_error() -> None:
    class Never:
        name, classes, required_bands, conf = "never", ("ship",), ("B08",), 0.5

        def detect(self, window, *, conf=None):
            raise AssertionError("must not run")

    with pytest.raises(InputError, match="no labelled scene for atlantis"):
        evaluate(Never(), CHIPS, CHIPS / "annotations.json", cities=["atlantis"])


def test_missing_annotations_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such annotations"):
        load_coco_truth(tmp_path / "nope.json", tmp_path)


def test_pooled_scores_no_threshold_moves_follow_the_counting_rule(mercator_scene: tuple[Path, Path]) -> None:
    from detect.ships.segment_train import pool, scene_record

    images, coco = mercator_scene
    t1, t2, _t3 = load_coco_truth(coco, images)["scene"]
    s = 5e-5
    lon2, lat2 = _offset(t2.lon, t2.lat, 20.0)
    preds = [  # the hand-made case above: p2 counts (centres 20 m apart) but is no AP50 hit
        _det(t1.polygon, 0.9, t1.length_m),
        _det(box(lon2 - s, lat2 - s, lon2 + s, lat2 + s), 0.7, t2.length_m),
        _det(Point(_offset(t2.lon, t2.lat, 2000.0)).buffer(s, cap_style=3), 0.8, 50.0),
    ]
    truths = [t1, t2, _t3]
    rec = scene_record(preds, truths, 0.95)
    assert rec["hits"] == [True, True, False] and rec["ap_hits"] == [True, False, False]
    # hit, false, hit in score order: precision 1 to recall 1/3, then 2/3 at recall 2/3
    out = pool([rec])
    assert out["ap_count"] == pytest.approx(round(1 / 3 + 1 / 3 * 2 / 3, 3))
    assert out["ap50"] == pytest.approx(round(1 / 3, 3))
    # the best threshold keeps all three (2 of 3 found, 2 of 3 right): F1 2/3, above 0.9's 1/2
    assert out["f1_best"] == pytest.approx(round(2 / 3, 3)) and out["f1"] == 0.0
    # every threshold's own record agrees with the hits: F1 at 0.75 is the pooled F1 there
    for t in (0.75, 0.85, 0.5):
        at = pool([scene_record(preds, truths, t)])
        assert at["f1"] <= out["f1_best"]
    assert pool([scene_record(preds, truths, 0.5)])["f1"] == out["f1_best"]
    # records written before the counting hits were kept: no such scores, rather than wrong ones
    old = {k: v for k, v in rec.items() if k != "hits"}
    assert pool([old, rec])["ap_count"] is None and pool([old])["f1_best"] is None
