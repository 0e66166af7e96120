"""Fetching: one Cloud-Optimised GeoTIFF per acquisition, clipped to the AOI grid, plus a manifest."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio

from imagery.atomic import atomic_path, atomic_write_json, atomic_write_text
from imagery.clouds import (
    S2CLOUDLESS_BANDS,
    S2CLOUDLESS_RES_M,
    aoi_mask,
    coarse_grid,
    s2cloudless_mask,
    scl_cloud_mask,
    screen,
)
from imagery.errors import HarborwatchError
from imagery.read import read_window
from imagery.types import CATEGORICAL_LAYERS, Grid, RasterWindow, Scene

if TYPE_CHECKING:
    from imagery.aoi import Aoi
    from imagery.cache import Cache

log = logging.getLogger(__name__)

#: Stored DN = round(reflectance / REFLECTANCE_SCALE); the tag lets ``open_raster`` undo it.
REFLECTANCE_SCALE = 1e-4


def write_cog(
    window: RasterWindow,
    path: str | Path,
    tags: Mapping[str, Any] | None = None,
    *,
    overviews: bool = True,
    deflate_level: int = 6,
) -> Path:
    """Write a window as a uint16 COG (DN = reflectance × 10000, 0 = nodata), atomically.

    uint16 DN halves the size of float32 and is what Sentinel-2 products store anyway; valid pixels are
    clipped to 1..65535 so that only missing data reads back as nodata.
    """
    dn = np.zeros(window.data.shape, dtype=np.uint16)
    valid = window.valid_mask & np.all(np.isfinite(window.data), axis=0)
    scaled = np.rint(np.nan_to_num(window.data, nan=0.0) / REFLECTANCE_SCALE)
    dn[:, valid] = np.clip(scaled[:, valid], 1, 65535).astype(np.uint16)
    for i, name in enumerate(window.band_names):
        if name in CATEGORICAL_LAYERS:  # class codes are stored as they are (open_raster does not scale them)
            dn[i] = np.clip(np.nan_to_num(window.data[i], nan=0.0), 0, 65535).astype(np.uint16)
    grid = window.grid
    all_tags = {"REFLECTANCE_SCALE": f"{REFLECTANCE_SCALE:g}"}
    all_tags.update({k: _tag_text(v) for k, v in (tags or {}).items()})
    blocksize = 256 if min(grid.width, grid.height) >= 256 else 128
    with atomic_path(path) as tmp, rasterio.open(
        tmp, "w", driver="COG", width=grid.width, height=grid.height, count=len(window.band_names),
        dtype="uint16", crs=grid.crs, transform=grid.transform, nodata=0,
        compress="DEFLATE", level=deflate_level, predictor=2, blocksize=blocksize,
        overviews="AUTO" if overviews else "NONE", overview_resampling="average",
    ) as dst:
        dst.write(dn)
        dst.update_tags(**all_tags)
        for i, name in enumerate(window.band_names, start=1):
            dst.set_band_description(i, name)
    return Path(path)


def _tag_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


DEFAULT_BANDS = ("B02", "B03", "B04", "B08")
#: Tiles of one datatake differ by seconds; scenes this close on one platform are one acquisition.
SAME_ACQUISITION = timedelta(minutes=5)
ATTRIBUTION = "Contains modified Copernicus Sentinel data, processed by harborwatch"
MANIFEST_FIELDS = (
    "acquisition", "datetime", "status", "cloud_fraction", "valid_fraction", "cloud_method", "outcome",
    "path", "scene_ids", "source", "collection", "platform", "processing_level", "bands", "error",
)


@dataclass(frozen=True)
class FetchRecord:
    """One acquisition in the manifest: what was written, its cloud verdict, or why it failed."""

    acquisition: str  # file stem, e.g. 20180520T024541_S2A_51SWD_20180520_0_L1C
    datetime: datetime
    scene_ids: tuple[str, ...]
    source: str
    collection: str
    platform: str
    processing_level: str
    bands: tuple[str, ...]
    outcome: str  # "written", "exists" (kept from an earlier run), "empty" (no data over the AOI), "failed"
    status: str  # cloud screen: clear / partial / cloudy / nodata / unknown ("" when failed)
    path: str | None = None  # file name inside out_dir
    cloud_fraction: float | None = None
    valid_fraction: float | None = None
    cloud_method: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["datetime"] = self.datetime.isoformat().replace("+00:00", "Z")
        d["scene_ids"] = list(self.scene_ids)
        d["bands"] = list(self.bands)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FetchRecord:
        kw = {k: d.get(k) for k in cls.__dataclass_fields__}
        kw["datetime"] = datetime.fromisoformat(str(d["datetime"]).replace("Z", "+00:00"))
        kw["scene_ids"] = tuple(d.get("scene_ids") or ())
        kw["bands"] = tuple(d.get("bands") or ())
        return cls(**kw)


@dataclass(frozen=True)
class FetchResult:
    out_dir: Path
    records: tuple[FetchRecord, ...]
    manifest_json: Path
    manifest_csv: Path

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.records)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "manifest_json": str(self.manifest_json),
            "manifest_csv": str(self.manifest_csv),
            "counts": {o: self.count(o) for o in ("written", "exists", "empty", "failed")},
            "acquisitions": [r.to_dict() for r in self.records],
        }


def fetch(
    aoi: Aoi,
    scenes: Sequence[Scene],
    out_dir: str | Path,
    bands: Sequence[str] = DEFAULT_BANDS,
    cache: Cache | None = None,
    *,
    res_m: float = 10.0,
    max_cloud: float = 0.3,
    min_valid: float = 0.9,
) -> FetchResult:
    """Write one COG per acquisition over ``aoi`` (its UTM ``res_m`` grid) into ``out_dir``, plus
    ``manifest.json`` and ``manifest.csv``. Tiles of one datatake are mosaicked into one file.

    Files already written by an earlier run are kept (resume). A scene that fails is recorded with its
    error and the others go on. Cloudy or partial acquisitions are written and flagged in the manifest.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid = aoi.grid(res_m=res_m)
    area = aoi_mask(aoi, grid)
    names = tuple(bands)
    records = []
    for group in group_acquisitions(scenes):
        stem = acquisition_name(group)
        tif, sidecar = out / f"{stem}.tif", out / f"{stem}.json"
        if tif.exists() and sidecar.exists():
            done = json.loads(sidecar.read_text())
            previous = FetchRecord.from_dict(done)
            if tuple(previous.bands) == names and done.get("grid") == grid.key():
                records.append(replace(previous, outcome="exists"))
                log.info("%s: kept from an earlier run", stem)
                continue
        record = _fetch_one(group, stem, grid, area, names, out, cache, max_cloud, min_valid)
        if record.outcome == "written":  # the sidecar, written after the COG, marks it complete
            atomic_write_json(sidecar, {**record.to_dict(), "grid": grid.key()})
        records.append(record)
        log.info("%s: %s%s", stem, record.outcome,
                 f" ({record.status}, cloud {record.cloud_fraction})" if record.outcome == "written" else
                 f": {record.error}" if record.error else "")
    manifest = {
        "aoi": aoi.name,
        "grid": {"crs": grid.crs, "transform": list(grid.transform)[:6], "shape": [grid.height, grid.width]},
        "bands": list(names),
        "reflectance_scale": REFLECTANCE_SCALE,
        "thresholds": {"max_cloud": max_cloud, "min_valid": min_valid},
        "acquisitions": [r.to_dict() for r in records],
    }
    mj = atomic_write_json(out / "manifest.json", manifest)
    mc = atomic_write_text(out / "manifest.csv", _csv(records))
    return FetchResult(out, tuple(records), mj, mc)


def group_acquisitions(scenes: Sequence[Scene]) -> list[list[Scene]]:
    """Scenes grouped into acquisitions: same platform and level, within ``SAME_ACQUISITION`` in time."""
    groups: list[list[Scene]] = []
    for s in sorted(scenes, key=lambda s: (s.platform, s.processing_level, s.datetime, s.id)):
        g = groups[-1] if groups else None
        if (g and g[0].platform == s.platform and g[0].processing_level == s.processing_level
                and s.datetime - g[0].datetime <= SAME_ACQUISITION):
            g.append(s)
        else:
            groups.append([s])
    return sorted(groups, key=lambda g: (g[0].datetime, g[0].id))


def acquisition_name(group: Sequence[Scene]) -> str:
    """File stem for an acquisition: UTC time and the first scene id, filesystem-safe."""
    first = group[0]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", first.id).strip("_")
    return f"{first.datetime.astimezone(timezone.utc):%Y%m%dT%H%M%S}_{safe}"


def _fetch_one(
    group: Sequence[Scene], stem: str, grid: Grid, area: np.ndarray, bands: tuple[str, ...], out: Path,
    cache: Cache | None, max_cloud: float, min_valid: float,
) -> FetchRecord:
    first = group[0]
    base = {
        "acquisition": stem, "datetime": first.datetime, "scene_ids": tuple(s.id for s in group),
        "source": first.source, "collection": first.collection, "platform": first.platform,
        "processing_level": first.processing_level, "bands": bands,
    }
    parts = []
    errors = []
    for scene in group:
        try:
            window = read_window(scene, grid, bands, cache=cache)
            parts.append((window, _cloud_mask(scene, grid, cache)))
        except HarborwatchError as e:
            errors.append(f"{scene.id}: {e}")
        except Exception as e:  # a bug; keep its traceback in the log, and go on with the other scenes
            log.error("unexpected error reading %s", scene.id, exc_info=True)
            errors.append(f"{scene.id}: {type(e).__name__}: {e}")
    if not parts:
        return FetchRecord(**base, outcome="failed", status="", error="; ".join(errors))
    window, cloud, method = _mosaic(parts)
    verdict = screen(cloud, window.valid_mask, max_cloud=max_cloud, min_valid=min_valid, method=method,
                     area=area)
    record = FetchRecord(
        **base, outcome="written", status=verdict.status, path=f"{stem}.tif",
        cloud_fraction=_round(verdict.cloud_fraction), valid_fraction=_round(verdict.valid_fraction),
        cloud_method=verdict.method, error="; ".join(errors) or None,
    )
    if verdict.status == "nodata":
        return replace(record, outcome="empty", path=None)
    write_cog(window, out / f"{stem}.tif", tags={
        "SCENE_ID": ",".join(record.scene_ids), "DATETIME": first.datetime, "SOURCE": first.source,
        "COLLECTION": first.collection, "PLATFORM": first.platform,
        "PROCESSING_LEVEL": first.processing_level,
        "PROCESSING_BASELINE": first.processing_baseline, "CLOUD_FRACTION": record.cloud_fraction,
        "VALID_FRACTION": record.valid_fraction, "CLOUD_STATUS": record.status,
        "CLOUD_METHOD": record.cloud_method, "ATTRIBUTION": ATTRIBUTION,
    })
    return record


def _cloud_mask(scene: Scene, grid: Grid, cache: Cache | None) -> tuple[np.ndarray | None, str]:
    """Cloud mask on ``grid`` from SCL (L2A) or s2cloudless at 60 m (L1C); (None, "none") if neither works."""
    try:
        if "SCL" in scene.assets:
            scl = read_window(scene, grid, ["SCL"], cache=cache)
            cloud, _ = scl_cloud_mask(scl.band("SCL"))
            return cloud, "scl"
        if all(b in scene.assets for b in S2CLOUDLESS_BANDS):
            coarse = read_window(scene, coarse_grid(grid, S2CLOUDLESS_RES_M), S2CLOUDLESS_BANDS, cache=cache)
            return s2cloudless_mask(coarse, grid), "s2cloudless"
    except HarborwatchError as e:
        log.warning("no cloud mask for %s: %s", scene.id, e)
    return None, "none"


def _mosaic(parts: list[tuple[RasterWindow, tuple[np.ndarray | None, str]]]) -> tuple[RasterWindow, Any, str]:
    """Merge windows of one acquisition: the most complete first, gaps filled from the others."""
    parts = sorted(parts, key=lambda p: -p[0].valid_fraction)
    window, (cloud, method) = parts[0]
    data, valid = window.data.copy(), window.valid_mask.copy()
    cloud = None if cloud is None else cloud.copy()
    for other, (other_cloud, _) in parts[1:]:
        fill = ~valid & other.valid_mask
        data[:, fill] = other.data[:, fill]
        if cloud is not None:
            cloud[fill] = other_cloud[fill] if other_cloud is not None else False
        valid |= fill
    merged = replace(window, data=data, valid=valid, cloud=cloud,
                     scene_id=",".join(w.scene_id or "" for w, _ in parts))
    return merged, cloud, method


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _csv(records: Sequence[FetchRecord]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        d = r.to_dict()
        d["scene_ids"] = ";".join(d["scene_ids"])
        d["bands"] = ",".join(d["bands"])
        writer.writerow({k: "" if d.get(k) is None else d[k] for k in MANIFEST_FIELDS})
    return buf.getvalue()
