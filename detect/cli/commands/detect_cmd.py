"""`harborwatch detect` (rasters → GeoJSON detections) and `harborwatch evaluate` (scores vs COCO labels)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from detect.cli.app import check_geojson_out, cli, emit, res_option
from detect.core.device import device_option
from imagery.errors import InputError

log = logging.getLogger("harborwatch")

#: Optical ship methods (``evaluate`` scores these); ``detect`` adds ``cfar`` for Sentinel-1.
METHODS = ("auto", "seg", "seg-b4", "seg-ens", "yolo", "yolo-tta", "baseline")
DETECT_METHODS = (*METHODS, "cfar")


def parse_scale(value: str | None) -> float | None:
    """``--scale``: reflectance per stored value, as a number or a fraction (``1/65535``, ``1e-4``)."""
    if value is None:
        return None
    try:
        num, _, den = value.partition("/")
        scale = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"--scale {value!r} is not a number or a fraction like 1/65535") from None
    if not 0 < scale <= 1:
        raise InputError(f"--scale must lie in (0, 1], got {value}")
    return scale


_SCALE_HELP = (
    "Reflectance per stored value for every band, e.g. 1e-4 (Sentinel-2 DN) or 1/65535 (Sentinel Hub "
    "raw exports such as sen2ships). Default: the file's REFLECTANCE_SCALE tag, else a guess."
)


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise InputError(f"empty list {value!r}; give comma-separated names")
    return items


@cli.command("detect")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="GeoJSON FeatureCollection to write (EPSG:4326).",
)
@click.option("--classes", default="ship", show_default=True, help="Comma-separated classes to detect.")
@click.option("--conf", type=float, default=None, help="Score threshold (default: the detector's).")
@click.option(
    "--method",
    type=click.Choice(DETECT_METHODS),
    default="auto",
    show_default=True,
    help="auto (the default: cfar for Sentinel-1 inputs, else per input the best measured model for its "
    "bands: since session 25 seg-ens on every band set), seg-ens (seg-b4 and seg, their probabilities "
    "averaged), seg-b4 (hull segmentation on a pretrained encoder: any bands with B08 or true colour), seg "
    "(the plain U-Net v7, the same bands), yolo (oriented "
    "boxes, B04 B03 B02 "
    "B08), yolo-tta (yolo with flip test-time augmentation: 4x the model's compute), baseline (classical "
    "NIR CFAR) or cfar (Sentinel-1 radar ships: SAFE folders, VV/VH/HH/HV GeoTIFFs).",
)
@click.option(
    "--bands",
    default=None,
    help="Band names, e.g. B04,B03,B02,B08: name the bands of a GeoTIFF without band descriptions, "
    "or select bands.",
)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    callback=device_option,
    help="Torch device for the model (cpu, cuda:0).",
)
@click.option("--scale", default=None, help=_SCALE_HELP)
@click.option(
    "--calibration",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sentinel-1: the calibration XML of a GRD DN GeoTIFF (a SAFE folder's own is found by itself).",
)
@click.option(
    "--calibrated",
    type=click.Choice(("sigma0", "gamma0", "beta0")),
    default=None,
    help="Sentinel-1: the pixels hold this calibrated backscatter already (linear). Default: the "
    "GeoTIFF's SAR_QUANTITY tag or band names such as Sigma0_VV.",
)
@click.option(
    "--uncalibrated",
    is_flag=True,
    help="Sentinel-1 without calibration: read DN² (CFAR is scale-free; absolute dB values are left out).",
)
@click.option(
    "--res",
    "res_m",
    type=float,
    callback=res_option,
    default=None,
    help="Sentinel-1: grid pixel size in metres (default 10, or the raster's own spacing if coarser).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def detect_command(
    paths: tuple[Path, ...],
    out: Path,
    classes: str,
    conf: float | None,
    method: str,
    bands: str | None,
    device: str,
    scale: str | None,
    calibration: Path | None,
    calibrated: str | None,
    uncalibrated: bool,
    res_m: float | None,
    as_json: bool,
) -> None:
    """Detect objects in GeoTIFFs, band folders (*_B02.tif, *_B03.tif, ...) or Sentinel-1 SAFE folders and
    write GeoJSON."""
    from detect.core.geometry import feature_collection
    from detect.detectors import SarReading, detect_paths
    from imagery.atomic import atomic_write_json
    from imagery.sar import MissingCalibrationError

    check_geojson_out(out)
    class_list = _split(classes) or ["ship"]
    sar = SarReading(calibration, calibrated, uncalibrated, res_m)
    try:
        dets, summaries = detect_paths(
            list(paths),
            classes=class_list,
            method=method,
            conf=conf,
            bands=_split(bands),
            device=device,
            scale=parse_scale(scale),
            sar=sar,
            progress=log.info,
        )
    except MissingCalibrationError as e:  # name the CLI's options, not the library's arguments
        raise MissingCalibrationError(
            f"{str(e).split(' (expected')[0]}: give --calibration XML, --calibrated sigma0|gamma0|beta0 "
            "if the pixels are calibrated already, or --uncalibrated to detect on relative DN²"
        ) from None
    detector_names = sorted({d.detector for d in dets})
    fc = feature_collection(
        dets, method=method, classes=class_list, inputs=[s.path for s in summaries], detectors=detector_names
    )
    atomic_write_json(out, fc)
    totals = {c: sum(s.counts.get(c, 0) for s in summaries) for c in class_list}
    summary = {
        "out": str(out),
        "method": method,
        "counts": totals,
        "paths": [
            {"path": s.path, "scene": s.scene, "counts": s.counts, "seconds": s.seconds} for s in summaries
        ],
    }
    human = f"{', '.join(f'{n} {c}' for c, n in totals.items())} in {len(summaries)} input(s) → {out}"
    emit(summary, as_json, human)


@cli.command("evaluate")
@click.option(
    "--images",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder the COCO file names are relative to (scene folders or GeoTIFFs).",
)
@click.option("--annotations", required=True, type=click.Path(path_type=Path), help="COCO annotations JSON.")
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True)
@click.option(
    "--model",
    default=None,
    help="Weights name or .pt/.json path for --method seg (default ships-s2-seg), seg-b4 (ships-s2-seg-b4), "
    "seg-ens (ships-s2-seg-ens: an ensemble spec) or yolo (ships-s2).",
)
@click.option("--cities", default=None, help="Comma-separated scene keys/cities to score (default: all).")
@click.option("--conf", type=float, default=None, help="Operating threshold for P/R/F1/counts.")
@click.option("--device", default="cpu", show_default=True, callback=device_option)
@click.option("--scale", default=None, help=_SCALE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def evaluate_command(
    images: Path,
    annotations: Path,
    method: str,
    model: str | None,
    cities: str | None,
    conf: float | None,
    device: str,
    scale: str | None,
    as_json: bool,
) -> None:
    """Score a detector on labelled scenes: per-scene and overall P/R/F1/AP50/count error/length MAE."""
    from detect.detectors import get_detector
    from detect.ships.evaluate import evaluate

    if not images.is_dir():
        raise InputError(f"--images {images} is not a folder")
    if not annotations.is_file():
        raise InputError(f"--annotations {annotations} is not a file")
    if conf is not None and not 0.0 <= conf <= 1.0:
        raise InputError(f"conf must lie in [0, 1], got {conf}")
    if model is not None and method not in ("seg", "seg-b4", "seg-ens", "yolo", "yolo-tta"):
        raise InputError("--model applies to --method seg, seg-b4, seg-ens, yolo or yolo-tta only")
    kw = {"model": model} if model else {}
    detector = get_detector("ship", method, device, **kw)
    report = evaluate(
        detector, images, annotations, _split(cities), conf=conf, scale=parse_scale(scale), progress=log.info
    )
    emit(report.to_dict(), as_json, report.table())
