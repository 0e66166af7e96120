"""Ship detection on Sentinel-2: ``auto`` (the default: per scene, the best measured model for its bands),
the band-robust hull-segmentation detector (``seg``) and its training, the YOLO detector (``yolo``) with its
model adapter, training and data preparation, evaluation, and the NIR baseline. Importing the package
registers its detectors (``ship`` with ``auto``, ``seg``, ``seg-b4``, ``seg-ens``, ``yolo``, ``yolo-tta``,
``yolo-onnx``, ``baseline``); modules load only when a detector is built.
"""

from __future__ import annotations

from typing import Any

from detect.core.lazy import lazy_attributes
from detect.core.registry import Detector, register_detector

__getattr__ = lazy_attributes(
    "detect.ships",
    {
        "ShipDetector": "detect.ships.yolo",
        "BaselineDetector": "detect.ships.baseline",
        "SegShipDetector": "detect.ships.segment",
    },
)


def _ship_yolo(device: str = "cpu", **kw: Any) -> Detector:
    from detect.ships.yolo import ShipDetector

    return ShipDetector(device=device, **kw)


def _ship_baseline(device: str = "cpu", **kw: Any) -> Detector:
    from detect.ships.baseline import BaselineDetector

    return BaselineDetector(**kw)


def _ship_yolo_tta(device: str = "cpu", **kw: Any) -> Detector:
    from detect.ships.yolo import ShipDetector  # four flipped views per tile, fused (ships.tta): 4x compute

    return ShipDetector(device=device, tta=True, **kw)


def _ship_yolo_onnx(device: str = "cpu", model: str | None = None, **kw: Any) -> Detector:
    from detect.ships.model import DEFAULT_MODEL
    from detect.ships.onnx_runtime import OnnxYoloModel  # the exported model on onnxruntime, no torch
    from detect.ships.yolo import ShipDetector

    return ShipDetector(OnnxYoloModel.load(model or DEFAULT_MODEL, device=device), device=device, **kw)


def _ship_seg(device: str = "cpu", **kw: Any) -> Detector:
    from detect.ships.segment import SegShipDetector  # hull segmentation, any bands with B08 or true colour

    return SegShipDetector(device=device, **kw)


def _ship_seg_b4(device: str = "cpu", model: Any = None, **kw: Any) -> Detector:
    from detect.ships.segment import B4_SEG_MODEL, SegShipDetector  # on the pretrained encoder

    return SegShipDetector(model or B4_SEG_MODEL, device=device, **kw)


def _ship_seg_ens(device: str = "cpu", model: Any = None, **kw: Any) -> Detector:
    from detect.ships.segment import ENSEMBLE_SEG_MODEL, SegShipDetector  # b4 and v7, probabilities averaged

    return SegShipDetector(model or ENSEMBLE_SEG_MODEL, device=device, **kw)


def _ship_auto(device: str = "cpu", **kw: Any) -> Detector:
    from detect.ships.auto import AutoShipDetector  # the best measured model for each scene's bands

    return AutoShipDetector(device=device, **kw)


register_detector("ship", "auto", _ship_auto)
register_detector("ship", "seg", _ship_seg)
register_detector("ship", "seg-b4", _ship_seg_b4)
register_detector("ship", "seg-ens", _ship_seg_ens)
register_detector("ship", "yolo", _ship_yolo)
register_detector("ship", "yolo-tta", _ship_yolo_tta)
register_detector("ship", "baseline", _ship_baseline)
register_detector("ship", "yolo-onnx", _ship_yolo_onnx)
