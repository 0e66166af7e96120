"""The ship detector that picks, per scene, the best measured model for the bands the scene has.

Since v4 of the segmentation model (weights/ships-s2-seg.md) that is the band-robust segmentation model
(``detect.ships.segment``) on every scene with B08 (until session 23: with B08 or true colour): in the
leave-cities-out CV it beats the YOLO model on the four-band cities (F1 0.53 vs 0.46, ahead in 4 of YOLO's 5
city groups, AP50 0.31 vs 0.19, length error 31 vs 39 m). YOLO stays a method (``--method yolo``). Each
detection's ``detector`` names the model that ran. The choice is fixed in ``PREFERENCE``.

Since session 23 a scene with true colour and no B08 (ESA's TCI "visual" file, browser exports) goes to the
segmentation model on the pretrained encoder (``seg-b4``, weights/ships-s2-seg-b4.md): in the same CV, read
with true colour only, F1 0.50 against the default model's 0.42 (8-bit: 0.51 against 0.44).
"""

from __future__ import annotations

from typing import Any

from detect.core.geometry import Detection
from detect.ships.segment import SEG_BANDS, TRUE_COLOUR, present_bands
from imagery.types import RasterWindow

#: (method, bands it needs) in order of measured accuracy on scenes that have those bands; the last
#: entry (the segmentation model) takes every other scene (and refuses one with neither B08 nor true colour).
#: Until v4 of the segmentation model, ("yolo", ("B04", "B03", "B02", "B08")) came first; until session 23
#: the segmentation model took true colour too.
PREFERENCE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("seg", ("B08",)),
    ("seg-b4", TRUE_COLOUR),
    ("seg", ()),
)


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
