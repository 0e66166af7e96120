"""Reading rasters onto a grid: local GeoTIFFs and band folders now, remote COG windows too.

Every read returns a ``RasterWindow`` whose bands are aligned on one grid (by default the
UTM zone at 10 m), with reflectance on the 0–1 scale.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.warp import reproject, transform_bounds

from imagery.aoi import utm_crs_for
from imagery.errors import CrsError, InputError, MissingBandsError, RasterReadError
from imagery.types import CATEGORICAL_LAYERS, Grid, RasterWindow

log = logging.getLogger(__name__)

#: File names like ``genoa_B04.tif``, ``T51SWD_20180520T023321_B02_10m.jp2``, ``iw-vv.tiff``.
BAND_FILE_RE = re.compile(
    r"(?:^|[_\-.])(B0[1-9]|B1[0-2]|B8A|SCL|VV|VH|HH|HV)(?:_\d+m)?\.(?:tif|tiff|jp2)$", re.IGNORECASE
)
_BAND_NAME_RE = re.compile(r"^(B0[1-9]|B1[0-2]|B8A|SCL|VV|VH|HH|HV)$", re.IGNORECASE)


def normalise_band_name(name: str) -> str:
    """'b4', 'B4', 'B04' → 'B04'; 'b8a' → 'B8A'; 'vv' → 'VV'."""
    n = name.strip().upper()
    m = re.fullmatch(r"B(\d{1,2})", n)
    if m:
        return f"B{int(m.group(1)):02d}"
    return n


def find_band_files(folder: str | Path) -> dict[str, Path]:
    """Map band name → file for a folder of one-band-per-file rasters (``*_B04.tif`` …)."""
    folder = Path(folder)
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        m = BAND_FILE_RE.search(p.name)
        if m and p.is_file():
            band = normalise_band_name(m.group(1))
            if band in found:
                raise InputError(f"two files for band {band} in {folder}: {found[band].name}, {p.name}")
            found[band] = p
    return found


def default_grid_for(src_crs, src_bounds, res_m: float = 10.0) -> Grid:
    """The UTM 10 m grid covering a raster's footprint."""
    west, south, east, north = transform_bounds(src_crs, "EPSG:4326", *src_bounds, densify_pts=21)
    crs = utm_crs_for((west + east) / 2, (south + north) / 2)
    left, bottom, right, top = transform_bounds(src_crs, crs, *src_bounds, densify_pts=21)
    return Grid.from_bounds(crs, (left, bottom, right, top), res_m)


def _guess_scale(dtype: str, sample: np.ndarray) -> float:
    """Multiplier from stored values to reflectance when the file does not say.

    Floats at most ~2 are reflectance already; integers are Sentinel-2 DN (× 1e-4), except Sentinel Hub
    "raw" uint16 exports (reflectance × 65535), recognised by a median too bright for × 1e-4 to be plausible.
    """
    finite = sample[np.isfinite(sample) & (sample > 0)]
    if finite.size == 0:
        return 1e-4
    med = float(np.median(finite))
    if np.issubdtype(np.dtype(dtype), np.floating) and float(np.percentile(finite, 99)) <= 2.0:
        return 1.0
    if dtype == "uint16" and med * 1e-4 > 0.3:
        log.info("values look like reflectance × 65535 (median %.0f); scaling by 1/65535", med)
        return 1.0 / 65535.0
    return 1e-4


def _file_scale(src: rasterio.io.DatasetReader, band_index: int) -> float | None:
    """Scale declared by the file: our REFLECTANCE_SCALE tag or GDAL band scale metadata."""
    tag = src.tags().get("REFLECTANCE_SCALE") or src.tags(band_index).get("REFLECTANCE_SCALE")
    if tag:
        return float(tag)
    scales = src.scales
    if scales and scales[band_index - 1] not in (None, 1.0):
        return float(scales[band_index - 1])
    return None


def reproject_array(
    data: np.ndarray,
    src_transform,
    src_crs,
    grid: Grid,
    *,
    categorical: bool = False,
    src_nodata: float | None = None,
) -> np.ndarray:
    """Resample a 2-D array onto ``grid``; outside the source, NaN (float) or 0 (categorical)."""
    dst = np.full(grid.shape, 0 if categorical else np.nan, dtype=np.uint8 if categorical else np.float32)
    src = data if categorical else data.astype(np.float32, copy=False)
    src_res = abs(src_transform.a)
    if categorical:
        method = Resampling.nearest
    elif src_res < grid.res_m * 0.9 and abs(src_transform.a - grid.res_m) > 1e-6:
        method = Resampling.average  # downsampling: average, not alias
    else:
        method = Resampling.bilinear
    reproject(
        src,
        dst,
        src_transform=src_transform,
        src_crs=src_crs,
        src_nodata=src_nodata if categorical else (np.nan if src_nodata is None else src_nodata),
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=0 if categorical else np.nan,
        resampling=method,
    )
    return dst


def open_raster(
    path: str | Path,
    bands: list[str] | tuple[str, ...] | None = None,
    *,
    grid: Grid | None = None,
    res_m: float = 10.0,
    scale: float | None = None,
    native: bool = False,
    acquired: datetime | None = None,
    scene_id: str | None = None,
) -> RasterWindow:
    """Read a local GeoTIFF (multi-band, bands named by description or ``bands``) or a band folder.

    The result lies on ``grid`` if given, else on the raster's own grid when it is already a UTM
    ``res_m`` grid (or ``native=True``), else on the UTM ``res_m`` grid covering it — so lengths in
    pixels are true ground metres even for Web Mercator exports.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file or folder: {path}")
    wanted = [normalise_band_name(b) for b in bands] if bands else None
    if path.is_dir():
        files = find_band_files(path)
        if not files:
            raise InputError(f"{path} holds no band files named like *_B04.tif")
        names = wanted or [b for b in files if b != "SCL"]
        missing = [b for b in names if b not in files]
        if missing:
            raise MissingBandsError(missing, str(path))
        sources = [(files[b], 1, b) for b in names]
    else:
        try:
            with rasterio.open(path) as src:
                desc = [normalise_band_name(d) if d and _BAND_NAME_RE.match(d.strip()) else None
                        for d in src.descriptions]
                count = src.count
        except RasterioIOError as e:
            raise RasterReadError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
        if all(desc):
            available = dict(zip(desc, range(1, count + 1)))
            names = wanted or list(desc)  # type: ignore[arg-type]
            missing = [b for b in names if b not in available]
            if missing:
                raise MissingBandsError(missing, f"{path} (bands in file: {', '.join(desc)})")  # type: ignore[arg-type]
            sources = [(path, available[b], b) for b in names]
        elif wanted:
            if len(wanted) != count:
                raise InputError(f"{path} has {count} bands but --bands names {len(wanted)}: {','.join(wanted)}")
            sources = [(path, i + 1, b) for i, b in enumerate(wanted)]
        else:
            raise InputError(
                f"{path} has {count} bands without band descriptions; name them with --bands, e.g. B04,B03,B02,B08"
            )
        if scene_id is None:
            scene_id = path.stem

    layers: list[np.ndarray] = []
    valid = None
    out_grid = grid
    for file, index, band in sources:
        try:
            with rasterio.open(file) as src:
                if src.crs is None:
                    raise CrsError(f"{file} has no CRS; harborwatch needs georeferenced rasters")
                if out_grid is None:
                    is_utm = src.crs.to_epsg() is not None and str(src.crs.to_epsg())[:3] in ("326", "327")
                    if native or (is_utm and abs(abs(src.transform.a) - res_m) < 0.05 * res_m
                                  and src.transform.b == 0 and src.transform.d == 0):
                        out_grid = Grid(
                            crs=src.crs.to_string(), transform=src.transform, width=src.width, height=src.height
                        )
                    else:
                        out_grid = default_grid_for(src.crs, src.bounds, res_m)
                raw = src.read(index)
                nodata = src.nodatavals[index - 1]
                categorical = band in CATEGORICAL_LAYERS
                band_scale = scale or _file_scale(src, index) or (1.0 if categorical else _guess_scale(src.dtypes[index - 1], raw[::4, ::4]))
                offset = float(src.tags(index).get("REFLECTANCE_OFFSET", 0) or 0)
                arr = raw.astype(np.float32)
                if nodata is not None and not categorical:
                    arr[raw == nodata] = np.nan
                if not categorical:
                    arr = (arr + offset) * band_scale
                same_grid = (src.crs.to_string() == out_grid.crs and src.transform == out_grid.transform
                             and (src.height, src.width) == out_grid.shape)
                if not same_grid:
                    arr = reproject_array(arr, src.transform, src.crs, out_grid, categorical=categorical)
                    if not categorical:
                        arr = arr.astype(np.float32)
        except RasterioIOError as e:
            raise RasterReadError(f"cannot read {file}: {str(e).splitlines()[0]}") from None
        band_valid = np.isfinite(arr) if not (band in CATEGORICAL_LAYERS) else np.ones(arr.shape, bool)
        valid = band_valid if valid is None else valid & band_valid
        layers.append(arr.astype(np.float32))
    assert out_grid is not None
    data = np.stack(layers)
    return RasterWindow(
        data=data,
        band_names=tuple(b for _, _, b in sources),
        grid=out_grid,
        acquired=acquired,
        valid=valid,
        scene_id=scene_id or path.name,
        source="local",
        meta={"path": str(path)},
    )
