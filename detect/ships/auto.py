"""The ship detector that picks, per scene, the best measured model for the bands the scene has.

Since session 25 that is one detector on every band set: the ensemble of the two hull-segmentation
models (``seg-ens``, weights/ships-s2-seg-ens.md: the pretrained-encoder model ``seg-b4`` and the plain
U-Net ``seg`` v7, their probabilities averaged). In the leave-cities-out CV on sen2ships it scores above
``seg-b4`` with every band (F1 0.642 against 0.631, AP50 0.435 against 0.402), B08 only (0.557 against
0.551) and true colour (0.580 against 0.568), at 1.3 s per 1000² px on 2 CPU cores. In session 24
``auto`` ran ``seg-b4`` alone on every band set; from v4 of the segmentation model until then ``seg`` on
every scene with B08 (and, in session 23, ``seg-b4`` on true colour without B08); before v4, YOLO where
B04 B03 B02 B08 exist. Those stay methods (``--method seg-b4``, ``seg``, ``yolo``). Each detection's
``detector`` names the model that ran. The choice is fixed in ``PREFERENCE``.
"""

from __future__ import annotations

from typing import Any

from detect.core.geometry import Detection
from detect.ships.segment import SEG_BANDS, present_bands
from imagery.types import RasterWindow

#: (method, bands it needs) in order of measured accuracy on scenes that have those bands; the last entry
#: takes every other scene (and refuses one with neither B08 nor true colour). Until v4 of the
#: segmentation model, ("yolo", ("B04", "B03", "B02", "B08")) came first; until session 24, ("seg",
#: ("B08",)) did (session 23: then ("seg-b4", TRUE_COLOUR), then "seg"); in session 24, ("seg-b4", ()).
PREFERENCE: tuple[tuple[str, tuple[str, ...]], ...] = (("seg-ens", ()),)


class AutoShipDetector:
    """Method ``auto`` (the default): the first model of ``PREFERENCE`` whose bands the window holds."""

    classes = ("ship",)
    required_bands: tuple[str, ...] = ()
    optional_bands = SEG_BANDS
    name = "auto"

    def __init__(self, device: str = "cpu", **kw: Any) -> None:
        from detect.core.registry import get_detector

        self.device = device
        # every model it may run, loaded now: missing or mismatched weights fail before any scene is read
        # (loaded on first use, a run recorded each scene as failed and ended with exit 0)
        self._built = {
            m: get_detector("ship", m, device, **kw) for m in dict.fromkeys(m for m, _ in PREFERENCE)
        }

    def choose(self, window: RasterWindow) -> str:
        """The method that will run on ``window``."""
        have = set(present_bands(window))  # an all-nodata band is no band, as the models read it
        for method, bands in PREFERENCE:
            if set(bands) <= have:
                return method
        return PREFERENCE[-1][0]

    def detect(self, window: RasterWindow, *, conf: float | None = None) -> list[Detection]:
        return self._built[self.choose(window)].detect(window, conf=conf)
