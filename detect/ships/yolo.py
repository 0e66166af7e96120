"""Ship detection with the YOLO model: window → model input → tiles → batched predict → merged boxes
→ ``Detection`` records, with land and nodata tiles skipped and off-water boxes dropped."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import cv2
import numpy as np

from detect.core.bands import to_model_input
from detect.core.registry import boxes_to_detections
from detect.core.slicing import CX, CY, H, W, make_tiles, merge_boxes, predict_tiles
from detect.core.water import WaterMask, water_mask
from detect.ships.refine import refine_boxes
from detect.ships.tta import FlipTTA
from imagery.types import RasterWindow

if TYPE_CHECKING:
    from detect.core.geometry import Detection
    from detect.ships.model import YoloModel

log = logging.getLogger(__name__)

#: Model/window resolution ratios closer to 1 than this are treated as equal (no resampling).
_SCALE_TOLERANCE = 0.02


class ShipDetector:
    """YOLO ship detector implementing ``detect.detectors.Detector``.

    ``model``: a loaded ``YoloModel`` (or any object with its ``spec`` and ``predict``), a weights
    name/path, or None for the default ``ships-s2``. ``water_mask``: skip land tiles and drop ships
    whose centre is off (dilated) water; ``keep_land`` keeps them flagged ``on_land: true`` instead.
    ``overlap``: tile overlap in model pixels; it must exceed the longest ship (400 m = 40 px at
    10 m) so that some tile sees every ship whole. ``iou``: NMS threshold within and across tiles.
    ``refine``: replace each box's geometry by the outline of the bright hull inside it where that can
    be trusted (``detect.ships.refine``); each detection says ``length_source``: "pixels", "axis" or "box".
    ``tta``: run the four flips of every tile and fuse them (``detect.ships.tta``): more accurate, four
    times the model's compute.
    """

    classes = ("ship",)

    def __init__(
        self,
        model: YoloModel | str | None = None,
        conf: float = 0.25,
        water_mask: bool = True,
        batch_size: int = 16,
        device: str = "cpu",
        *,
        iou: float = 0.5,
        overlap: int = 48,
        keep_land: bool = False,
        refine: bool = True,
        tta: bool = False,
    ) -> None:
        if model is None or isinstance(model, str):
            from detect.ships.model import DEFAULT_MODEL, YoloModel

            model = YoloModel.load(model or DEFAULT_MODEL, device=device)
        self.model = model
        self.spec = model.spec
        self.tta = tta
        self._predictor = FlipTTA(model) if tta else model
        self.conf = conf
        self.use_water = water_mask
        self.batch_size = batch_size
        self.iou = iou
        self.overlap = overlap
        self.keep_land = keep_land
        self.refine = refine
        self.name = f"yolo:{self.spec.name}" + ("+tta" if tta else "")
        self.required_bands = tuple(self.spec.bands)
        self.last_water: WaterMask | None = None

    def _water(self, window: RasterWindow) -> WaterMask | None:
        if not self.use_water:
            return None
        wm = water_mask(window)
        if not wm.available:
            log.warning("%s: %s; ships on land are not filtered", window.scene_id or "window", wm.reason)
        return wm

    def detect(self, window: RasterWindow, *, conf: float | None = None) -> list[Detection]:
        """Ships in ``window`` with score >= ``conf`` (default: the detector's)."""
        conf = self.conf if conf is None else conf
        image = to_model_input(window, self.spec)
        wm = self._water(window)
        self.last_water = wm
        keep = window.valid_mask
        if wm is not None and wm.available and not self.keep_land:
            keep = keep & wm.mask  # land-only tiles are not run at all
        scale = window.grid.res_m / self.spec.gsd_m
        if abs(scale - 1.0) > _SCALE_TOLERANCE:
            image, keep = _resample(image, keep, scale)
        else:
            scale = 1.0
        tiles = make_tiles(image.shape[:2], self.spec.imgsz, self.overlap, keep=keep)
        boxes, truncated = predict_tiles(
            self._predictor,
            image,
            tiles,
            self.spec.imgsz,
            conf=conf,
            iou=self.iou,
            batch_size=self.batch_size,
        )
        boxes = boxes[merge_boxes(boxes, truncated, iou=self.iou)]
        if scale != 1.0:
            boxes[:, [CX, CY, W, H]] /= scale
        on_water = None
        if wm is not None and wm.available:
            on_water = wm.contains(boxes[:, CX], boxes[:, CY])
        props = None
        if self.refine:
            boxes, sources = refine_boxes(window, boxes, wm)
            # two raw boxes of one ship (hull, hull + wake; neighbouring tiles) can snap to one hull
            keep = merge_boxes(boxes, iou=self.iou)
            boxes, sources = boxes[keep], [sources[i] for i in keep]
            on_water = None if on_water is None else on_water[keep]
            props = [{"length_source": src} for src in sources]
        return boxes_to_detections(
            window,
            boxes,
            self._class_names(),
            self.name,
            on_water=on_water,
            keep_land=self.keep_land,
            properties=props,
        )

    def _class_names(self) -> tuple[str, ...]:
        # The training data calls every class a vessel/ship; the CLI contract names the class "ship".
        return ("ship",) if len(self.spec.class_names) == 1 else tuple(self.spec.class_names)


def _resample(image: np.ndarray, keep: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize the model input (bilinear) and its keep mask (nearest) by ``scale``; box coordinates
    map back by dividing by ``scale`` (pixel corners at integers on both grids)."""
    h, w = keep.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if out.ndim == 2:
        out = out[..., None]
    k = cv2.resize(keep.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    return out, k
