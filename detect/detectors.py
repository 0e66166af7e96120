"""The Detector protocol, the registry of detectors by (class, method), and input reading for them.

A detector turns a ``RasterWindow`` into ``Detection`` records. Detectors register a factory here
(``register_detector("truck", "yolo", make_truck_detector)``); ``get_detector`` builds each one
once per process, so weights load once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from detect.geometry import Detection, detection_from_pixel_box
from detect.slicing import CLS, SCORE, rotated_corners
from imagery.errors import InputError, MissingBandsError, RasterReadError
from imagery.read import find_band_files, normalise_band_name, open_raster, resolve_input
from imagery.types import CATEGORICAL_LAYERS, S2_BANDS, RasterWindow

log = logging.getLogger(__name__)


@runtime_checkable
class Detector(Protocol):
    """Anything that finds objects of ``classes`` in a window that holds ``required_bands``."""

    name: str
    classes: tuple[str, ...]
    required_bands: tuple[str, ...]

    def detect(self, window: RasterWindow, *, conf: float | None = None) -> list[Detection]: ...


DetectorFactory = Callable[..., Detector]
_FACTORIES: dict[tuple[str, str], DetectorFactory] = {}
_CACHE: dict[tuple[Any, ...], Detector] = {}


def register_detector(class_name: str, method: str, factory: DetectorFactory) -> None:
    """Make ``get_detector(class_name, method, device=..., **kw)`` call ``factory(device=..., **kw)``."""
    _FACTORIES[(class_name, method)] = factory
    for key in [k for k in _CACHE if k[:2] == (class_name, method)]:
        del _CACHE[key]


def registered() -> list[tuple[str, str]]:
    """(class, method) pairs that ``get_detector`` knows."""
    return sorted(_FACTORIES)


def get_detector(class_name: str, method: str = "yolo", device: str = "cpu", **kw: Any) -> Detector:
    """The detector for ``class_name`` by ``method``, built once per process for the same arguments."""
    try:
        factory = _FACTORIES[(class_name, method)]
    except KeyError:
        known = ", ".join(f"{c}/{m}" for c, m in registered()) or "none"
        raise InputError(
            f"no detector for class {class_name!r} with method {method!r}; known: {known}"
        ) from None
    key = (class_name, method, device, tuple(sorted((k, repr(v)) for k, v in kw.items())))
    if key not in _CACHE:
        _CACHE[key] = factory(device=device, **kw)
    return _CACHE[key]


def detect_window(
    window: RasterWindow,
    classes: Sequence[str] = ("ship",),
    method: str = "yolo",
    conf: float | None = None,
    device: str = "cpu",
) -> list[Detection]:
    """Detections of every class in ``classes`` on one window."""
    out: list[Detection] = []
    for c in classes:
        out.extend(get_detector(c, method, device).detect(window, conf=conf))
    return out


def boxes_to_detections(
    window: RasterWindow,
    boxes: np.ndarray,
    class_names: Sequence[str],
    detector: str,
    *,
    on_water: np.ndarray | None = None,
    keep_land: bool = False,
    properties: Sequence[dict[str, Any]] | None = None,
) -> list[Detection]:
    """Rotated pixel boxes ``[cx, cy, w, h, theta, score, class_id]`` on the window's grid → Detections.

    ``on_water`` (per box, or None when no water mask could be made) drops boxes off water unless
    ``keep_land``; each detection carries ``on_land`` (true/false, or null when unchecked) and the
    box's entry of ``properties`` (one dict per box), if given.
    """
    props = list(properties) if properties is not None else [{} for _ in range(len(boxes))]
    if on_water is not None and not keep_land:
        props = [d for d, keep in zip(props, on_water, strict=True) if keep]
        boxes, on_water = boxes[on_water], on_water[on_water]
    corners = rotated_corners(boxes) if len(boxes) else np.zeros((0, 4, 2))
    out = []
    for i, b in enumerate(boxes):
        cls = int(b[CLS])
        name = class_names[cls] if 0 <= cls < len(class_names) else str(cls)
        out.append(
            detection_from_pixel_box(
                window.grid,
                corners[i],
                name,
                float(b[SCORE]),
                scene=window.scene_id,
                acquired=window.acquired,
                detector=detector,
                properties={"on_land": None if on_water is None else not bool(on_water[i]), **props[i]},
            )
        )
    return out


# --------------------------------------------------------------------------------------- reading input


def check_raster_file(path: Path) -> None:
    """Refuse files a detector cannot use, with one clear line: empty, unreadable, complex or 1-bit."""
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is an empty file")
    try:
        with rasterio.open(path) as src:
            dtypes = set(src.dtypes)
            nbits = {src.tags(i, ns="IMAGE_STRUCTURE").get("NBITS") for i in range(1, src.count + 1)}
            shape = (src.height, src.width)
    except RasterioIOError as e:
        raise InputError(f"{path} is not a readable raster: {str(e).splitlines()[0]}") from None
    if 0 in shape:
        raise InputError(f"{path} has zero size ({shape[1]}x{shape[0]} px)")
    complex_ = sorted(d for d in dtypes if d.startswith("complex"))
    if complex_:
        raise InputError(
            f"{path} holds complex values ({complex_[0]}); optical detectors need real reflectance or DN"
        )
    if "bool" in dtypes or "1" in nbits:
        raise InputError(f"{path} is a 1-bit (mask) raster, not imagery")


_LAYER_NAMES = frozenset(S2_BANDS) | CATEGORICAL_LAYERS | {"VV", "VH", "HH", "HV"}
_STAMP_RE = re.compile(r"(?<!\d)(\d{8}T\d{6})(?!\d)")


def file_metadata(path: Path) -> tuple[datetime | None, str | None]:
    """(acquisition time, scene id) from a raster's tags (``DATETIME``, ``SCENE_ID``, as
    ``harborwatch fetch`` writes them) or a ``YYYYMMDDTHHMMSS`` stamp in its name; None when unknown."""
    first = path
    if path.is_dir():
        files = sorted(find_band_files(path).values())
        if not files:
            return None, None
        first = files[0]
    tags: dict[str, str] = {}
    with contextlib.suppress(RasterioIOError), rasterio.open(first) as src:
        tags = src.tags()
    acquired = None
    text = tags.get("DATETIME") or ""
    with contextlib.suppress(ValueError):
        if text:
            acquired = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if acquired is None:
        m = _STAMP_RE.search(first.name)
        if m:
            acquired = datetime.strptime(m.group(1), "%Y%m%dT%H%M%S")
    if acquired is not None and acquired.tzinfo is None:
        acquired = acquired.replace(tzinfo=timezone.utc)  # Sentinel stamps and our tags are UTC
    scene_id = tags.get("SCENE_ID") or None
    if path.is_dir() and scene_id is None:
        scene_id = path.name
    return acquired, scene_id


def check_input(
    path: str | Path,
    bands: Sequence[str] | None = None,
    *,
    required: Sequence[str] = (),
    optional: Sequence[str] = (),
) -> list[str] | None:
    """Check an input without reading its pixels; return the bands to read (None: all).

    Raises InputError (or MissingBandsError naming the bands) for anything a user can fix, so a
    run over many inputs can refuse a bad one before spending time on the others.
    """
    path, wanted, files = resolve_input(path, bands)
    if files is not None:
        present = list(files)
        if wanted is None and required:
            wanted = list(dict.fromkeys([*required, *(b for b in optional if b in files)]))
        for b in wanted or files:
            if b in files:
                check_raster_file(files[b])
    else:
        check_raster_file(path)
        with rasterio.open(path) as src:
            described = [normalise_band_name(d) if d else "" for d in src.descriptions]
        # As open_raster: descriptions name the bands only when every one is a band name.
        named = all(d in _LAYER_NAMES for d in described)
        present = described if named else (wanted or [""])
    missing = [b for b in (*(wanted or ()), *required) if all(present) and b not in present]
    if missing:
        missing = list(dict.fromkeys(missing))
        raise MissingBandsError(missing, f"{path} (bands present: {', '.join(present)})")
    return wanted


def read_window(
    path: str | Path,
    bands: Sequence[str] | None = None,
    *,
    required: Sequence[str] = (),
    optional: Sequence[str] = (),
    scale: float | None = None,
) -> RasterWindow:
    """Read a multi-band GeoTIFF or a band folder onto its UTM 10 m grid for detection.

    ``bands`` names or selects bands as in ``open_raster``; without it, a band folder is read for
    ``required`` plus whichever ``optional`` bands it has. ``scale`` (reflectance per stored value)
    overrides the files' tags and the guess. Inputs are checked first (``check_input``).
    """
    path = Path(path)
    wanted = check_input(path, bands, required=required, optional=optional)
    acquired, scene_id = file_metadata(path)
    try:
        window = open_raster(path, wanted, acquired=acquired, scene_id=scene_id, scale=scale)
    except RasterReadError as e:
        raise InputError(str(e)) from None
    missing = [b for b in required if b not in window.band_names]
    if missing:
        raise MissingBandsError(missing, f"{path} (bands read: {', '.join(window.band_names)})")
    return window


#: Named weights (under ``detect.model.weights_dir()``) each learned detector loads by default.
DEFAULT_WEIGHTS: dict[tuple[str, str], str] = {
    ("ship", "yolo"): "ships-s2",
    ("ship", "yolo-tta"): "ships-s2",
    ("ship", "yolo-onnx"): "ships-s2",
    ("truck", "gbm"): "trucks-s2",
}


def weights_fingerprint(class_name: str, method: str) -> str | None:
    """The sha256 (from the spec) of the weights ``method`` loads for ``class_name``; None for detectors
    without weights or when the spec cannot be read (loading will then say why)."""
    name = DEFAULT_WEIGHTS.get((class_name, method))
    if name is None:
        return None
    from detect.model import weights_dir

    try:
        spec = json.loads((weights_dir() / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    return spec.get("sha256") if isinstance(spec, dict) else None


def _ship_yolo(device: str = "cpu", **kw: Any) -> Detector:
    from detect.ships import ShipDetector

    return ShipDetector(device=device, **kw)


def _ship_baseline(device: str = "cpu", **kw: Any) -> Detector:
    from detect.baseline import BaselineDetector

    return BaselineDetector(**kw)


def _ship_cfar(device: str = "cpu", **kw: Any) -> Detector:
    from detect.sar import SarShipDetector  # Sentinel-1 backscatter, not optical bands

    return SarShipDetector(**kw)


def _ship_yolo_tta(device: str = "cpu", **kw: Any) -> Detector:
    from detect.ships import ShipDetector  # four flipped views per tile, fused (detect.tta): 4x compute

    return ShipDetector(device=device, tta=True, **kw)


register_detector("ship", "yolo", _ship_yolo)
register_detector("ship", "yolo-tta", _ship_yolo_tta)
register_detector("ship", "baseline", _ship_baseline)
register_detector("ship", "cfar", _ship_cfar)


def _ship_yolo_onnx(device: str = "cpu", model: str | None = None, **kw: Any) -> Detector:
    from detect.model import DEFAULT_MODEL
    from detect.onnx_runtime import OnnxYoloModel  # the exported model on onnxruntime, no torch
    from detect.ships import ShipDetector

    return ShipDetector(OnnxYoloModel.load(model or DEFAULT_MODEL, device=device), device=device, **kw)


register_detector("ship", "yolo-onnx", _ship_yolo_onnx)


def _truck_gbm(device: str = "cpu", **kw: Any) -> Detector:
    from detect.trucks import TruckDetector  # band-offset pixel classifier; see docs/trucks.md

    return TruckDetector.load(device=device, **kw)


register_detector("truck", "gbm", _truck_gbm)


@dataclass(frozen=True)
class PathSummary:
    """What ``detect_paths`` found in one input."""

    path: str
    scene: str | None
    counts: dict[str, int]
    seconds: float


def detect_paths(
    paths: Sequence[str | Path],
    *,
    classes: Sequence[str] = ("ship",),
    method: str = "yolo",
    conf: float | None = None,
    bands: Sequence[str] | None = None,
    device: str = "cpu",
    scale: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[Detection], list[PathSummary]]:
    """Run the detectors for ``classes`` on each GeoTIFF or band folder (see ``read_window``)."""
    from detect.water import WATER_BANDS

    if conf is not None and not 0.0 <= conf <= 1.0:
        raise InputError(f"conf must lie in [0, 1], got {conf}")
    from detect.pipeline import detector_methods  # --method is about ships; trucks keep their own

    methods = detector_methods(classes, method)
    detectors = [get_detector(c, methods[c], device) for c in classes]
    required = list(dict.fromkeys(b for d in detectors for b in d.required_bands))
    missing_paths = [str(p) for p in paths if not Path(p).exists()]
    if missing_paths:
        raise InputError(f"no such file or folder: {', '.join(missing_paths)}")
    for p in paths:  # refuse a bad input before spending time on the good ones
        check_input(p, bands, required=required, optional=WATER_BANDS)
    all_dets: list[Detection] = []
    summaries = []
    for p in paths:
        t0 = time.perf_counter()
        window = read_window(p, bands, required=required, optional=WATER_BANDS, scale=scale)
        counts = {}
        for c, d in zip(classes, detectors, strict=True):
            found = d.detect(window, conf=conf)
            counts[c] = len(found)
            all_dets.extend(found)
        summaries.append(PathSummary(str(p), window.scene_id, counts, round(time.perf_counter() - t0, 3)))
        if progress:
            progress(f"{p}: " + ", ".join(f"{n} {c}" for c, n in counts.items()))
    return all_dets, summaries
