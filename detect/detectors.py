"""Every built-in detector, registered, and ``detect_paths``: the detectors run on GeoTIFFs or band folders.

Importing this module imports the detector packages (``detect.ships``, ``detect.trucks``, ``detect.sar``),
which register their factories in ``detect.core.registry``; code above the detectors (pipeline, CLI,
notebooks) imports the registry's functions from here so the built-in detectors are always known.
"""

from __future__ import annotations

import logging
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
from imagery.safe import safe_granule
from imagery.sar import (
    SAR_POLARISATIONS,
    check_calibration,
    is_sentinel1,
    local_polarisations,
    native_pixel_m,
    read_s1,
)
from imagery.types import RasterWindow

log = logging.getLogger(__name__)

#: ``--method`` for Sentinel-1 inputs; ``auto`` routes them here.
SAR_METHOD = "cfar"
#: Sentinel-1 is read onto a UTM grid this fine (the GRDH pixel spacing), or at the native spacing if coarser.
S1_RES_M = 10.0

__all__ = [
    "Detector",
    "PathSummary",
    "SarReading",
    "detect_paths",
    "detect_window",
    "detector_bands",
    "detector_methods",
    "get_detector",
    "read_sar_input",
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


@dataclass(frozen=True)
class SarReading:
    """How ``detect_paths`` reads Sentinel-1 inputs (``imagery.sar.read_s1``): a calibration XML, the
    quantity pixels already hold (sigma0, gamma0, beta0), DN² without calibration, the grid's pixel size."""

    calibration: str | Path | None = None
    calibrated: str | None = None
    allow_uncalibrated: bool = False
    res_m: float | None = None


def _sar_plan(path: Path, bands: Sequence[str] | None, reading: SarReading) -> tuple[str, str]:
    """(polarisation, quantity) of a Sentinel-1 input, checked without reading pixels: the co-polarised
    band (VV, else HH) unless ``bands`` names one."""
    available = local_polarisations(path)
    if bands:
        pols = [b.strip().upper() for b in bands]
        if len(pols) != 1 or pols[0] not in SAR_POLARISATIONS:
            raise InputError(
                f"{path}: Sentinel-1 ships are found in one polarisation; got --bands {','.join(bands)}"
            )
        pol = pols[0]
    else:
        pol = "VV" if "VV" in available or "HH" not in available else "HH"
    quantity = check_calibration(
        path,
        (pol,),
        calibration=reading.calibration,
        calibrated=reading.calibrated,
        allow_uncalibrated=reading.allow_uncalibrated,
    )
    return pol, quantity


def read_sar_input(path: str | Path, pol: str, reading: SarReading | None = None) -> RasterWindow:
    """A Sentinel-1 SAFE folder or GeoTIFF on its UTM grid (``S1_RES_M``, or its native spacing if coarser)
    in polarisation ``pol``."""
    r = reading or SarReading()
    res = r.res_m or max(S1_RES_M, round(native_pixel_m(path) or S1_RES_M))
    return read_s1(
        path,
        (pol,),
        res_m=res,
        calibration=r.calibration,
        calibrated=r.calibrated,
        allow_uncalibrated=r.allow_uncalibrated,
    )


def detect_paths(
    paths: Sequence[str | Path],
    *,
    classes: Sequence[str] = ("ship",),
    method: str = DEFAULT_SHIP_METHOD,
    conf: float | None = None,
    bands: Sequence[str] | None = None,
    device: str = "cpu",
    scale: float | None = None,
    sar: SarReading | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[Detection], list[PathSummary]]:
    """Run the detectors for ``classes`` on each GeoTIFF, band folder or Sentinel-1 SAFE folder.

    Optical inputs are read by ``read_window``. Sentinel-1 inputs (``imagery.sar.is_sentinel1``) go to the
    CFAR ship detector when ``method`` is ``cfar`` or ``auto``, read as ``sar`` says (``SarReading``);
    a Sentinel-1 input without calibration raises ``MissingCalibrationError`` unless it allows DN².
    """
    if conf is not None and not 0.0 <= conf <= 1.0:
        raise InputError(f"conf must lie in [0, 1], got {conf}")
    reading = sar or SarReading()
    unique: dict[Path, str | Path] = {}
    for p in paths:  # a SAFE product and its one granule's IMG_DATA are one input too
        unique.setdefault(safe_granule(Path(p)).resolve() if Path(p).is_dir() else Path(p).resolve(), p)
    if len(unique) < len(paths):  # one input given twice would count its objects twice
        log.warning("%d input(s) given more than once: each is read once", len(paths) - len(unique))
        paths = list(unique.values())
    missing_paths = [str(p) for p in paths if not Path(p).exists()]
    if missing_paths:
        raise InputError(f"no such file or folder: {', '.join(missing_paths)}")
    radar = {str(p): method == SAR_METHOD or (method == "auto" and is_sentinel1(p)) for p in paths}
    plans: dict[str, tuple[str, str]] = {}
    for p in paths:  # refuse a bad input before spending time on the good ones
        if radar[str(p)]:
            if list(classes) != ["ship"]:
                raise InputError(f"{p} is Sentinel-1 radar: only ships are found there (--classes ship)")
            plans[str(p)] = _sar_plan(Path(p), bands, reading)
        elif is_sentinel1(p):
            raise InputError(
                f"{p} is Sentinel-1 radar; --method {method} needs optical bands, use cfar or auto"
            )
    optical = [p for p in paths if not radar[str(p)]]
    detectors: list[Detector] = []
    required: list[str] = []
    optional: list[str] = []
    if optical:  # optical models load only when an optical input needs them
        methods = detector_methods(classes, method)  # --method is about ships; trucks keep their own
        detectors = [get_detector(c, methods[c], device) for c in classes]
        required = list(dict.fromkeys(b for d in detectors for b in d.required_bands))
        optional = [b for d in detectors for b in getattr(d, "optional_bands", ())]
        optional = list(dict.fromkeys([*optional, *WATER_BANDS]))
        for p in optical:
            check_input(p, bands, required=required, optional=optional)
    all_dets: list[Detection] = []
    summaries = []
    for p in paths:
        t0 = time.perf_counter()
        if radar[str(p)]:
            pol = plans[str(p)][0]
            window = read_sar_input(p, pol, reading)
            pairs = [("ship", get_detector("ship", SAR_METHOD, device, polarisation=pol))]
        else:
            # a band of all nodata is left out, as `run` does (it would blank every pixel's validity); a
            # detector that needs it says so (RasterWindow.missing_bands)
            window = read_window(p, bands, required=required, optional=optional, scale=scale)
            window = window.without_empty_bands()
            pairs = list(zip(classes, detectors, strict=True))
        counts = {}
        for c, d in pairs:
            found = d.detect(window, conf=conf)
            counts[c] = len(found)
            all_dets.extend(found)
        summaries.append(PathSummary(str(p), window.scene_id, counts, round(time.perf_counter() - t0, 3)))
        if progress:
            progress(f"{p}: " + ", ".join(f"{n} {c}" for c, n in counts.items()))
    return all_dets, summaries
