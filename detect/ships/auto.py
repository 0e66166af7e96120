"""The ship detector that picks, per scene, the best measured model for the bands the scene has.

Since session 24 that is one model on every band set: the hull-segmentation model on the pretrained
EfficientNet-B4 encoder (``seg-b4``, weights/ships-s2-seg-b4.md). In the leave-cities-out CV on sen2ships it
scores above v7 (``seg``, weights/ships-s2-seg.md) with every band (F1 0.63 against 0.60), B08 only (0.55
against 0.52) and true colour only (0.57 against 0.42). From v4 of the segmentation model until session 24
``auto`` ran ``seg`` on every scene with B08 (and, in session 23, ``seg-b4`` on true colour without B08);
before v4, YOLO where B04 B03 B02 B08 exist. Those stay methods (``--method seg``, ``--method yolo``). Each
detection's ``detector`` names the model that ran. The choice is fixed in ``PREFERENCE``.
"""

from __future__ import annotations

from typing import Any

from detect.core.geometry import Detection
from detect.ships.segment import SEG_BANDS, present_bands
from imagery.types import RasterWindow

#: (method, bands it needs) in order of measured accuracy on scenes that have those bands; the last entry
#: takes every other scene (and refuses one with neither B08 nor true colour). Until v4 of the
#: segmentation model, ("yolo", ("B04", "B03", "B02", "B08")) came first; until session 24, ("seg",
#: ("B08",)) did (session 23: then ("seg-b4", TRUE_COLOUR), then "seg").
PREFERENCE: tuple[tuple[str, tuple[str, ...]], ...] = (("seg-b4", ()),)


class AutoShipDetector:
    """Method ``auto`` (the default): the first model of ``PREFERENCE`` whose bands the window holds."""

    classes = ("ship",)
    required_bands: tuple[str, ...] = ()
    optional_bands = SEG_BANDS
    name = "auto"

    def __init__(self, device: str = "cpu", **kw: Any) -> None:
        self.device = device
        self.kw = kw
        self._built: dict[str, Any] = {}

    def _detector(self, method: str) -> Any:
        # built on first use, so a run over four-band scenes never loads the other model
        if method not in self._built:
            from detect.core.registry import get_detector

            self._built[method] = get_detector("ship", method, self.device, **self.kw)
        return self._built[method]

    def choose(self, window: RasterWindow) -> str:
        """The method that will run on ``window``."""
        have = set(present_bands(window))  # an all-nodata band is no band, as the models read it
        for method, bands in PREFERENCE:
            if set(bands) <= have:
                return method
        return PREFERENCE[-1][0]

    def detect(self, window: RasterWindow, *, conf: float | None = None) -> list[Detection]:
        return self._detector(self.choose(window)).detect(window, conf=conf)
