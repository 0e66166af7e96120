"""Ships on Sentinel-1 radar: parameters (``params``), the CFAR test (``cfar``), land and water (``land``),
the detector (``detector``), simulated clutter and vessels (``sim``) and the Sentinel-1 pieces of a run
(``s1``). Importing the package registers the ``ship``/``cfar`` detector.
"""

from __future__ import annotations

from typing import Any

from detect.core.lazy import lazy_attributes
from detect.core.registry import Detector, register_detector

__getattr__ = lazy_attributes(
    "detect.sar",
    {
        "SarShipDetector": "detect.sar.detector",
        "detect_ships_sar": "detect.sar.detector",
        "SarShipParams": "detect.sar.params",
        "CfarParams": "detect.sar.params",
        "water_from_zones": "detect.sar.land",
        "s1_observation": "detect.sar.s1",
    },
)


def _ship_cfar(device: str = "cpu", **kw: Any) -> Detector:
    from detect.sar.detector import SarShipDetector  # Sentinel-1 backscatter, not optical bands

    return SarShipDetector(**kw)


register_detector("ship", "cfar", _ship_cfar)
