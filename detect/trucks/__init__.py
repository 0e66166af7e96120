"""Moving trucks on Sentinel-2: the band-offset pixel classifier (``detector``), the truck simulator that
makes its training data (``sim``) and its training (``train``). Importing the package registers the
``truck``/``gbm`` detector.
"""

from __future__ import annotations

from typing import Any

from detect.core.lazy import lazy_attributes
from detect.core.registry import Detector, register_detector

__getattr__ = lazy_attributes("detect.trucks", {"TruckDetector": "detect.trucks.detector"})


def _truck_gbm(device: str = "cpu", **kw: Any) -> Detector:
    from detect.trucks.detector import TruckDetector  # band-offset pixel classifier; see docs/trucks.md

    return TruckDetector.load(device=device, **kw)


register_detector("truck", "gbm", _truck_gbm)
