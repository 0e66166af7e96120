"""Ships on Sentinel-1 radar: the CFAR detector (``cfar``) and the Sentinel-1 pieces of a run (``s1``).
Importing the package registers the ``ship``/``cfar`` detector.
"""

from __future__ import annotations

from typing import Any

from detect.core.registry import Detector, register_detector


def _ship_cfar(device: str = "cpu", **kw: Any) -> Detector:
    from detect.sar.cfar import SarShipDetector  # Sentinel-1 backscatter, not optical bands

    return SarShipDetector(**kw)


register_detector("ship", "cfar", _ship_cfar)
