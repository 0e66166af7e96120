"""Every built-in detector, registered, and ``detect_paths``: the detectors run on GeoTIFFs or band folders.

Importing this module imports the detector packages (``detect.ships``, ``detect.trucks``, ``detect.sar``),
which register their factories in ``detect.core.registry``; code above the detectors (pipeline, CLI,
notebooks) imports the registry's functions from here so the built-in detectors are always known.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import detect.sar
import detect.ships
import detect.trucks  # noqa: F401  (the three packages register their detectors on import)
from detect.core.geometry import Detection
from detect.core.inputs import check_input, read_window
from detect.core.registry import (
    DEFAULT_SHIP_METHOD,
    Detector,
    detect_window,
    detector_bands,
    detector_methods,
    get_detector,
    register_detector,
    registered,
    weights_fingerprint,
)
from detect.core.water import WATER_BANDS
from imagery.errors import InputError

__all__ = [
    "Detector",
    "PathSummary",
    "detect_paths",
    "detect_window",
    "detector_bands",
    "detector_methods",
    "get_detector",
    "register_detector",
    "registered",
    "weights_fingerprint",
]


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
    method: str = DEFAULT_SHIP_METHOD,
    conf: float | None = None,
    bands: Sequence[str] | None = None,
    device: str = "cpu",
    scale: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[Detection], list[PathSummary]]:
    """Run the detectors for ``classes`` on each GeoTIFF or band folder (see ``read_window``)."""
    if conf is not None and not 0.0 <= conf <= 1.0:
        raise InputError(f"conf must lie in [0, 1], got {conf}")
    methods = detector_methods(classes, method)  # --method is about ships; trucks keep their own
    detectors = [get_detector(c, methods[c], device) for c in classes]
    required = list(dict.fromkeys(b for d in detectors for b in d.required_bands))
    optional = [b for d in detectors for b in getattr(d, "optional_bands", ())]
    optional = list(dict.fromkeys([*optional, *WATER_BANDS]))
    missing_paths = [str(p) for p in paths if not Path(p).exists()]
    if missing_paths:
        raise InputError(f"no such file or folder: {', '.join(missing_paths)}")
    for p in paths:  # refuse a bad input before spending time on the good ones
        check_input(p, bands, required=required, optional=optional)
    all_dets: list[Detection] = []
    summaries = []
    for p in paths:
        t0 = time.perf_counter()
        window = read_window(p, bands, required=required, optional=optional, scale=scale)
        counts = {}
        for c, d in zip(classes, detectors, strict=True):
            found = d.detect(window, conf=conf)
            counts[c] = len(found)
            all_dets.extend(found)
        summaries.append(PathSummary(str(p), window.scene_id, counts, round(time.perf_counter() - t0, 3)))
        if progress:
            progress(f"{p}: " + ", ".join(f"{n} {c}" for c, n in counts.items()))
    return all_dets, summaries
