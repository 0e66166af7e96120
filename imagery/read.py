"""Reading rasters onto a grid: ``open_raster`` for local files and band folders, ``read_window`` for the
bands of a catalogue ``Scene`` (COG windows over HTTP ranges, local files, the Sentinel Hub Process API).

Every read returns a ``RasterWindow`` whose bands are aligned on one grid (by default the UTM zone at
10 m), with reflectance on the 0–1 scale. See docs/reading.md.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError  # GDAL errors that rasterio does not wrap (e.g. mid-read)
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError, RasterioIOError, WindowError
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window, from_bounds

from imagery.aoi import utm_crs_for
from imagery.errors import CredentialsError, CrsError, InputError, MissingBandsError, RasterReadError
from imagery.gdal import gdal_env, vsi_path
from imagery.safe import NODATA_DN, RESOLUTION_FOLDERS, product_of, safe_granule
from imagery.types import CATEGORICAL_LAYERS, Asset, Grid, RasterWindow, Scene, valid_pixels

if TYPE_CHECKING:
    from imagery.cache import Cache

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


def granule_band_files(img_data: str | Path) -> dict[str, Path]:
    """Band → file of a SAFE granule's IMG_DATA: Level-1C's files, or Level-2A's across ``R10m``, ``R20m``
    and ``R60m`` (``imagery.safe.RESOLUTION_FOLDERS``), each band from its finest folder."""
    img_data = Path(img_data)
    folders = [img_data / r for r in RESOLUTION_FOLDERS if (img_data / r).is_dir()]
    if not folders:
        return find_band_files(img_data)
    out: dict[str, Path] = {}
    for folder in folders:
        for band, p in find_band_files(folder).items():
            out.setdefault(band, p)
    return out


def default_grid_for(src_crs, src_bounds, res_m: float = 10.0) -> Grid:
    """The UTM 10 m grid covering a raster's footprint."""
    west, south, east, north = transform_bounds(src_crs, "EPSG:4326", *src_bounds, densify_pts=21)
    crs = utm_crs_for((west + east) / 2, (south + north) / 2)
    left, bottom, right, top = transform_bounds(src_crs, crs, *src_bounds, densify_pts=21)
    return Grid.from_bounds(crs, (left, bottom, right, top), res_m)


#: Reflectance per step of an 8-bit true-colour file (ESA's TCI "visual" product, browser exports).
#: Those stretch roughly 0–0.2 (TCI) to 0–0.4 (a ×2.5 browser gain) reflectance onto 0–255; the middle
#: value is used, and the ship model is trained across that range of gains (and gamma) to absorb the rest.
TRUE_COLOUR_8BIT_SCALE = 0.3 / 255.0


def _guess_scale(dtype: str, sample: np.ndarray) -> float:
    """Multiplier from stored values to reflectance when the file does not say.

    8-bit files are true-colour renderings (``TRUE_COLOUR_8BIT_SCALE``).
    Floats at most ~2 are reflectance already; integers are Sentinel-2 DN (× 1e-4), except Sentinel Hub
    "raw" uint16 exports (reflectance × 65535), recognised by a median too bright for × 1e-4 to be plausible.
    """
    if dtype == "uint8":
        log.info("8-bit values: read as true colour, reflectance ≈ value × %.5f", TRUE_COLOUR_8BIT_SCALE)
        return TRUE_COLOUR_8BIT_SCALE
    finite = sample[np.isfinite(sample) & (sample > 0)]
    if finite.size == 0:
        return 1e-4
    med = float(np.median(finite))
    if np.issubdtype(np.dtype(dtype), np.floating) and float(np.percentile(finite, 99)) <= 2.0:
        return 1.0
    # Sentinel-2 DN (× 1e-4, at most +1000 offset) put even cloud and snow below ~1.3 reflectance, so a
    # 99.9th percentile above 14000 only happens in × 65535 exports (bright roofs and quays at 0.2–0.6).
    # Checked on all 15 sen2ships scenes (99.9th percentiles 14133–48156, medians 609–14654).
    p999 = float(np.percentile(finite, 99.9))
    if dtype == "uint16" and (med * 1e-4 > 0.3 or p999 > 14000):
        log.info("values look like reflectance × 65535 (median %.0f, p99.9 %.0f)", med, p999)
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


def _output_grid(src: rasterio.io.DatasetReader, res_m: float, native: bool) -> Grid:
    """The raster's own grid if it is a UTM ``res_m`` grid (or ``native``), else its UTM ``res_m`` grid."""
    epsg = src.crs.to_epsg()
    is_utm = epsg is not None and str(epsg)[:3] in ("326", "327")
    if native or (is_utm and abs(abs(src.transform.a) - res_m) < 0.05 * res_m
                  and src.transform.b == 0 and src.transform.d == 0):
        return Grid(crs=src.crs.to_string(), transform=src.transform, width=src.width, height=src.height)
    return default_grid_for(src.crs, src.bounds, res_m)


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


def resolve_input(
    path: str | Path, bands: Sequence[str] | None = None
) -> tuple[Path, list[str] | None, dict[str, Path] | None]:
    """An input's path, the bands asked for (Sentinel names; None: all) and, for a band folder, its
    band files (None for a single raster). Raises ``InputError`` for a missing path or an empty folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file or folder: {path}")
    wanted = [normalise_band_name(b) for b in bands] if bands else None
    if wanted and len(set(wanted)) < len(wanted):
        raise InputError(f"bands named twice: {','.join(wanted)}")
    if not path.is_dir():
        return path, wanted, None
    path = safe_granule(path)  # a SAFE product: its one granule's IMG_DATA
    files = granule_band_files(path) if path.name.upper() == "IMG_DATA" else find_band_files(path)
    if not files:
        rasters = sorted(p.name for p in path.iterdir() if p.suffix.lower() in (".tif", ".tiff", ".jp2"))
        hint = (
            f"; it holds {len(rasters)} raster file(s) such as {rasters[0]}: pass the files themselves"
            if rasters
            else ""
        )
        raise InputError(f"{path} holds no band files named like *_B04.tif{hint}")
    return path, wanted, files


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
    path, wanted, files = resolve_input(path, bands)
    safe = None
    if files is not None:
        names = wanted or [b for b in files if b != "SCL"]
        missing = [b for b in names if b not in files]
        if missing:
            raise MissingBandsError(missing, str(path))
        sources = [(files[b], 1, b) for b in names]
        safe = product_of(path)
        if safe is not None:  # ESA's JP2s: DN offset and quantification from the product, not the file
            scene_id = scene_id or safe.scene_id
            acquired = acquired or safe.datetime
    else:
        try:
            with rasterio.open(path) as src:
                desc = [normalise_band_name(d) if d and _BAND_NAME_RE.match(d.strip()) else None
                        for d in src.descriptions]
                count = src.count
        except RasterioIOError as e:
            raise RasterReadError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
        if all(desc) and len(set(desc)) < len(desc):
            raise InputError(f"{path} names a band twice in its descriptions: {', '.join(desc)}")  # type: ignore[arg-type]
        if all(desc):
            available = dict(zip(desc, range(1, count + 1), strict=True))
            names = wanted or list(desc)  # type: ignore[arg-type]
            missing = [b for b in names if b not in available]
            if missing:
                raise MissingBandsError(missing, f"{path} (bands in file: {', '.join(desc)})")  # type: ignore[arg-type]
            sources = [(path, available[b], b) for b in names]
        elif wanted:
            if len(wanted) != count:
                raise InputError(
                    f"{path} has {count} bands but --bands names {len(wanted)}: {','.join(wanted)}"
                )
            sources = [(path, i + 1, b) for i, b in enumerate(wanted)]
        else:
            raise InputError(
                f"{path} has {count} bands without band descriptions; "
                "name them with --bands, e.g. B04,B03,B02,B08"
            )
        if scene_id is None:
            scene_id = path.stem

    out_grid = grid
    reads = []  # (band, raw, nodata, declared scale, offset, dtype, crs, transform) per source
    for file, index, band in sources:
        try:
            with rasterio.open(file) as src:
                if src.crs is None:
                    raise CrsError(f"{file} has no CRS; harborwatch needs georeferenced rasters")
                if out_grid is None:
                    out_grid = _output_grid(src, res_m, native)
                nodata = src.nodatavals[index - 1]
                if safe is not None and band not in CATEGORICAL_LAYERS:  # DN 0: outside the swath
                    declared, offset = scale or safe.scale, safe.offset_dn(band)
                    nodata = NODATA_DN if nodata is None else nodata
                else:
                    declared = scale or _file_scale(src, index)
                    offset = float(src.tags(index).get("REFLECTANCE_OFFSET", 0) or 0)
                reads.append((
                    band, src.read(index), nodata, declared, offset, src.dtypes[index - 1],
                    src.crs, src.transform,
                ))
        except RasterioIOError as e:
            raise RasterReadError(f"cannot read {file}: {str(e).splitlines()[0]}") from None
    assert out_grid is not None
    # One export holds one encoding: if any undeclared band looks like reflectance × 65535, all do
    # (a dark band alone can pass for × 1e-4 DN and would come out ~6.5× too bright).
    guesses = {b: _guess_scale(dt, raw[::4, ::4]) for b, raw, _, sc, _, dt, _, _ in reads
               if sc is None and b not in CATEGORICAL_LAYERS}
    if any(g == 1.0 / 65535.0 for g in guesses.values()):
        guesses = {b: (1.0 / 65535.0 if g == 1e-4 else g) for b, g in guesses.items()}

    layers: list[np.ndarray] = []
    for band, raw, nodata, declared, offset, _, src_crs, src_transform in reads:
        categorical = band in CATEGORICAL_LAYERS
        band_scale = declared or (1.0 if categorical else guesses[band])
        arr = raw.astype(np.float32)
        if nodata is not None and not categorical:
            arr[raw == nodata] = np.nan
        if not categorical:
            arr = (arr + offset) * band_scale
            if offset < 0:  # as the catalogue reader: the offset can push dark water below 0
                np.maximum(arr, 0, out=arr, where=np.isfinite(arr))
        same_grid = (src_crs.to_string() == out_grid.crs and src_transform == out_grid.transform
                     and raw.shape == out_grid.shape)
        if not same_grid:
            arr = reproject_array(arr, src_transform, src_crs, out_grid, categorical=categorical)
        layers.append(arr.astype(np.float32))
    data = np.stack(layers)
    names = tuple(b for _, _, b in sources)
    return RasterWindow(
        data=data,
        band_names=names,
        grid=out_grid,
        acquired=acquired,
        valid=valid_pixels(names, data),  # the catalogue reader's rule: SCL or dataMask 0 is no data too
        scene_id=scene_id or path.name,
        source="local",
        processing_level=safe.level if safe is not None else None,
        meta={"path": str(path)},
    )


# --------------------------------------------------------------------------------------------
# Windowed reads of catalogue scenes onto an AOI grid
# --------------------------------------------------------------------------------------------

#: Buckets Earth Search links to that bill the reader (requester pays): no anonymous access.
REQUESTER_PAYS_BUCKETS = frozenset({"sentinel-s2-l1c", "sentinel-s2-l2a", "sentinel-s1-l1c"})
#: Source pixels read beyond the grid's footprint on each side, so resampling kernels see neighbours.
WINDOW_MARGIN_PX = 2
_RAW_65535 = 1.0 / 65535.0


def _band_key(name: str) -> str:
    """Sentinel band names normalised (b4 → B04); other layers (SCL, dataMask) kept as given."""
    n = normalise_band_name(name)
    return n if _BAND_NAME_RE.match(n) else name


def redact_href(href: str) -> str:
    """An href safe for messages and logs: query strings (SAS tokens, signatures) dropped."""
    return href.split("?", 1)[0]


def _is_process_api(asset: Asset) -> bool:
    return (asset.request or {}).get("api") == "process"


def _scale_from_file(asset: Asset) -> bool:
    """Local assets whose catalogue found no declared scale: the file's tags (or a guess) decide."""
    return (asset.request or {}).get("scale_declared") is False and asset.band not in CATEGORICAL_LAYERS


def harmonisation_params(asset: Asset) -> dict[str, Any]:
    """What turns the asset's DN into the stored array (part of the cache key)."""
    categorical = asset.band in CATEGORICAL_LAYERS
    return {
        "offset_dn": 0.0 if categorical else float(asset.offset_dn),
        "scale": "file" if _scale_from_file(asset) else (1.0 if categorical else float(asset.scale)),
        "nodata": asset.nodata,
        "clip_min": None if categorical else 0.0,
        "resampling": "nearest" if categorical else "bilinear|average",
        "request": dict(asset.request) if asset.request is not None else None,
    }


def read_window(
    scene: Scene, grid: Grid, bands: Sequence[str], *, cache: Cache | None = None
) -> RasterWindow:
    """Read ``bands`` of ``scene`` onto ``grid``: only the pixels that cover it, all bands aligned.

    Reflectance is harmonised as ``(DN + asset.offset_dn) * asset.scale`` (negatives clipped to 0),
    nodata becomes NaN and ``valid`` is True where every band has data (SCL: class ≠ 0). With
    ``cache``, each band is looked up first and stored after reading, so a rerun reads nothing.
    """
    names = [_band_key(b) for b in bands]
    missing = [b for b in names if b not in scene.assets]
    if missing:
        raise MissingBandsError(missing, f"scene {scene.id} (assets: {', '.join(scene.assets)})")
    layers: dict[str, np.ndarray] = {}
    reads: dict[str, dict[str, Any]] = {}
    keys = {b: _cache_key(cache, scene, scene.assets[b], grid) for b in names} if cache else {}
    for b in names:
        hit = cache.get(keys[b]) if cache else None
        if hit is not None and hit[0].shape == grid.shape:
            layers[b] = hit[0]
            reads[b] = {**hit[1].get("read", {}), "cached": True}
    pending = [b for b in names if b not in layers]
    remote_api = [b for b in pending if _is_process_api(scene.assets[b])]
    if remote_api:
        for b, arr in read_sentinelhub(scene, grid, remote_api).items():
            layers[b], reads[b] = arr, {"href": redact_href(scene.assets[b].href), "api": "process"}
    for b in pending:
        if b not in layers:
            layers[b], reads[b] = _read_asset(scene, scene.assets[b], grid)
    _unify_guessed_scales(layers, reads, pending)
    if cache:
        for b in pending:
            meta = {"scene": scene.id, "band": b, "grid": grid.key(), "read": reads[b]}
            cache.put(keys[b], layers[b], meta)

    data = np.stack([layers[b].astype(np.float32, copy=False) for b in names])
    valid = valid_pixels(names, data)
    return RasterWindow(
        data=data,
        band_names=tuple(names),
        grid=grid,
        acquired=scene.datetime,
        valid=valid,
        scene_id=scene.id,
        source=scene.source,
        processing_level=scene.processing_level,
        meta={"reads": reads, "collection": scene.collection, "baseline": scene.processing_baseline},
    )


def local_file_stamp(href: str) -> list[int] | None:
    """[size, mtime_ns] of a local asset (a path or a ``file://`` link): a local file can change under the
    same name, so caches and run records key on it; None for a remote link or a file that cannot be read."""
    if "://" in href and not href.startswith("file://"):
        return None
    try:
        st = Path(href[7:] if href.startswith("file://") else href).stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _cache_key(cache: Cache, scene: Scene, asset: Asset, grid: Grid) -> str:
    params = harmonisation_params(asset)
    if (stamp := local_file_stamp(asset.href)) is not None:
        params["file"] = stamp
    return cache.key(source=scene.source, item_id=scene.id, href=asset.href, band=asset.band, grid=grid,
                     params=params)


def _unify_guessed_scales(
    layers: dict[str, np.ndarray], reads: dict[str, dict[str, Any]], fresh: list[str]
) -> None:
    """One export holds one encoding: if any guessed band is reflectance × 65535, all guessed bands are
    (a dark band alone passes for × 1e-4 DN). Rescales the freshly read bands guessed × 1e-4, in place."""
    if not any(r.get("scale_guessed") and r.get("scale") == _RAW_65535 for r in reads.values()):
        return
    for b in fresh:
        if reads[b].get("scale_guessed") and reads[b].get("scale") == 1e-4:
            layers[b] = layers[b] * np.float32(_RAW_65535 / 1e-4)
            reads[b]["scale"] = _RAW_65535


def check_href_access(asset: Asset) -> None:
    """Raise CredentialsError for assets that cannot be read anonymously (requester-pays buckets)."""
    from imagery.sources.access import ensure_readable  # the source knows the anonymous mirror, if any

    ensure_readable(asset)
    href = asset.href
    if href.startswith("s3://") and href[5:].split("/", 1)[0] in REQUESTER_PAYS_BUCKETS:
        bucket = href[5:].split("/", 1)[0]
        raise CredentialsError(
            f"s3://{bucket} is a requester-pays bucket (the reader pays AWS egress) and cannot be read "
            "anonymously. Free alternatives: Sentinel-2 L1C from the Google Cloud public bucket "
            "(gs://gcp-public-data-sentinel-2), or --source sentinelhub (Copernicus Data Space, free "
            "account; set SH_CLIENT_ID and SH_CLIENT_SECRET); L2A from --source earth-search "
            "(sentinel-2-l2a COGs) or planetary-computer."
        )


def _read_asset(scene: Scene, asset: Asset, grid: Grid) -> tuple[np.ndarray, dict[str, Any]]:
    """One band of one asset on ``grid``: float32 reflectance (NaN = nodata), or uint8 classes for SCL."""
    check_href_access(asset)
    categorical = asset.band in CATEGORICAL_LAYERS
    shown = redact_href(asset.href)
    what = f"{asset.band} of {scene.id} from {shown}"
    scale, guessed = (1.0 if categorical else float(asset.scale)), False
    from imagery.sources.access import fresh_href  # re-signs hrefs whose token may have expired

    try:
        with gdal_env(), rasterio.open(vsi_path(fresh_href(asset))) as src:
            if src.crs is None:
                raise CrsError(f"cannot read {what}: the file has no CRS")
            if scene.crs and not _same_crs(scene.crs, src.crs):
                raise CrsError(f"cannot read {what}: its CRS {src.crs.to_string()} is not the scene's "
                               f"{scene.crs}")
            index = _band_index(src, asset, what)
            nodata = asset.nodata if asset.nodata is not None else src.nodatavals[index - 1]
            plan = _plan_read(src, grid, index, what)
            if plan is None:  # the grid lies outside this asset
                fill = (0, np.uint8) if categorical else (np.nan, np.float32)
                return np.full(grid.shape, *fill), {"href": shown, "window": None}
            window, out_shape, factor, aligned = plan
            raw = src.read(index, window=window, out_shape=out_shape,
                           resampling=Resampling.nearest if categorical else Resampling.average)
            win_transform = src.window_transform(window) @ Affine.scale(
                window.width / out_shape[1], window.height / out_shape[0]
            )
            src_crs = src.crs
            if _scale_from_file(asset):
                declared = _file_scale(src, index)
                guessed = declared is None
                scale = declared or _guess_scale(src.dtypes[index - 1], raw)
    except (RasterioError, CPLE_BaseError) as e:
        raise RasterReadError(f"cannot read {what}: {_first_line(e)}") from None
    info = {"href": shown, "window": [int(window.col_off), int(window.row_off), int(window.width),
                                      int(window.height)], "overview_factor": factor}
    if categorical:
        if aligned is not None:
            return _paste(raw, aligned, grid, 0, np.uint8), info
        return reproject_array(raw, win_transform, src_crs, grid, categorical=True, src_nodata=nodata), info
    arr = raw.astype(np.float32)
    if nodata is not None:
        arr[raw == nodata] = np.nan
    arr = (arr + np.float32(asset.offset_dn)) * np.float32(scale)
    if aligned is not None:
        arr = _paste(arr, aligned, grid, np.nan, np.float32)
    else:
        arr = reproject_array(arr, win_transform, src_crs, grid)
    np.maximum(arr, 0, out=arr, where=np.isfinite(arr))  # the BOA offset can push dark water below 0
    return arr, {**info, "scale": scale, "scale_guessed": guessed}


def _same_crs(a: Any, b: Any) -> bool:
    try:
        return CRS.from_user_input(a) == CRS.from_user_input(b)
    except Exception:  # an unparseable CRS is a mismatch, reported by the caller
        return False


def _band_index(src: rasterio.io.DatasetReader, asset: Asset, what: str) -> int:
    """The 1-based band holding ``asset.band``: the catalogue's index, the only band, or the described one."""
    index = (asset.request or {}).get("band_index")
    if index is not None:
        if not 1 <= int(index) <= src.count:
            raise RasterReadError(f"cannot read {what}: band {index} asked for, the file has {src.count}")
        return int(index)
    if src.count == 1:
        return 1
    for i, desc in enumerate(src.descriptions, start=1):
        if desc and _band_key(desc.strip()) == asset.band:
            return i
    raise RasterReadError(f"cannot read {what}: {src.count} bands and none described as {asset.band}")


def _plan_read(
    src: rasterio.io.DatasetReader, grid: Grid, index: int, what: str
) -> tuple[Window, tuple[int, int], int, tuple[int, int] | None] | None:
    """Which source pixels to read for ``grid``: (window, out_shape, overview factor, aligned offset).

    ``aligned`` is the (row, col) of the window in the grid when source and grid share CRS, pixel size
    and pixel edges: then the pixels are copied, not resampled. Otherwise the window covers the grid's
    footprint plus a margin, read from the coarsest overview still at least as fine as the grid.
    """
    try:
        left, bottom, right, top = transform_bounds(grid.crs, src.crs, *grid.bounds, densify_pts=21)
    except Exception as e:
        raise CrsError(f"cannot read {what}: no transform {grid.crs} → {src.crs}: {_first_line(e)}") from None
    st, gt = src.transform, grid.transform
    full = Window(0, 0, src.width, src.height)
    same_pixels = st.b == st.d == 0 and abs(st.a - gt.a) < 1e-9 and abs(st.e - gt.e) < 1e-9
    if same_pixels and _same_crs(grid.crs, src.crs):
        col, row = ~st @ (gt.c, gt.f)
        if abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6:
            want = Window(round(col), round(row), grid.width, grid.height)
            try:
                win = want.intersection(full)
            except WindowError:
                return None
            offset = (int(win.row_off - want.row_off), int(win.col_off - want.col_off))
            return win, (int(win.height), int(win.width)), 1, offset
    wanted = from_bounds(left, bottom, right, top, transform=st)
    ratio = max(wanted.width / grid.width, wanted.height / grid.height)  # source pixels per grid pixel
    factor = max([1] + [f for f in src.overviews(index) if f <= ratio])
    margin = WINDOW_MARGIN_PX * factor + math.ceil(ratio)
    col0 = math.floor((wanted.col_off - margin) / factor) * factor
    row0 = math.floor((wanted.row_off - margin) / factor) * factor
    col1 = math.ceil((wanted.col_off + wanted.width + margin) / factor) * factor
    row1 = math.ceil((wanted.row_off + wanted.height + margin) / factor) * factor
    try:
        win = Window(col0, row0, col1 - col0, row1 - row0).intersection(full)
    except WindowError:
        return None
    out_shape = (max(1, math.ceil(win.height / factor)), max(1, math.ceil(win.width / factor)))
    return win, out_shape, factor, None


def _paste(arr: np.ndarray, offset: tuple[int, int], grid: Grid, fill: float, dtype: Any) -> np.ndarray:
    out = np.full(grid.shape, fill, dtype=dtype)
    r, c = offset
    out[r : r + arr.shape[0], c : c + arr.shape[1]] = arr
    return out


_QUERY_RE = re.compile(r"\?[^\s'\"]*")


def _first_line(e: BaseException) -> str:
    """One line saying what GDAL said, from the innermost cause (rasterio wraps it in "Read failed")."""
    while (e.__cause__ or e.__context__) is not None and "previous exception" in str(e):
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
    text = "; ".join(lines[:2]) if len(lines[0]) < 60 else lines[0]
    return _QUERY_RE.sub("", text.replace("/vsicurl/", ""))


# --------------------------------------------------------------------------------------------
# Sentinel Hub Process API (Copernicus Data Space): the asset carries a request, not a file
# --------------------------------------------------------------------------------------------

SH_DEFAULT_BASE_URL = "https://sh.dataspace.copernicus.eu"
SH_MAX_SIZE_PX = 2500  # Process API limit per request and axis


def sentinelhub_evalscript(bands: Sequence[str], units: Sequence[str] | None = None) -> str:
    """Evalscript returning ``bands`` then dataMask as FLOAT32 (reflectance 0–1 unless ``units`` say)."""
    units = list(units or ["DN" if b in CATEGORICAL_LAYERS else "REFLECTANCE" for b in bands])
    names = [*bands, "dataMask"]
    return (
        "//VERSION=3\n"
        "function setup() {\n"
        f"  return {{input: [{{bands: {json.dumps(names)}, units: {json.dumps([*units, 'DN'])}}}],\n"
        f"          output: {{bands: {len(names)}, sampleType: \"FLOAT32\"}}}};\n"
        "}\n"
        "function evaluatePixel(s) {\n"
        f"  return [{', '.join(f's.{b}' for b in names)}];\n"
        "}\n"
    )


def sentinelhub_request(scene: Scene, grid: Grid, bands: Sequence[str], config: Any = None) -> Any:
    """The ``SentinelHubRequest`` for ``bands`` of ``scene`` exactly on ``grid`` (CRS, bbox, size).

    Reads the Process API fields the catalogue puts in ``Asset.request``: ``service_url``,
    ``data_collection`` (harborwatch collection id), ``time_interval``, ``units``, ``harmonize_values``.
    ``config`` (a ``sentinelhub.SHConfig``) defaults to one built from the CDSE credentials.
    """
    from sentinelhub import CRS as ShCRS
    from sentinelhub import BBox, MimeType, MosaickingOrder, SentinelHubRequest

    from imagery.sources.cdse import SentinelHubCatalogSource, data_collection

    reqs = [dict(scene.assets[b].request or {}) for b in bands]
    req = reqs[0]
    service_url = req.get("service_url") or SH_DEFAULT_BASE_URL
    if config is None:
        config = SentinelHubCatalogSource(base_url=service_url).sh_config()
    try:
        collection = data_collection(req.get("data_collection") or scene.collection, config.sh_base_url)
    except KeyError:
        raise InputError(f"scene {scene.id}: no Sentinel Hub collection for {scene.collection!r}") from None
    epsg = CRS.from_user_input(grid.crs).to_epsg()
    if epsg is None:
        raise CrsError(f"Sentinel Hub needs an EPSG grid CRS, got {grid.crs}")
    if max(grid.width, grid.height) > SH_MAX_SIZE_PX:
        raise InputError(f"the Process API returns at most {SH_MAX_SIZE_PX} pixels a side; the grid is "
                         f"{grid.width}×{grid.height}: use a smaller AOI or a coarser --res")
    half_hour = timedelta(minutes=30)
    interval = req.get("time_interval") or ((scene.datetime - half_hour).isoformat(),
                                             (scene.datetime + half_hour).isoformat())
    units = [r.get("units") or ("DN" if b in CATEGORICAL_LAYERS else "REFLECTANCE")
             for b, r in zip(bands, reqs, strict=True)]
    processing = {"harmonizeValues": bool(req["harmonize_values"])} if "harmonize_values" in req else {}
    return SentinelHubRequest(
        evalscript=sentinelhub_evalscript(list(bands), units),
        input_data=[SentinelHubRequest.input_data(
            data_collection=collection,
            time_interval=tuple(interval),
            mosaicking_order=MosaickingOrder.MOST_RECENT,
            upsampling="BILINEAR",
            downsampling="BILINEAR",
            other_args={"processing": processing} if processing else None,
        )],
        responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
        bbox=BBox(grid.bounds, crs=ShCRS(epsg)),
        size=(grid.width, grid.height),
        config=config,
    )


def read_sentinelhub(
    scene: Scene, grid: Grid, bands: Sequence[str], config: Any = None
) -> dict[str, np.ndarray]:
    """Read ``bands`` of a Sentinel Hub scene onto ``grid`` with one Process API request."""
    request = sentinelhub_request(scene, grid, bands, config)
    try:
        data = np.asarray(request.get_data()[0], dtype=np.float32)
    except Exception as e:  # sentinelhub raises DownloadFailedException and friends
        text = _first_line(e)
        if "401" in text or "403" in text:
            raise CredentialsError(f"Sentinel Hub rejected the credentials: {text}") from None
        raise RasterReadError(f"Sentinel Hub request for {scene.id} failed: {text}") from None
    if data.ndim == 2:
        data = data[:, :, None]
    mask = data[:, :, -1] > 0
    out = {}
    for i, b in enumerate(bands):
        layer = data[:, :, i]
        if b in CATEGORICAL_LAYERS:
            out[b] = np.where(mask, layer, 0).astype(np.uint8)
        else:
            out[b] = np.where(mask, np.maximum(layer, 0), np.nan).astype(np.float32)
    return out
