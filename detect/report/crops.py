"""Every counted detection as a small true-colour crop: detection ids, which detections a day's count
is made of, low-score marks, and the crops themselves (``crops/<date>/<id>.jpg`` plus ``crops/crops.csv``).

A crop holds the pixels only; its box, score and length travel in ``crops.csv`` (and the report draws
the box over the crop), so other tools get clean imagery.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from detect.counting.aggregate import ALL_ZONE
from imagery.aoi import to_crs
from imagery.atomic import atomic_write_bytes, atomic_write_text
from imagery.types import Grid

#: Crop side in pixels (480 m at 10 m): the longest ships (~400 m) fit with some water around them.
CROP_PX = 48
#: Detections in the lowest quarter of their detector's scores in the run are marked "low score". Scores
#: of different detectors are on different scales (YOLO keeps boxes from 0.25, the segmentation model
#: from ~0.95), so the mark is relative to the detector, not one number for all.
LOW_SCORE_QUANTILE = 0.25
JPEG_QUALITY = 90
CROPS_COLUMNS = (
    "id",
    "date",
    "scene",
    "class",
    "detector",
    "score",
    "low_score",
    "length_m",
    "lon",
    "lat",
    "file",
    "row0",
    "col0",
    "box_px",
)


def with_ids(detections: pd.DataFrame) -> pd.DataFrame:
    """The detections with an ``id`` column first: ``YYYYMMDD-NNN``, numbered per UTC date in table order
    (scenes in acquisition order), the same on every rerun of the same run folder."""
    dates = detections["date"].map(lambda d: d.strftime("%Y%m%d") if hasattr(d, "strftime") else "nodate")
    n = dates.groupby(dates).cumcount() + 1
    ids = [f"{d}-{k:03d}" for d, k in zip(dates, n, strict=True)]
    return detections.drop(columns=["id"], errors="ignore").assign(id=ids)[
        ["id", *[c for c in detections.columns if c != "id"]]
    ]


def counted_detections(detections: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """The detections each day's whole-AOI count is made of (the counted scene's, class by class), for
    every day that was seen; a detection in a second scene of the same day was not counted, so not here."""
    rows = daily[(daily["zone"] == ALL_ZONE) & (daily["status"] != "unobserved")]
    counted = set(zip(rows["scene"], rows["class"], strict=True))
    if detections.empty or not counted:
        return detections.iloc[0:0]
    in_aoi = detections["zones"].fillna("").str.split(";").map(lambda zs: ALL_ZONE in zs)
    key = pd.Series(list(zip(detections["scene"], detections["class"], strict=True)), index=detections.index)
    return detections[key.isin(counted) & in_aoi]


def low_score_cutoffs(detections: pd.DataFrame, quantile: float = LOW_SCORE_QUANTILE) -> dict[str, float]:
    """Detector → the score below which its detections are marked "low score" (its ``quantile``)."""
    if detections.empty:
        return {}
    by = detections.groupby(detections["detector"].fillna("").astype(str))["score"]
    return {str(k): float(v) for k, v in by.quantile(quantile).items()}


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """(3, H, W) reflectance (or dB) → (H, W, 3) uint8 with the report's 2–98 % stretch."""
    from detect.report.charts import stretch_rgb

    return np.round(stretch_rgb(image) * 255).astype(np.uint8)


def write_crops(
    rgb8: np.ndarray | None,
    grid: Grid,
    detections: pd.DataFrame,
    folder: Path,
    *,
    cutoffs: dict[str, float],
    size: int = CROP_PX,
) -> list[dict]:
    """One ``size``² JPEG per detection (with an ``id``) from ``rgb8`` (H, W, 3 on ``grid``), under
    ``folder/<date>/``; returns the crops' rows (see :data:`CROPS_COLUMNS`; ``file`` relative to the run
    folder, ``box_px`` the box's corners in crop pixels). Without an image the rows have no file."""
    from PIL import Image

    rows = []
    inverse = ~grid.transform
    for rec in detections.to_dict("records"):
        x, y = to_crs(_point(rec["lon"], rec["lat"]), grid.crs).coords[0]
        col, row = inverse @ (x, y)
        r0, c0 = round(row - size / 2), round(col - size / 2)
        corners = [inverse @ xy for xy in to_crs(rec["geometry"], grid.crs).exterior.coords[:-1]]
        box = ";".join(f"{cx - c0:.1f} {cy - r0:.1f}" for cx, cy in corners)
        day = rec["date"].isoformat() if hasattr(rec["date"], "isoformat") else "nodate"
        file = ""
        if rgb8 is not None:
            crop = _window(rgb8, r0, c0, size)
            buf = io.BytesIO()
            Image.fromarray(crop).save(buf, "JPEG", quality=JPEG_QUALITY)
            path = folder / day / f"{rec['id']}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buf.getvalue())
            file = f"{folder.name}/{day}/{rec['id']}.jpg"
        detector = "" if rec.get("detector") is None else str(rec["detector"])
        rows.append(
            {
                "id": rec["id"],
                "date": day,
                "scene": rec["scene"],
                "class": rec["class"],
                "detector": detector,
                "score": float(rec["score"]),
                "low_score": bool(rec["score"] < cutoffs.get(detector, -np.inf)),
                "length_m": float(rec["length_m"]),
                "lon": float(rec["lon"]),
                "lat": float(rec["lat"]),
                "file": file,
                "row0": r0,
                "col0": c0,
                "box_px": box,
            }
        )
    return rows


def write_crops_index(rows: Iterable[dict], folder: Path) -> tuple[Path, pd.DataFrame]:
    """``folder/crops.csv`` (one row per crop) and the table; crop files of earlier runs that this run did
    not write are removed, so the folder always matches the index."""
    table = pd.DataFrame(list(rows), columns=list(CROPS_COLUMNS))
    folder.mkdir(parents=True, exist_ok=True)
    keep = {folder.parent / f for f in table["file"] if f}
    for old in folder.glob("*/*.jpg"):
        if old not in keep:
            old.unlink()
    for day in folder.iterdir():
        if day.is_dir() and not any(day.iterdir()):
            day.rmdir()
    return atomic_write_text(folder / "crops.csv", table.to_csv(index=False)), table


def _window(rgb8: np.ndarray, r0: int, c0: int, size: int) -> np.ndarray:
    """``rgb8[r0:r0+size, c0:c0+size]``, black where the window leaves the image."""
    out = np.zeros((size, size, 3), np.uint8)
    h, w = rgb8.shape[:2]
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + size, h), min(c0 + size, w)
    if rs < re and cs < ce:
        out[rs - r0 : re - r0, cs - c0 : ce - c0] = rgb8[rs:re, cs:ce]
    return out


def _point(lon: float, lat: float):
    from shapely.geometry import Point

    return Point(float(lon), float(lat))
