"""Sentinel-1 GRD on the AOI grid: measurement rasters calibrated to sigma0 with the product's LUTs.

Sources: a local SAFE folder (``measurement/*.tiff`` + ``annotation/calibration/calibration-*.xml``),
a single GeoTIFF (plus its calibration XML, or declared already calibrated), or a catalogue ``Scene``
whose assets are ``VV``/``VH`` hrefs (Planetary Computer ``sentinel-1-grd`` keeps the calibration XML
as ``schema-calibration-vv``; ``sentinel-1-rtc`` is gamma0 already). GRD measurement rasters are
georeferenced by ground control points only; they are calibrated in radar geometry (the LUTs are
indexed by line and pixel) and then warped onto the grid with a thin-plate-spline GCP transformer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.transform import GCPTransformer
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window, from_bounds

from imagery.errors import CoverageError, InputError, RasterReadError
from imagery.gdal import gdal_env, vsi_path
from imagery.read import check_href_access, default_grid_for, redact_href, reproject_array
from imagery.safe import is_s2_safe
from imagery.sources.access import fresh_href
from imagery.types import Grid, RasterWindow, Scene

log = logging.getLogger(__name__)

#: C-band centre frequency of Sentinel-1 (Hz) and its wavelength (m).
S1_FREQUENCY_HZ = 5.405e9
S1_WAVELENGTH_M = 299_792_458.0 / S1_FREQUENCY_HZ
#: Equivalent number of looks of IW GRDH products (ESA product spec; PC ``sar:looks_equivalent_number``).
S1_IW_GRDH_ENL = 4.4

SAR_POLARISATIONS = ("VV", "VH", "HH", "HV")
#: Radiometric quantities a window can hold; ``dn2`` is uncalibrated intensity (DN²), relative only.
QUANTITIES = ("sigma0", "gamma0", "beta0", "dn2")
_LUT_TAG = {"sigma0": "sigmaNought", "beta0": "betaNought", "gamma0": "gamma"}

#: ``S1A_IW_GRDH_1SDV_20180716T004042_...``: mode, product type, resolution, polarisation code, start time.
PRODUCT_RE = re.compile(
    r"S1[A-D]_(?P<mode>IW|EW|SM|WV|S[1-6])_(?P<ptype>GRD|SLC|RAW|OCN|RTC)(?P<res>[HMF_])_"
    r"\d[SA](?P<pol>SH|SV|DH|DV|HH|VV|HV|VH)_(?P<start>\d{8}T\d{6})"
)
_POLS_BY_CODE = {
    "SV": ("VV",), "DV": ("VV", "VH"), "SH": ("HH",), "DH": ("HH", "HV"),
    "VV": ("VV",), "HH": ("HH",), "VH": ("VH",), "HV": ("HV",),
}
#: Polarisation in file names: ``s1a-iw-grd-vv-...tiff``, ``iw-vv.tiff``, ``x_VV.tif``.
_POL_IN_NAME_RE = re.compile(r"(?:^|[-_.])(vv|vh|hh|hv)(?:[-_.]|$)", re.IGNORECASE)


class PolarisationError(InputError):
    """The product does not carry the requested polarisation (e.g. VV asked of an HH/HV product)."""


class MissingCalibrationError(InputError, FileNotFoundError):
    """No calibration LUT for a GRD measurement that is not calibrated already."""


class CalibrationError(RasterReadError):
    """A calibration annotation exists but cannot be parsed or does not fit the measurement."""


@dataclass(frozen=True)
class CalibrationLut:
    """One polarisation's calibration vectors: values of A at (line, pixel) so that sigma0 = DN² / A²."""

    polarisation: str | None
    lines: np.ndarray  # (n_lines,) increasing
    pixels: np.ndarray  # (n_pixels,) increasing, shared by every vector
    values: Mapping[str, np.ndarray]  # quantity -> (n_lines, n_pixels)
    absolute_constant: float = 1.0

    def lut(self, quantity: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The LUT at rows × cols (float64), bilinear between vectors, clamped at the ends."""
        if quantity not in self.values:
            tag = _LUT_TAG.get(quantity, quantity)
            raise CalibrationError(f"calibration annotation has no {tag} vectors")
        table = self.values[quantity]
        i0, wr = _bracket(self.lines, rows)
        j0, wc = _bracket(self.pixels, cols)
        by_row = table[i0] * (1 - wr)[:, None] + table[i0 + 1] * wr[:, None]
        return by_row[:, j0] * (1 - wc) + by_row[:, j0 + 1] * wc


def _bracket(knots: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower knot index and linear weight for each x (clamped to the knot range)."""
    if knots.size == 1:
        return np.zeros(x.shape, int), np.zeros(x.shape)
    xc = np.clip(x, knots[0], knots[-1])
    i = np.clip(np.searchsorted(knots, xc, side="right") - 1, 0, knots.size - 2)
    w = (xc - knots[i]) / (knots[i + 1] - knots[i])
    return i, w


def parse_calibration(xml: bytes | str, source: str = "calibration XML") -> CalibrationLut:
    """Parse a Sentinel-1 ``annotation/calibration/calibration-*.xml`` into a ``CalibrationLut``."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise CalibrationError(f"{source} is not valid XML: {e}") from None
    vectors = root.findall("./calibrationVectorList/calibrationVector")
    if root.tag != "calibration" or not vectors:
        raise CalibrationError(f"{source} holds no calibrationVectorList/calibrationVector elements")
    pol = root.findtext("./adsHeader/polarisation")
    const = float(root.findtext("./calibrationInformation/absoluteCalibrationConstant") or 1.0)
    lines, pixel_rows, tables = [], [], {q: [] for q in _LUT_TAG}
    for v in vectors:
        lines.append(float(v.findtext("line", "nan")))
        pixel_rows.append(np.array((v.findtext("pixel") or "").split(), float))
        for q, tag in _LUT_TAG.items():
            text = v.findtext(tag)
            tables[q].append(np.array(text.split(), float) if text else None)
    # Vectors normally share one pixel list; when they do not, resample each onto the first one.
    pixels = pixel_rows[0]
    values: dict[str, np.ndarray] = {}
    for q, rows in tables.items():
        if any(r is None for r in rows):
            continue
        if any(r.size != p.size for r, p in zip(rows, pixel_rows, strict=False)):
            raise CalibrationError(f"{source}: {_LUT_TAG[q]} and pixel lists differ in length")
        values[q] = np.stack([np.interp(pixels, p, r) for r, p in zip(rows, pixel_rows, strict=False)])
    order = np.argsort(lines)
    lines_arr = np.asarray(lines)[order]
    if not np.all(np.isfinite(lines_arr)) or (np.any(np.diff(lines_arr) <= 0) and lines_arr.size > 1):
        raise CalibrationError(f"{source}: calibration vector lines are missing or repeated")
    if not values:
        raise CalibrationError(f"{source} has no sigmaNought, betaNought or gamma vectors")
    return CalibrationLut(
        polarisation=pol.strip().upper() if pol else None,
        lines=lines_arr,
        pixels=pixels,
        values={q: t[order] for q, t in values.items()},
        absolute_constant=const,
    )


def load_calibration(href: str | Path) -> CalibrationLut:
    """Read and parse a calibration XML from a local path or an http(s) URL (already signed)."""
    href = str(href)
    try:
        if href.startswith(("http://", "https://")):
            with urllib.request.urlopen(href, timeout=60) as resp:
                data = resp.read()
        else:
            data = Path(href.removeprefix("file://")).read_bytes()
    except OSError as e:
        raise MissingCalibrationError(f"cannot read calibration {redact_href(href)}: {e}") from None
    return parse_calibration(data, redact_href(href))


def calibrate(dn: np.ndarray, lut: CalibrationLut, quantity: str = "sigma0",
              row_off: float = 0, col_off: float = 0) -> np.ndarray:
    """DN (GRD amplitude) → linear backscatter: DN² / A(line, pixel)²; DN 0 (no data) → NaN.

    ``row_off``/``col_off`` place ``dn`` in the full product's line/pixel frame the LUT is indexed by.
    """
    rows = np.arange(dn.shape[0], dtype=float) + row_off
    cols = np.arange(dn.shape[1], dtype=float) + col_off
    a = lut.lut(quantity, rows, cols)
    out = (dn.astype(np.float64) ** 2) / (a * a) * lut.absolute_constant
    out[dn == 0] = np.nan
    return out.astype(np.float32)


def to_db(linear: np.ndarray) -> np.ndarray:
    """Linear backscatter → dB (NaN where not positive)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(linear > 0, 10.0 * np.log10(linear), np.nan).astype(np.float32)


def from_db(db: np.ndarray) -> np.ndarray:
    return (10.0 ** (np.asarray(db, dtype=np.float64) / 10.0)).astype(np.float32)


def product_polarisations(product_id: str) -> tuple[str, ...] | None:
    """Polarisations a product carries, from its name (``..._1SDV_...`` → VV, VH); None if not a S1 name."""
    m = PRODUCT_RE.search(product_id)
    return _POLS_BY_CODE[m.group("pol")] if m else None


def product_time(product_id: str) -> datetime | None:
    m = PRODUCT_RE.search(product_id)
    if not m:
        return None
    return datetime.strptime(m.group("start"), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)


def check_polarisations(wanted: Sequence[str], available: Sequence[str], product: str) -> tuple[str, ...]:
    """Normalise ``wanted`` and raise ``PolarisationError`` in one line if any is not ``available``."""
    pols = tuple(p.strip().upper() for p in wanted)
    bad = [p for p in pols if p not in SAR_POLARISATIONS]
    if bad:
        raise PolarisationError(
            f"unknown polarisation {', '.join(bad)}; Sentinel-1 has {', '.join(SAR_POLARISATIONS)}"
        )
    missing = [p for p in pols if p not in available]
    if missing:
        raise PolarisationError(
            f"{product} carries {'+'.join(available) or 'no polarisation'}, not {'+'.join(missing)}; "
            f"ask for {' or '.join(available) or 'another product'}"
        )
    return pols


@dataclass(frozen=True)
class _PolSource:
    """Where one polarisation's pixels and LUT live, and what quantity the pixels already hold."""

    pol: str
    href: str
    calibration: str | None
    quantity: str | None  # None: GRD DN to calibrate; else the calibrated quantity it already holds
    band: int = 1  # 1-based band of the raster holding this polarisation
    db: bool = False  # calibrated pixels stored in dB


def _pol_in_name(name: str) -> str | None:
    m = _POL_IN_NAME_RE.search(Path(name).stem.replace(" ", "_"))
    return m.group(1).upper() if m else None


def _safe_sources(folder: Path) -> tuple[str, dict[str, tuple[Path, Path | None]]]:
    """Product id and pol → (measurement, calibration XML or None) for a SAFE-like folder."""
    measurements = {
        _pol_in_name(p.name): p
        for p in sorted((folder / "measurement").glob("*.tif*"))
        if _pol_in_name(p.name)
    }
    cal_dir = folder / "annotation" / "calibration"
    calibrations = {
        _pol_in_name(p.name.removeprefix("calibration-")): p
        for p in sorted(cal_dir.glob("calibration-*.xml")) if _pol_in_name(p.name)
    }
    product = folder.name.removesuffix(".SAFE")
    info = folder / "productInfo.json"
    if not PRODUCT_RE.search(product) and info.exists():
        import json

        product = json.loads(info.read_text()).get("id", product)
    return product, {pol: (m, calibrations.get(pol)) for pol, m in measurements.items()}


def _local_sources(
    path: Path,
    pols: Sequence[str],
    calibration: str | Path | Mapping[str, str | Path] | None,
    calibrated: str | None,
) -> tuple[str, tuple[_PolSource, ...]]:
    if not path.exists():
        raise InputError(f"no such file or folder: {path}")
    if path.is_dir():
        if not (path / "measurement").is_dir():
            raise InputError(f"{path} is not a Sentinel-1 SAFE folder (no measurement/ inside)")
        product, files = _safe_sources(path)
        available = product_polarisations(product) or tuple(files)
        wanted = check_polarisations(pols, available, product)
        lacking = [p for p in wanted if p not in files]
        if lacking:
            raise InputError(
                f"{product}: measurement file for {'+'.join(lacking)} not found in {path / 'measurement'}"
            )
        out = []
        for p in wanted:
            cal = _calibration_for(calibration, p) or (str(files[p][1]) if files[p][1] else None)
            out.append(_PolSource(p, str(files[p][0]), cal, calibrated))
        return product, tuple(out)
    product = path.stem
    by_band = _band_polarisations(path)
    pol = _pol_in_name(path.name)
    if len(by_band) > 1:  # a multi-band export (e.g. VV and VH): the bands say which is which
        wanted = check_polarisations(pols, tuple(by_band), path.name)
    else:
        pol = pol or next(iter(by_band), None)
        available = product_polarisations(product) or ((pol,) if pol else ())
        if not available:
            raise PolarisationError(f"cannot tell the polarisation of {path.name}; name it like *_VV.tif")
        wanted = check_polarisations(pols, (pol,) if pol else available, path.name)
        if len(wanted) != 1:
            raise InputError(
                f"{path.name} holds one polarisation ({pol}); read the others from their own files"
            )
        by_band = {wanted[0]: 1}
    declared, db = declared_quantity(path)
    quantity = calibrated or (None if calibration is not None else declared)
    db = db and not calibrated
    return product, tuple(
        _PolSource(w, str(path), _calibration_for(calibration, w), quantity, by_band[w], db) for w in wanted
    )


#: Calibrated quantities named in band descriptions or file names (SNAP ``Sigma0_VV``, ``Gamma0_VV_db``).
_QUANTITY_IN_NAME_RE = re.compile(r"(?:^|[-_. ])(sigma0|gamma0|beta0)(?:[-_. ]|$)", re.IGNORECASE)
_DB_IN_NAME_RE = re.compile(r"(?:^|[-_. ])db(?:[-_. ]|$)", re.IGNORECASE)


def _band_polarisations(path: Path) -> dict[str, int]:
    """Polarisation → 1-based band from a raster's band descriptions (``VV``, ``Sigma0_VV``)."""
    with rasterio.open(path) as src:
        described = [_pol_in_name(d.strip()) if d else None for d in src.descriptions]
    return {p: i + 1 for i, p in enumerate(described) if p}


def declared_quantity(path: str | Path) -> tuple[str | None, bool]:
    """(calibrated quantity, stored in dB) a GeoTIFF declares: tags ``SAR_QUANTITY`` (sigma0, gamma0,
    beta0) and ``SAR_UNITS`` (dB, linear), else its band descriptions or file name (``Sigma0_VV_db``).
    (None, False) when it declares nothing: GRD DN, to calibrate."""
    path = Path(path)
    with rasterio.open(path) as src:
        tags = {k.upper(): str(v) for k, v in src.tags().items()}
        names = [d for d in src.descriptions if d]
    quantity = tags.get("SAR_QUANTITY", "").strip().lower() or None
    if quantity is not None and quantity not in QUANTITIES[:3]:
        raise InputError(
            f"{path.name}: SAR_QUANTITY tag {quantity!r} is not one of {', '.join(QUANTITIES[:3])}"
        )
    texts = [*names, path.stem]
    if quantity is None:
        found = [m.group(1).lower() for t in texts if (m := _QUANTITY_IN_NAME_RE.search(t))]
        quantity = found[0] if found else None
    units = tags.get("SAR_UNITS", "").strip().lower()
    db = units == "db" if units else any(_DB_IN_NAME_RE.search(t) for t in texts)
    return quantity, bool(quantity and db)


def is_sentinel1(path: str | Path) -> bool:
    """Whether a local input is Sentinel-1: a SAFE folder, a product name (``S1A_IW_GRDH_1SDV_...``) in
    its path, a ``SAR_QUANTITY`` or Sentinel-1 tag, or bands / a file name saying VV, VH, HH or HV."""
    path = Path(path)
    if any(PRODUCT_RE.search(part) for part in path.resolve().parts[-3:]):
        return True
    if path.is_dir():
        return (path.suffix.upper() == ".SAFE" and not is_s2_safe(path)) or (path / "measurement").is_dir()
    if _pol_in_name(path.name):
        return True
    try:
        with rasterio.open(path) as src:
            tags = {k.upper(): str(v) for k, v in src.tags().items()}
            described = [d for d in src.descriptions if d]
    except RasterioIOError:
        return False
    mission = " ".join(tags.get(k, "") for k in ("TIFFTAG_IMAGEDESCRIPTION", "MISSION", "PRODUCT_TYPE"))
    return (
        "SAR_QUANTITY" in tags
        or re.search(r"sentinel-?1|\bGRD[HMF]?\b", mission, re.IGNORECASE) is not None
        or (bool(described) and all(_pol_in_name(d.strip()) for d in described))
    )


def local_polarisations(path: str | Path) -> tuple[str, ...]:
    """Polarisations a local SAFE folder or GeoTIFF holds (product name, measurement files, bands)."""
    path = Path(path)
    if path.is_dir():
        product, files = _safe_sources(path)
        return product_polarisations(product) or tuple(files)
    by_band = _band_polarisations(path)
    if len(by_band) > 1:
        return tuple(by_band)
    pol = _pol_in_name(path.name) or next(iter(by_band), None)
    return product_polarisations(path.stem) or ((pol,) if pol else ())


def native_pixel_m(path: str | Path) -> float | None:
    """Pixel spacing (m) of a local S1 raster (the first measurement of a SAFE folder); None if unknown."""
    path = Path(path)
    if path.is_dir():
        files = sorted((path / "measurement").glob("*.tif*"))
        if not files:
            return None
        path = files[0]
    with gdal_env(), rasterio.open(path) as src:
        if src.crs is None and src.gcps[0]:
            fwd = GCPTransformer(src.gcps[0], tps=True)
            rc, cc = src.height / 2, src.width / 2
            (lo0, lo1), (la0, la1) = fwd.xy([rc, rc + 10], [cc, cc], offset="center")
            return math.hypot((lo1 - lo0) * 111_320 * math.cos(math.radians(la0)), (la1 - la0) * 110_574) / 10
        if src.crs is None:
            return None
        res = abs(src.transform.a)
        if src.crs.is_geographic:
            lat = (src.bounds.bottom + src.bounds.top) / 2
            res *= 111_320 * math.cos(math.radians(lat))
        return res


def check_calibration(source: str | Path, polarisations: Sequence[str] = ("VV",), *,
                      calibration: str | Path | Mapping[str, str | Path] | None = None,
                      calibrated: str | None = None, allow_uncalibrated: bool = False) -> str:
    """What ``read_s1`` would read from a local SAFE folder or GeoTIFF (sigma0, gamma0, beta0 or dn2),
    without reading pixels: raises ``MissingCalibrationError`` / ``PolarisationError`` as it would."""
    _, sources = _local_sources(Path(source), polarisations, calibration, calibrated)
    quantities = {_quantity_of(s, allow_uncalibrated) for s in sources}
    return quantities.pop() if len(quantities) == 1 else "mixed"


def _quantity_of(source: _PolSource, allow_uncalibrated: bool) -> str:
    if source.quantity is not None:
        return source.quantity
    if source.calibration:
        return "sigma0"
    if allow_uncalibrated:
        return "dn2"
    raise MissingCalibrationError(
        f"no calibration LUT for {source.pol} of {Path(redact_href(source.href)).name} "
        "(expected annotation/calibration/calibration-*.xml); pass calibration=..., declare "
        "calibrated='sigma0' if the pixels are calibrated already, or allow_uncalibrated=True for DN²"
    )


def _calibration_for(calibration: str | Path | Mapping[str, str | Path] | None, pol: str) -> str | None:
    if calibration is None:
        return None
    if isinstance(calibration, Mapping):
        found = {k.upper(): v for k, v in calibration.items()}.get(pol)
        return str(found) if found is not None else None
    return str(calibration)


def _scene_sources(scene: Scene, pols: Sequence[str], calibrated: str | None) -> tuple[_PolSource, ...]:
    assets = {k.upper(): a for k, a in scene.assets.items()}
    declared = scene.properties.get("sar:polarizations") or product_polarisations(scene.id)
    available = tuple(p.upper() for p in declared) if declared else tuple(
        p for p in SAR_POLARISATIONS if p in assets)
    wanted = check_polarisations(pols, available, scene.id)
    quantity = calibrated or scene.properties.get("harborwatch:sar_quantity")
    if quantity is None and "rtc" in scene.collection.lower():
        quantity = "gamma0"  # PC sentinel-1-rtc: radiometrically terrain-corrected gamma0, linear
    cal_hrefs = dict(scene.properties.get("harborwatch:calibration_hrefs") or {})
    unsigned_cal = scene.properties.get("harborwatch:calibration_unsigned_hrefs") or {}
    if unsigned_cal:  # Planetary Computer: sign again (like the bands), the search's token may have expired
        from imagery.sources.planetary_computer import resign

        sas_url = scene.properties.get("harborwatch:sas_url")
        cal_hrefs = {p: resign(h, unsigned_cal.get(p), sas_url) for p, h in cal_hrefs.items()}
    out = []
    for p in wanted:
        if p not in assets:
            raise PolarisationError(f"scene {scene.id} lists {p} but has no {p} asset")
        # Requester-pays copies (Earth Search S1) fail here with a CredentialsError naming alternatives.
        check_href_access(assets[p])
        cal = cal_hrefs.get(p) or cal_hrefs.get(p.lower())
        cal_asset = assets.get(f"SCHEMA-CALIBRATION-{p}") or assets.get(f"CALIBRATION-{p}")
        href = fresh_href(assets[p])
        out.append(_PolSource(p, href, cal or (fresh_href(cal_asset) if cal_asset else None), quantity))
    return tuple(out)


def _gcp_grid(fwd: GCPTransformer, gcp_crs, height: int, width: int, res_m: float) -> Grid:
    """The UTM ``res_m`` grid covering a GCP-georeferenced raster (its edges mapped through the GCPs)."""
    t = np.linspace(0, 1, 21)
    rows = np.concatenate([np.zeros(21), t * height, np.full(21, height), t * height])
    cols = np.concatenate([t * width, np.full(21, width), t * width, np.zeros(21)])
    lons, lats = fwd.xy(rows, cols, offset="ul")
    return default_grid_for(gcp_crs, (min(lons), min(lats), max(lons), max(lats)), res_m)


def _grid_outline(grid: Grid, n: int = 21) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates of points along the grid's edges (and its centre)."""
    t = np.linspace(0, 1, n)
    w, h = grid.width, grid.height
    cols = np.concatenate([t * w, np.full(n, w), t * w, np.zeros(n), [w / 2]])
    rows = np.concatenate([np.zeros(n), t * h, np.full(n, h), t * h, [h / 2]])
    tr = grid.transform
    return tr.c + tr.a * cols + tr.b * rows, tr.f + tr.d * cols + tr.e * rows


def _bearing(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    dx = (lon1 - lon0) * math.cos(math.radians((lat0 + lat1) / 2))
    return math.degrees(math.atan2(dx, lat1 - lat0)) % 360.0


@dataclass(frozen=True)
class _Read:
    """One polarisation read in radar geometry: linear values, the window offset, georeferencing."""

    data: np.ndarray
    row_off: int
    col_off: int
    gcps: tuple | None
    crs: object
    transform: object | None
    pixel_m: float
    azimuth_bearing_deg: float | None
    range_bearing_deg: float | None


def _read_gcp_window(src: rasterio.io.DatasetReader, grid: Grid | None, res_m: float, margin: int = 3):
    gcps, gcp_crs = src.gcps
    fwd = GCPTransformer(gcps, tps=True)
    if grid is None:
        grid = _gcp_grid(fwd, gcp_crs, src.height, src.width, res_m)
    xs, ys = _grid_outline(grid)
    lon, lat = Transformer.from_crs(grid.crs, gcp_crs, always_xy=True).transform(xs, ys)
    rows, cols = fwd.rowcol(lon, lat, op=lambda v: v)
    r0 = max(0, math.floor(min(rows)) - margin)
    r1 = min(src.height, math.ceil(max(rows)) + margin + 1)
    c0 = max(0, math.floor(min(cols)) - margin)
    c1 = min(src.width, math.ceil(max(cols)) + margin + 1)
    if r1 <= r0 or c1 <= c0:
        raise CoverageError(f"{src.name}: the grid lies outside the product's footprint")
    rc, cc = float(rows[-1]), float(cols[-1])  # grid centre in radar geometry
    (lo0, lo1, lo2), (la0, la1, la2) = fwd.xy([rc, rc + 10, rc], [cc, cc, cc + 10], offset="center")
    dist = math.hypot((lo1 - lo0) * 111_320 * math.cos(math.radians(la0)), (la1 - la0) * 110_574) / 10
    return grid, Window(c0, r0, c1 - c0, r1 - r0), gcps, gcp_crs, dist, _bearing(lo0, la0, lo1, la1), \
        _bearing(lo0, la0, lo2, la2)


def _affine_window(src: rasterio.io.DatasetReader, grid: Grid, margin: int = 2) -> Window:
    """The pixel window of ``src`` covering ``grid`` (plus a margin for resampling kernels)."""
    left, bottom, right, top = transform_bounds(grid.crs, src.crs, *grid.bounds, densify_pts=21)
    win = from_bounds(left, bottom, right, top, transform=src.transform)
    r0 = max(0, math.floor(win.row_off) - margin)
    c0 = max(0, math.floor(win.col_off) - margin)
    r1 = min(src.height, math.ceil(win.row_off + win.height) + margin)
    c1 = min(src.width, math.ceil(win.col_off + win.width) + margin)
    if r1 <= r0 or c1 <= c0:
        raise CoverageError(f"{src.name}: the grid lies outside the raster")
    return Window(c0, r0, c1 - c0, r1 - r0)


def _read_one(
    source: _PolSource, grid: Grid | None, res_m: float, allow_uncalibrated: bool
) -> tuple[Grid, _Read, str]:
    lut = None
    quantity = _quantity_of(source, allow_uncalibrated)
    if source.quantity is None and source.calibration:
        lut = load_calibration(source.calibration)
        if lut.polarisation and lut.polarisation != source.pol:
            raise CalibrationError(
                f"calibration {source.calibration} is for {lut.polarisation}, not {source.pol}"
            )
    try:
        with gdal_env(), rasterio.open(vsi_path(source.href)) as src:
            if src.crs is None and src.gcps[0]:
                grid, win, gcps, gcp_crs, pixel_m, az, rg = _read_gcp_window(src, grid, res_m)
                raw = src.read(source.band, window=win)
                row_off, col_off = int(win.row_off), int(win.col_off)
                shifted = tuple(
                    rasterio.control.GroundControlPoint(g.row - row_off, g.col - col_off, g.x, g.y, g.z, g.id)
                    for g in gcps
                )
                read = (raw, row_off, col_off, shifted, gcp_crs, None, pixel_m, az, rg)
            elif src.crs is not None:
                if grid is None:
                    grid = default_grid_for(src.crs, src.bounds, res_m)
                win = _affine_window(src, grid)
                raw = src.read(source.band, window=win).astype(np.float32)
                if src.nodata is not None:
                    raw[raw == src.nodata] = np.nan
                read = (raw, int(win.row_off), int(win.col_off), None, src.crs, src.window_transform(win),
                        abs(src.transform.a), None, None)
            else:
                raise InputError(f"{source.href} has neither a CRS nor ground control points")
    except RasterioIOError as e:
        raise RasterReadError(f"cannot read {redact_href(source.href)}: {str(e).splitlines()[0]}") from None
    raw, row_off, col_off = read[0], read[1], read[2]
    if lut is not None:
        linear = calibrate(raw, lut, "sigma0", row_off, col_off)
    elif quantity == "dn2":
        linear = raw.astype(np.float32) ** 2
        linear[raw == 0] = np.nan
    elif source.db:
        linear = from_db(raw)  # NaN (no data) stays NaN
    else:
        linear = raw.astype(np.float32)
        linear[~(linear > 0)] = np.nan  # calibrated products write 0 (or negative) outside the swath
    return grid, _Read(linear, *read[1:]), quantity


def _warp(r: _Read, grid: Grid) -> np.ndarray:
    if r.gcps is None:
        return reproject_array(r.data, r.transform, r.crs, grid)
    dst = np.full(grid.shape, np.nan, np.float32)
    # Averaging linear power when the grid is coarser keeps the mean backscatter; TPS reproduces the GCPs
    # exactly where GDAL's default polynomial misses them by up to ~190 m on a GRD scene.
    method = Resampling.average if grid.res_m > 1.5 * r.pixel_m else Resampling.bilinear
    reproject(
        r.data, dst, gcps=list(r.gcps), src_crs=r.crs, src_nodata=np.nan,
        dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=np.nan,
        resampling=method, SRC_METHOD="GCP_TPS",
    )
    return dst


def read_s1(
    source: str | Path | Scene,
    polarisations: Sequence[str] = ("VV",),
    *,
    grid: Grid | None = None,
    res_m: float = 10.0,
    calibration: str | Path | Mapping[str, str | Path] | None = None,
    calibrated: str | None = None,
    allow_uncalibrated: bool = False,
    db: bool = False,
    acquired: datetime | None = None,
) -> RasterWindow:
    """Read Sentinel-1 GRD polarisations onto ``grid`` as backscatter (linear, or dB with ``db=True``).

    ``source`` is a SAFE folder, a measurement GeoTIFF or a ``Scene``. GRD DN are calibrated with the
    product's calibration LUT (``calibration`` overrides where it is found) to sigma0; pixels that are
    calibrated already are read as they are when ``calibrated`` names their quantity (``sigma0``,
    ``gamma0``, ``beta0``), or when the scene says so (``sentinel-1-rtc``: gamma0; property
    ``harborwatch:sar_quantity``). Without a LUT a ``MissingCalibrationError`` is raised, unless
    ``allow_uncalibrated`` asks for DN² (relative intensity: enough for CFAR, which is scale-free).
    Without ``grid`` the result lies on the UTM ``res_m`` grid covering the raster.
    """
    if calibrated is not None and calibrated not in QUANTITIES[:3]:
        raise InputError(f"calibrated must be one of {', '.join(QUANTITIES[:3])}, got {calibrated!r}")
    if isinstance(source, Scene):
        product = source.id
        sources = _scene_sources(source, polarisations, calibrated)
        acquired = acquired or source.datetime
    else:
        product, sources = _local_sources(Path(source), polarisations, calibration, calibrated)
        acquired = acquired or product_time(product)
    layers, quantities, meta = [], set(), {}
    for s in sources:
        grid, r, quantity = _read_one(s, grid, res_m, allow_uncalibrated)
        quantities.add(quantity)
        layers.append(_warp(r, grid))
        if r.azimuth_bearing_deg is not None:
            meta.update(azimuth_bearing_deg=round(r.azimuth_bearing_deg, 2),
                        range_bearing_deg=round(r.range_bearing_deg, 2), native_pixel_m=round(r.pixel_m, 2))
    if len(quantities) > 1:
        kinds = ", ".join(sorted(quantities))
        raise InputError(f"{product}: polarisations hold different quantities ({kinds})")
    assert grid is not None
    data = np.stack(layers)
    valid = np.all(np.isfinite(data), axis=0)
    quantity = quantities.pop()
    if db:
        data = to_db(data)
    return RasterWindow(
        data=data.astype(np.float32),
        band_names=tuple(s.pol for s in sources),
        grid=grid,
        acquired=acquired,
        valid=valid,
        scene_id=product,
        source=source.source if isinstance(source, Scene) else "local",
        processing_level="GRD",
        meta={"sensor": "S1", "quantity": quantity, "units": "dB" if db else "linear", **meta},
    )


def sar_quantity(window: RasterWindow) -> tuple[str, str]:
    """(quantity, units) a SAR window holds, e.g. ("sigma0", "linear"); InputError for optical windows."""
    q = window.meta.get("quantity")
    if q not in QUANTITIES:
        raise InputError(
            f"{window.scene_id or 'window'} holds no SAR backscatter (meta quantity={q!r}); "
            "read it with imagery.sar.read_s1"
        )
    return q, window.meta.get("units", "linear")


def read_sar(scene: Scene, grid: Grid, *, cache: Any = None) -> RasterWindow:
    """A Sentinel-1 scene's co-polarised backscatter (VV, else HH), linear, on ``grid``.

    Catalogue GRD scenes are calibrated to sigma0 with the product's LUTs (``imagery.sar.read_s1``).
    Sentinel Hub serves S1 already calibrated through its Process API (gamma0, its default ``backCoeff``).
    A local GeoTIFF of calibrated floats cannot be told from one of DN, so its scene.json must say
    ``"sar_quantity": "sigma0"`` (or gamma0, beta0). ``cache`` is used for Process API reads only.
    """
    from imagery.read import read_window

    pol = "VV" if "VV" in scene.assets or "HH" not in scene.assets else "HH"
    if any((a.request or {}).get("api") == "process" for a in scene.assets.values()):
        win = read_window(scene, grid, (pol,), cache=cache)
        meta = {**win.meta, "sensor": "S1", "quantity": "gamma0", "units": "linear"}
        return dataclasses.replace(win, meta=meta)
    quantity = scene.properties.get("harborwatch:sar_quantity") or _sidecar_quantity(scene)
    try:
        return read_s1(scene, (pol,), grid=grid, calibrated=quantity)
    except MissingCalibrationError as e:
        if scene.source != "local":
            raise
        raise MissingCalibrationError(
            f"{str(e).split(';')[0]}; if the file holds calibrated backscatter, add "
            '"sar_quantity": "sigma0" (or gamma0, beta0) to its scene.json'
        ) from None


def _sidecar_quantity(scene: Scene) -> str | None:
    """``sar_quantity`` from a local scene's scene.json, if it has one."""
    origin = str(scene.properties.get("metadata") or "")
    if scene.source != "local" or not origin.endswith(".json"):
        return None
    try:
        doc = json.loads(Path(origin).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc.get("sar_quantity") if isinstance(doc, dict) else None
