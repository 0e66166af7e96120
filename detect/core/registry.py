"""The Detector protocol and the registry of detectors by (class, method).

A detector turns a ``RasterWindow`` into ``Detection`` records. Detector packages register a factory
here (``register_detector("truck", "gbm", make_truck_detector)``); ``get_detector`` builds each one
once per process, so weights load once. ``detect.detectors`` imports every built-in detector package.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from detect.core.geometry import Detection, detection_from_pixel_box
from detect.core.slicing import CLS, SCORE, rotated_corners
from imagery.errors import InputError
from imagery.types import RasterWindow

#: The ship detector a run uses unless told otherwise: per scene, the best measured model for its bands
#: (``detect.ships.auto``; weights/ships-s2-seg-ens.md says why).
DEFAULT_SHIP_METHOD = "auto"


@runtime_checkable
class Detector(Protocol):
    """Anything that finds objects of ``classes`` in a window that holds ``required_bands``; a detector may
    also list ``optional_bands`` it uses where a scene has them."""

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


def clear_detector_cache() -> None:
    """Forget the detectors built so far (they hold loaded weights); the next ``get_detector`` builds anew."""
    _CACHE.clear()


def registered() -> list[tuple[str, str]]:
    """(class, method) pairs that ``get_detector`` knows."""
    return sorted(_FACTORIES)


def get_detector(
    class_name: str, method: str = DEFAULT_SHIP_METHOD, device: str = "cpu", **kw: Any
) -> Detector:
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
    method: str = DEFAULT_SHIP_METHOD,
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


#: Named weights (under ``detect.core.weights.weights_dir()``) each learned detector loads by default.
DEFAULT_WEIGHTS: dict[tuple[str, str], str | tuple[str, ...]] = {
    # every model auto's PREFERENCE may run (a tuple: see provenance)
    ("ship", "auto"): ("ships-s2-seg-ens",),
    ("ship", "seg"): "ships-s2-seg",
    ("ship", "seg-b4"): "ships-s2-seg-b4",
    ("ship", "seg-ens"): "ships-s2-seg-ens",
    ("ship", "yolo"): "ships-s2",
    ("ship", "yolo-tta"): "ships-s2",
    ("ship", "yolo-onnx"): "ships-s2",
    ("truck", "gbm"): "trucks-s2",
}


def weights_fingerprint(class_name: str, method: str) -> str | None:
    """The sha256 (from the spec) of the weights ``method`` loads for ``class_name`` (joined with ``+``
    for a method that may load several), with the spec's ``dark_reference`` where it has one (the haze
    correction of L1C input); None for detectors without weights or when a spec cannot be read (loading
    will then say why)."""
    names = DEFAULT_WEIGHTS.get((class_name, method))
    if names is None:
        return None
    from detect.core.weights import weights_dir

    digests = []
    for name in (names,) if isinstance(names, str) else names:
        try:
            spec = json.loads((weights_dir() / f"{name}.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(spec, dict) or not spec.get("sha256"):
            return None
        digest = str(spec["sha256"])
        if spec.get("dark_reference"):
            digest += "/dark:" + json.dumps(spec["dark_reference"], sort_keys=True, separators=(",", ":"))
        digests.append(digest)
    return "+".join(digests)


def detector_methods(classes: Sequence[str], method: str) -> dict[str, str]:
    """Class → detector method: ``method`` where that class has it (``--method`` is about ships),
    else the class's own detector (``DEFAULT_SHIP_METHOD`` if registered, else its only or first method)."""
    known: dict[str, list[str]] = {}
    for c, m in registered():
        known.setdefault(c, []).append(m)
    out: dict[str, str] = {}
    for c in classes:
        options = known.get(c, [])
        if not options:
            raise InputError(
                f"no detector for class {c!r}; classes with detectors: {', '.join(sorted(known))}"
            )
        out[c] = (
            method
            if method in options
            else (DEFAULT_SHIP_METHOD if DEFAULT_SHIP_METHOD in options else options[0])
        )
    every = sorted({m for ms in known.values() for m in ms})
    if method not in every:
        raise InputError(f"unknown detector method {method!r}; methods: {', '.join(every)}")
    if "ship" in classes and method not in known["ship"]:  # --method is about ships: never swapped silently
        raise InputError(
            f"--method {method} has no ship detector; ship methods: {', '.join(sorted(known['ship']))} "
            "(the other classes use their own detector)"
        )
    return out


def detector_bands(methods: dict[str, str]) -> tuple[str, ...]:
    """Bands the detectors read, in a stable order: the ones they need, then the ones they use when a
    scene has them (``optional_bands``; a scene without them is read without them)."""
    out: list[str] = []
    for c, m in methods.items():
        d = get_detector(c, m)
        for b in (*d.required_bands, *getattr(d, "optional_bands", ())):
            if b not in out:
                out.append(b)
    return tuple(out)
