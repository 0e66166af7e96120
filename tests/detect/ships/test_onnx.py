"""ONNX export and the onnxruntime path: the same ships as the torch path on a real chip, the NMS rule
ultralytics uses, input checks, and `--method yolo-onnx` through the detector registry.

The model is exported at test time (about 5 s here; the 10.7 MB file is not committed)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from detect.core.bands import to_model_input
from detect.core.slicing import cut_tiles, make_tiles
from detect.core.weights import ModelSpec
from detect.ships.model import YoloModel, export_onnx
from detect.ships.onnx_runtime import OnnxYoloModel, probiou, rotated_nms
from detect.ships.yolo import ShipDetector
from imagery.errors import InputError, ModelError
from imagery.read import open_raster

CHIP = Path(__file__).parents[2] / "fixtures" / "chips" / "honolulu_chip.tif"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, float]:
    t0 = time.perf_counter()
    path = export_onnx("ships-s2", tmp_path_factory.mktemp("onnx") / "ships-s2.onnx")
    return path, time.perf_counter() - t0


@pytest.fixture(scope="module")
def torch_model() -> YoloModel:
    return YoloModel.load("ships-s2")


def test_export_writes_the_graph_and_its_spec_without_touching_weights_dir(exported, torch_model):
    path, seconds = exported
    assert path.is_file() and path.stat().st_size > 1e6
    assert ModelSpec.read(path.with_suffix(".json")) == torch_model.spec
    assert not (torch_model.weights.parent / "ships-s2.onnx").exists()
    assert seconds < 60  # measured ~5 s on 2 cores; not marked slow


def test_onnx_predict_matches_torch_per_chip_on_a_real_chip(exported, torch_model):
    onnx = OnnxYoloModel.load(exported[0])
    image = to_model_input(open_raster(CHIP), torch_model.spec)
    chips = cut_tiles(image, make_tiles(image.shape[:2], torch_model.spec.imgsz, 48), torch_model.spec.imgsz)
    for conf in (0.25, 0.05):
        a, b = torch_model.predict(chips, conf=conf), onnx.predict(chips, conf=conf)
        assert [len(x) for x in a] == [len(x) for x in b]
        assert sum(len(x) for x in a) > 0
        for x, y in zip(a, b, strict=True):
            x, y = x[np.argsort(-x[:, 5])], y[np.argsort(-y[:, 5])]
            np.testing.assert_allclose(y[:, :4], x[:, :4], atol=0.05)  # pixels
            np.testing.assert_allclose(y[:, 5], x[:, 5], atol=0.02)


def test_ship_detector_on_onnx_finds_the_same_ships_as_on_torch(exported, torch_model):
    window = open_raster(CHIP)
    # conf 0.1: enough boxes (about 20 on this chip) to compare, low scores included
    ref = ShipDetector(torch_model, conf=0.1).detect(window)
    got = ShipDetector(OnnxYoloModel.load(exported[0]), conf=0.1).detect(window)
    assert len(ref) == len(got) > 5
    for a in ref:
        ious = [a.polygon.intersection(b.polygon).area / a.polygon.union(b.polygon).area for b in got]
        best = int(np.argmax(ious))
        assert ious[best] >= 0.9 and abs(got[best].score - a.score) <= 0.02


def test_yolo_onnx_method_is_registered_and_reuses_the_cached_export(exported, tmp_path, monkeypatch):
    from detect.detectors import get_detector, registered
    from detect.ships.onnx_runtime import onnx_cache_dir

    assert ("ship", "yolo-onnx") in registered()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    spec = ModelSpec.read(exported[0].with_suffix(".json"))
    cached = onnx_cache_dir() / f"{spec.name}-{spec.sha256[:16]}.onnx"
    cached.parent.mkdir(parents=True)
    shutil.copyfile(exported[0], cached)  # as if exported on an earlier first use
    det = get_detector("ship", "yolo-onnx", "cpu")
    assert isinstance(det.model, OnnxYoloModel) and det.model.path == cached
    assert det.required_bands == spec.bands


def test_onnx_predict_refuses_chips_of_another_size_or_type(exported):
    model = OnnxYoloModel.load(exported[0])
    s, c = model.spec.imgsz, len(model.spec.bands)
    with pytest.raises(InputError, match="chips must be"):
        model.predict(np.zeros((1, s // 2, s // 2, c), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        model.predict(np.zeros((1, s, s, c), np.float32))
    assert model.predict(np.zeros((0, s, s, c), np.uint8)) == []
    with pytest.raises(ModelError, match="not found"):
        OnnxYoloModel.load(exported[0].with_name("missing.onnx"))


def test_rotated_nms_keeps_the_best_of_overlapping_boxes_per_class_only():
    boxes = np.array(
        [[10, 10, 20, 6, 0.3], [10.5, 10, 20, 6, 0.32], [40, 40, 20, 6, 0.0], [10, 10, 20, 6, 0.3]],
        np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert np.isclose(probiou(boxes[:1], boxes[:1])[0, 0], 1.0, atol=1e-3)
    assert probiou(boxes[:1], boxes[2:3])[0, 0] < 0.01
    keep = rotated_nms(boxes, scores, np.array([0, 0, 0, 1.0]), iou=0.5)
    assert keep.tolist() == [0, 2, 3]  # box 1 overlaps box 0; box 3 is another class
