"""Ships in Sentinel-1 backscatter: land mask, CFAR, vessel clustering, rejection of ghosts and structures.

Radar sees through cloud, so S1 scenes fill the days Sentinel-2 cannot see. The detector is the
classic adaptive-threshold CFAR (SNAP's defaults: target 50 m, guard 500 m, background 800 m,
PFA 10^-6.5): a target-window mean is compared with clutter statistics from a background ring
around a guard area, under a Gaussian (two-parameter, or Global Fishing Watch style mean + k·σ),
gamma (speckle) or K (speckle × texture) clutter model. Box sums come from integral images, so
the cost per pixel is constant whatever the window sizes. See docs/sar.md.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cv2
import numpy as np
from pyproj import Transformer
from scipy import ndimage, special

from detect.core.geometry import Detection, detection_from_pixel_box
from detect.core.water import drop_small, otsu_threshold
from imagery.errors import InputError, MissingBandsError
from imagery.sar import S1_WAVELENGTH_M, from_db, sar_quantity
from imagery.types import Grid, RasterWindow

log = logging.getLogger(__name__)

DISTRIBUTIONS = ("gaussian", "gamma", "k")


# ------------------------------------------------------------------------------------------ parameters


@dataclass(frozen=True)
class CfarParams:
    """Window sizes (full side lengths, metres), design false-alarm probability and clutter model.

    ``distribution``: ``gaussian`` is SNAP's two-parameter rule (mean + t·σ, t from the PFA under a
    normal law), ``gamma`` takes the threshold from a gamma law whose looks are estimated in every
    ring (μ²/σ²), ``k`` from a K law (gamma speckle × gamma texture) with texture estimated per ring.
    ``k_sigma`` sets t directly (Global Fishing Watch style mean + k·σ) and forces ``gaussian``.
    """

    target_m: float = 50.0
    guard_m: float = 500.0
    background_m: float = 800.0
    pfa: float = 10**-6.5
    distribution: str = "gamma"
    k_sigma: float | None = None
    #: Speckle looks of the tested statistic for ``k``; None: the median ring estimate over the scene.
    looks: float | None = None
    #: Passes; after the first, pixels near hits are left out of the clutter statistics.
    iterations: int = 2
    #: A pixel is tested only when this share of its background ring is valid water.
    min_ring_fraction: float = 0.25
    #: Per-pixel false-alarm probability that delimits a vessel's extent around a hit.
    extent_pfa: float = 1e-3

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {self.distribution!r}"
            )
        if not 0.0 < self.pfa < 0.5:
            raise ValueError(f"pfa must be in (0, 0.5), got {self.pfa}")
        if not 0 < self.target_m < self.guard_m < self.background_m:
            raise ValueError(
                "need 0 < target_m < guard_m < background_m, "
                f"got {self.target_m}, {self.guard_m}, {self.background_m}"
            )

    def windows_px(self, res_m: float) -> tuple[int, int, int]:
        """Odd window sides in pixels (target, guard, background); the ring is at least 1 px wide."""
        t = _odd(self.target_m / res_m)
        g = max(_odd(self.guard_m / res_m), t + 2)
        return t, g, max(_odd(self.background_m / res_m), g + 2)


@dataclass(frozen=True)
class AmbiguityParams:
    """Azimuth-ambiguity geometry: a bright target has weaker copies Δx = λ·R·PRF / (2·V) away along track.

    Sentinel-1 IW: λ = 5.55 cm, slant range R ≈ 800–950 km (near to far range), PRF ≈ 1450–1720 Hz
    (per sub-swath), platform velocity V ≈ 7.5 km/s, so Δx ≈ 4.3–6.0 km. A detection is a ghost
    when the image ``min_ratio_db`` brighter lies at ±Δx (± ``along_tol_m``) along azimuth and
    within ``across_tol_m`` across.
    """

    wavelength_m: float = S1_WAVELENGTH_M
    slant_range_m: tuple[float, float] = (800e3, 950e3)
    prf_hz: tuple[float, float] = (1450.0, 1720.0)
    velocity_mps: float = 7500.0
    along_tol_m: float = 250.0
    across_tol_m: float = 150.0
    min_ratio_db: float = 10.0

    def displacement_m(self) -> tuple[float, float]:
        """(shortest, longest) ambiguity displacement Δx in metres."""
        lo = self.wavelength_m * self.slant_range_m[0] * self.prf_hz[0] / (2 * self.velocity_mps)
        hi = self.wavelength_m * self.slant_range_m[1] * self.prf_hz[1] / (2 * self.velocity_mps)
        return lo, hi


@dataclass(frozen=True)
class SarShipParams:
    """Everything the S1 ship detector needs besides the window."""

    cfar: CfarParams = field(default_factory=CfarParams)
    polarisation: str = "VV"
    #: Water within this distance of land is not tested (bright shorelines, geolocation error).
    shore_buffer_m: float = 30.0
    #: Clusters longer than this are structures or land (the largest ships are ~400 m).
    max_length_m: float = 500.0
    min_pixels: int = 1
    ambiguity: AmbiguityParams | None = field(default_factory=AmbiguityParams)
    #: Detections within this distance of a listed fixed structure (platform, pier head, buoy) are dropped.
    fixed_radius_m: float = 100.0
    #: SAR land mask (when no water mask is given): block size and smoothing of the median backscatter.
    land_block_m: float = 100.0
    land_smooth_blocks: int = 5
    #: Used when the backscatter is calibrated and not bimodal: land above this (dB, VV-like; −20 for VH).
    land_threshold_db: float = -12.0
    min_land_m2: float = 100_000.0


def _odd(x: float) -> int:
    n = max(1, round(x))
    return n if n % 2 else n + 1


# ------------------------------------------------------------------------------------------ box statistics


def box_sum(a: np.ndarray, size: int) -> np.ndarray:
    """Sum over the ``size``² window centred on each pixel (zeros outside), via an integral image."""
    h = size // 2
    s = np.pad(np.asarray(a, dtype=np.float64), ((h + 1, h), (h + 1, h))).cumsum(0).cumsum(1)
    return s[size:, size:] - s[:-size, size:] - s[size:, :-size] + s[:-size, :-size]


def masked_mean(x: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """Mean of ``x`` over the pixels of ``mask`` in each centred window (NaN where the window has none)."""
    xm = np.where(mask, x, 0.0)
    n = box_sum(mask, size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, box_sum(xm, size) / n, np.nan)


def ring_stats(y: np.ndarray, mask: np.ndarray, guard: int, background: int) -> tuple[np.ndarray, ...]:
    """Mean, variance and pixel count of ``y`` over ``mask`` in the ring between guard and background."""
    ym = np.where(mask, y, 0.0)
    n = box_sum(mask, background) - box_sum(mask, guard)
    s1 = box_sum(ym, background) - box_sum(ym, guard)
    s2 = box_sum(ym * ym, background) - box_sum(ym * ym, guard)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = np.maximum(s2 / n - mean * mean, 0.0)
    return mean, var, n


# ------------------------------------------------------------------------------------------ thresholds


def gaussian_factor(pfa: float) -> float:
    """t such that a normal variable exceeds mean + t·σ with probability ``pfa``."""
    return float(special.ndtri(1.0 - pfa)) if pfa > 1e-12 else float(-special.ndtri(pfa))


def gamma_factor(looks: np.ndarray | float, pfa: float) -> np.ndarray:
    """τ such that gamma intensity with ``looks`` looks and mean 1 exceeds τ with probability ``pfa``."""
    return special.gammainccinv(np.asarray(looks, dtype=np.float64), pfa) / np.asarray(
        looks, dtype=np.float64
    )


@functools.lru_cache(maxsize=64)
def _k_table(looks: float, pfa: float) -> tuple[np.ndarray, np.ndarray]:
    """log ν grid and K-law threshold factors τ(ν) for mean-1 intensity with ``looks`` speckle looks.

    P(I > τ) = E_T[Q(L, L·τ / T)] with texture T ~ Gamma(ν, 1/ν), integrated over log T on a grid
    that spans the texture law's bulk and its upper tail; τ by bisection in log τ (all ν at once).
    """
    log_nu = np.linspace(np.log(0.1), np.log(200.0), 32)
    nu = np.exp(log_nu)[:, None]
    sd = np.sqrt(special.polygamma(1, nu))
    lo = np.maximum(special.digamma(nu) - np.log(nu) - 10 * sd, -40.0)
    hi = np.log(special.gammainccinv(nu, 1e-14) / nu) + 0.5
    s = lo + (hi - lo) * np.linspace(0.0, 1.0, 1200)[None, :]
    w = np.exp(nu * np.log(nu) - special.gammaln(nu) + nu * s - nu * np.exp(s)) * np.gradient(s, axis=1)
    w /= w.sum(axis=1, keepdims=True)
    log_lo, log_hi = np.zeros((nu.size, 1)), np.full((nu.size, 1), np.log(1e6))
    for _ in range(36):
        mid = (log_lo + log_hi) / 2
        tail = np.sum(special.gammaincc(looks, looks * np.exp(mid - s)) * w, axis=1, keepdims=True)
        above = tail > pfa
        log_lo = np.where(above, mid, log_lo)
        log_hi = np.where(above, log_hi, mid)
    return log_nu, np.exp((log_lo + log_hi)[:, 0] / 2)


def k_factor(nu: np.ndarray, looks: float, pfa: float) -> np.ndarray:
    """K-law threshold factors for texture parameters ``nu`` (∞ or > 200: the gamma factor)."""
    log_nu, table = _k_table(round(float(looks), 2), pfa)
    nu = np.asarray(nu, dtype=np.float64)
    out = np.exp(np.interp(np.log(np.clip(nu, 0.1, 200.0)), log_nu, np.log(table)))
    return np.where(nu > 200.0, gamma_factor(looks, pfa), out)


# ------------------------------------------------------------------------------------------ CFAR


@dataclass(frozen=True, eq=False)
class CfarResult:
    """Per-pixel CFAR outputs on the window's grid."""

    hits: np.ndarray  # bool, pixels whose statistic exceeds the threshold
    statistic: np.ndarray  # target-window mean of the backscatter over water
    threshold: np.ndarray  # NaN where not tested
    pixel_threshold: np.ndarray  # single-pixel threshold at ``extent_pfa`` (vessel extent)
    clutter_mean: np.ndarray
    tested: np.ndarray  # bool, pixels that were tested (water, away from shore, enough clutter)
    windows_px: tuple[int, int, int]
    res_m: float
    looks: float | None = None

    @property
    def n_tested(self) -> int:
        return int(self.tested.sum())


def cfar(x: np.ndarray, water: np.ndarray, res_m: float, params: CfarParams | None = None) -> CfarResult:
    """Run the CFAR test on linear backscatter ``x`` where ``water`` (bool) is True.

    The statistic is the target-window mean of ``x`` over water; clutter mean and spread are those of
    the same statistic in the background ring (so averaging and pixel correlation are accounted for).
    """
    p = params or CfarParams()
    t, g, b = p.windows_px(res_m)
    water = water & np.isfinite(x)
    x0 = np.where(water, x, 0.0)
    y = masked_mean(x0, water, t) if t > 1 else np.where(water, x, np.nan)
    y0 = np.nan_to_num(y)
    ring_full = b * b - g * g
    use_k = p.distribution == "k" and p.k_sigma is None
    pixel_looks = (p.looks or local_enl(x0, water)) if use_k else None
    clutter = water.copy()
    looks_used = None
    for _ in range(max(1, p.iterations)):
        mean, var, n = ring_stats(y0, clutter, g, b)
        xm, xv, _ = ring_stats(x0, clutter, g, b)
        tested = water & (n >= p.min_ring_fraction * ring_full) & (mean > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            if p.distribution == "gaussian" or p.k_sigma is not None:
                k = p.k_sigma if p.k_sigma is not None else gaussian_factor(p.pfa)
                thr = mean + k * np.sqrt(var)
            elif p.distribution == "gamma":
                looks = np.clip(mean * mean / np.maximum(var, 1e-30), 0.3, 1e4)
                thr = mean * _gamma_factor_lut(looks, p.pfa)
            else:
                thr, looks_used = _k_threshold(mean, var, xm, xv, tested, float(pixel_looks), t, p.pfa)
        thr = np.where(tested, thr, np.nan)
        hits = tested & (y > thr)
        if not hits.any():
            break
        # Leave hits (grown by the target window) out of the clutter of the next pass.
        grown = cv2.dilate(hits.astype(np.uint8), np.ones((t + 2, t + 2), np.uint8)).astype(bool)
        clutter = water & ~grown
    # Single pixels: their own clutter law (the target-window mean has far less speckle).
    with np.errstate(invalid="ignore", divide="ignore"):
        if p.distribution == "gaussian" or p.k_sigma is not None:
            pix = xm + gaussian_factor(p.extent_pfa) * np.sqrt(xv)
        else:
            pix = xm * _gamma_factor_lut(np.clip(xm * xm / np.maximum(xv, 1e-30), 0.3, 1e4), p.extent_pfa)
    return CfarResult(
        hits=hits,
        statistic=y,
        threshold=thr,
        pixel_threshold=np.where(tested, pix, np.nan),
        clutter_mean=mean,
        tested=tested,
        windows_px=(t, g, b),
        res_m=res_m,
        looks=looks_used,
    )


def local_enl(x: np.ndarray, mask: np.ndarray, size: int = 7) -> float:
    """Speckle looks of single pixels: the median of mean²/variance over ``size``² windows inside ``mask``.

    Small windows see speckle with little texture; the estimate is ~3 % high for 7 × 7 windows.
    """
    n = size * size
    full = box_sum(mask, size) >= n - 0.5
    if not full.any():
        raise InputError(f"no {size}x{size} block of valid water to estimate the speckle looks from")
    m = box_sum(np.where(mask, x, 0.0), size) / n
    v = (box_sum(np.where(mask, x * x, 0.0), size) / n - m * m) * n / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.nanmedian(np.where(full & (v > 0), m * m / v, np.nan)))


def _k_threshold(
    mean: np.ndarray,
    var: np.ndarray,
    xm: np.ndarray,
    xv: np.ndarray,
    tested: np.ndarray,
    pixel_looks: float,
    target_px: int,
    pfa: float,
) -> tuple[np.ndarray, float]:
    """K-law threshold of the target-window mean, and the speckle looks of that mean.

    Texture ν per ring from the pixels' normalised variance, m2 = (1 + 1/L)(1 + 1/ν) − 1; the
    target-window mean keeps the texture (it varies more slowly than 50 m) but averages speckle, so its
    own looks follow from its normalised variance with the same ν (median over the scene, for stability).
    """
    inv_nu = np.maximum((1.0 + xv / (xm * xm)) / (1.0 + 1.0 / pixel_looks) - 1.0, 0.0)
    nu = np.where(inv_nu > 1.0 / 200.0, 1.0 / np.maximum(inv_nu, 1e-9), np.inf)
    looks = pixel_looks
    if target_px > 1:
        inv_l = (1.0 + var / (mean * mean)) / (1.0 + inv_nu) - 1.0
        est = np.where(tested & (inv_l > 0), 1.0 / inv_l, np.nan)
        looks = max(pixel_looks, float(np.nanmedian(est))) if np.isfinite(est).any() else pixel_looks
    looks = float(f"{looks:.3g}")  # a few distinct tables, cached
    return mean * k_factor(nu, looks, pfa), looks


def _gamma_factor_lut(looks: np.ndarray, pfa: float) -> np.ndarray:
    """gamma_factor over a log-looks table (exact per-pixel inversion is ~50× slower)."""
    grid = np.exp(np.linspace(np.log(0.3), np.log(1e4), 512))
    table = gamma_factor(grid, pfa)
    return np.exp(np.interp(np.log(looks), np.log(grid), np.log(table)))


# ------------------------------------------------------------------------------------------ land / water


def sar_land_mask(
    x: np.ndarray,
    res_m: float,
    quantity: str = "sigma0",
    params: SarShipParams | None = None,
    polarisation: str = "VV",
) -> np.ndarray:
    """Land (True) from backscatter alone: areas whose median backscatter over ``land_block_m`` blocks,
    smoothed over ``land_smooth_blocks`` blocks, is bright.

    The threshold is Otsu's on the smoothed block medians when they are bimodal (class means ≥ 4 dB
    apart); otherwise, for calibrated data, ``land_threshold_db`` (−8 dB lower for cross-pol), and for
    uncalibrated DN² everything is taken as water. Land blobs under ``min_land_m2`` (ships, rocks) are
    dropped and the rest grown by one block (the mask is coarse; give a water mask to see quaysides).
    Medians make a ship (a few bright pixels in a block) leave no mark.
    """
    p = params or SarShipParams()
    blk = max(1, round(p.land_block_m / res_m))
    h, w = x.shape
    hb, wb = -(-h // blk), -(-w // blk)
    padded = np.full((hb * blk, wb * blk), np.nan, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        padded[:h, :w] = np.where(x > 0, 10 * np.log10(x), np.nan)
    blocks = padded.reshape(hb, blk, wb, blk).transpose(0, 2, 1, 3).reshape(hb, wb, blk * blk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blocks outside the swath are all NaN
        med = np.nanmedian(blocks, axis=2)
    filled = np.where(np.isfinite(med), med, np.nanmedian(med) if np.isfinite(med).any() else 0.0)
    smooth = ndimage.median_filter(filled, size=max(1, p.land_smooth_blocks), mode="nearest")
    vals = smooth[np.isfinite(med)]
    land_c = np.zeros(smooth.shape, bool)
    if vals.size:
        thr = otsu_threshold(vals, value_range=(float(vals.min()), float(vals.max()) + 1e-6))
        lo, hi = vals[vals <= thr], vals[vals > thr]
        if lo.size and hi.size and hi.mean() - lo.mean() >= 4.0:
            land_c = smooth > thr
        elif quantity != "dn2":
            land_c = smooth > p.land_threshold_db - (8.0 if polarisation in ("VH", "HV") else 0.0)
    min_blocks = round(p.min_land_m2 / (blk * res_m) ** 2)
    land_c = drop_small(land_c, min_blocks)
    # Block edges fall up to a block off the true shore: grow land by one block to stay on the safe side.
    land_c = cv2.dilate(land_c.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return np.repeat(np.repeat(land_c, blk, 0), blk, 1)[:h, :w]


def water_from_zones(
    aoi: Any, grid: Grid, kinds: Sequence[str] = ("water", "anchorage", "berth")
) -> np.ndarray:
    """Water mask (True = water) from an AOI's water-like zones rasterised on ``grid``."""
    from rasterio.features import geometry_mask

    geoms = [z.area_geometry(grid.crs) for z in aoi.zones if z.kind in kinds]
    if not geoms:
        raise InputError(f"AOI {aoi.name!r} has no zones of kind {', '.join(kinds)} to use as water")
    return geometry_mask(geoms, out_shape=grid.shape, transform=grid.transform, invert=True)


def test_area(water: np.ndarray, valid: np.ndarray, res_m: float, shore_buffer_m: float) -> np.ndarray:
    """Water pixels at least ``shore_buffer_m`` from land (invalid pixels are not land)."""
    land = ~water & valid
    r = math.ceil(shore_buffer_m / res_m)
    if r > 0 and land.any():
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        land = cv2.dilate(land.astype(np.uint8), k).astype(bool)
    return water & valid & ~land


# ------------------------------------------------------------------------------------------ detection


@dataclass(frozen=True, eq=False)
class SarDetectionResult:
    """Vessels found, candidates rejected (with ``rejected`` property saying why), masks used."""

    detections: list[Detection]
    rejected: list[Detection]
    cfar: CfarResult
    water: np.ndarray
    land_mask_source: str

    @property
    def area_tested_km2(self) -> float:
        """Water area actually tested (away from shore, with enough clutter around)."""
        return self.cfar.n_tested * self.cfar.res_m**2 / 1e6


def _linear_band(window: RasterWindow, pol: str) -> tuple[np.ndarray, str]:
    quantity, units = sar_quantity(window)
    if pol not in window.band_names:
        raise MissingBandsError(
            [pol], f"{window.scene_id or 'SAR window'} (bands: {', '.join(window.band_names)})"
        )
    x = window.band(pol).astype(np.float64)
    if units == "dB":
        x = from_db(x).astype(np.float64)
    return np.where(np.isfinite(x) & (x > 0), x, np.nan), quantity


def _fixed_pixels(points: Sequence[tuple[float, float]], grid: Grid) -> np.ndarray:
    """(col, row) float pixel positions of lon/lat points on ``grid``."""
    if not len(points):
        return np.zeros((0, 2))
    lon, lat = np.asarray(points, dtype=float).T
    x, y = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True).transform(lon, lat)
    col, row = ~grid.transform @ (np.asarray(x), np.asarray(y))
    return np.stack([col, row], axis=1)


def _ambiguity_check(
    cx: float, cy: float, peak: float, y_all: np.ndarray, res_m: float, bearing_deg: float, a: AmbiguityParams
) -> tuple[bool, float, float]:
    """(is ghost, brightest source found / peak in dB, share of the search strip inside the grid)."""
    lo, hi = a.displacement_m()
    along = np.arange(lo - a.along_tol_m, hi + a.along_tol_m + res_m, res_m)
    across = np.arange(-a.across_tol_m, a.across_tol_m + res_m, res_m)
    aa, cc = np.meshgrid(np.concatenate([along, -along]), across)
    b = math.radians(bearing_deg)
    # metres east / north → pixel col / row on a north-up grid
    east = aa * math.sin(b) + cc * math.cos(b)
    north = aa * math.cos(b) - cc * math.sin(b)
    cols = np.floor(cx + east / res_m).astype(int)
    rows = np.floor(cy - north / res_m).astype(int)
    h, w = y_all.shape
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    coverage = float(inside.mean())
    if not inside.any():
        return False, float("nan"), 0.0
    vals = y_all[rows[inside], cols[inside]]
    if not np.isfinite(vals).any():
        return False, float("nan"), coverage
    src = float(np.nanmax(vals))
    ratio_db = 10 * math.log10(src / peak) if src > 0 and peak > 0 else float("nan")
    return bool(ratio_db >= a.min_ratio_db), ratio_db, coverage


def detect_ships_sar(
    window: RasterWindow,
    params: SarShipParams | None = None,
    *,
    water: np.ndarray | Any | None = None,
    fixed_points: Sequence[tuple[float, float]] = (),
    fixed_mask: np.ndarray | None = None,
    azimuth_bearing_deg: float | None = None,
) -> SarDetectionResult:
    """Find vessels in a SAR window (``imagery.sar.read_s1``): Detections of class ``ship``, ``sensor="S1"``.

    ``water``: bool array on the grid (True = water) or a ``detect.core.water.WaterMask`` (its core is used);
    without it a SAR land mask is made (``sar_land_mask``). ``fixed_points``: (lon, lat) of known
    structures; ``fixed_mask``: bool array of structure pixels. ``azimuth_bearing_deg`` (direction of
    increasing azimuth, default from the window's meta) enables azimuth-ambiguity rejection.
    """
    p = params or SarShipParams()
    grid = window.grid
    res = grid.res_m
    x, quantity = _linear_band(window, p.polarisation)
    valid = np.isfinite(x) & window.valid_mask
    if water is None:
        water_mask = ~sar_land_mask(x, res, quantity, p, p.polarisation) & valid
        source = "sar"
    else:
        arr = getattr(water, "core", None)
        arr = arr if arr is not None else getattr(water, "mask", water)
        water_mask = np.asarray(arr, bool)
        if water_mask.shape != grid.shape:
            raise InputError(f"water mask shape {water_mask.shape} does not match the grid {grid.shape}")
        source = "given"
    area = test_area(water_mask, valid, res, p.shore_buffer_m)
    res_cfar = cfar(x, area, res, p.cfar)
    t = res_cfar.windows_px[0]
    y_all = masked_mean(np.nan_to_num(x), valid, t) if t > 1 else np.where(valid, x, np.nan)
    bearing = (
        azimuth_bearing_deg if azimuth_bearing_deg is not None else window.meta.get("azimuth_bearing_deg")
    )
    fixed_px = _fixed_pixels(fixed_points, grid)

    n, labels, stats, _ = cv2.connectedComponentsWithStats(res_cfar.hits.astype(np.uint8), connectivity=8)
    kept: list[Detection] = []
    rejected: list[Detection] = []
    half = t // 2 + 1
    h, w = x.shape
    for i in range(1, n):
        c0, r0 = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_TOP]
        c1, r1 = c0 + stats[i, cv2.CC_STAT_WIDTH], r0 + stats[i, cv2.CC_STAT_HEIGHT]
        rs, cs = slice(max(0, r0 - half), min(h, r1 + half)), slice(max(0, c0 - half), min(w, c1 + half))
        comp = labels[rs, cs] == i
        near = cv2.dilate(comp.astype(np.uint8), np.ones((t, t), np.uint8)).astype(bool)
        pix_thr = res_cfar.pixel_threshold[rs, cs]
        pix_fill = float(np.nanmin(np.where(comp, pix_thr, np.nan)))
        # Vessel pixels: single pixels above their own threshold near the hit (the target-window mean
        # blurs the extent by the target window).
        ship = near & (np.nan_to_num(x[rs, cs]) > np.where(np.isfinite(pix_thr), pix_thr, pix_fill))
        peak = np.unravel_index(np.nanargmax(np.where(comp, x[rs, cs], -np.inf)), comp.shape)
        ship[peak] = True
        # Lone clutter pixels beside the hull would skew the box: keep pieces of 2+ pixels and the peak's.
        _, parts, sizes, _ = cv2.connectedComponentsWithStats(ship.astype(np.uint8), connectivity=8)
        keep = sizes[:, cv2.CC_STAT_AREA] >= 2
        keep[0], keep[parts[peak]] = False, True
        ship = keep[parts]
        rr, cc = np.nonzero(ship)
        if rr.size < p.min_pixels:
            continue
        rr = rr + rs.start
        cc = cc + cs.start
        corners = np.concatenate([np.stack([cc + dc, rr + dr], 1) for dr in (0, 1) for dc in (0, 1)]).astype(
            np.float32
        )
        box = cv2.boxPoints(cv2.minAreaRect(corners))
        y_comp = np.where(labels[rs, cs] == i, res_cfar.statistic[rs, cs], -np.inf)
        k = int(np.argmax(y_comp))
        pr, pc = np.unravel_index(k, y_comp.shape)
        peak_y = float(y_comp.flat[k])
        thr_at = float(res_cfar.threshold[rs, cs][pr, pc])
        clutter = float(res_cfar.clutter_mean[rs, cs][pr, pc])
        margin_db = 10 * math.log10(peak_y / thr_at) if thr_at > 0 else 0.0
        peak_x = float(np.max(x[rr, cc]))
        props: dict[str, Any] = {
            "polarisation": p.polarisation,
            "n_pixels": int(rr.size),
            "peak_scr_db": round(10 * math.log10(peak_x / clutter), 2) if clutter > 0 else None,
            "scr_db": round(10 * math.log10(float(np.mean(x[rr, cc])) / clutter), 2) if clutter > 0 else None,
            "cfar_margin_db": round(margin_db, 2),
            "clutter_db": round(10 * math.log10(clutter), 2) if clutter > 0 and quantity != "dn2" else None,
            "peak_db": round(10 * math.log10(peak_x), 2) if quantity != "dn2" else None,
            "quantity": quantity,
            "land_mask": source,
        }
        det = detection_from_pixel_box(
            grid,
            box,
            "ship",
            score=min(1.0, max(0.0, 0.5 + margin_db / 20.0)),
            scene=window.scene_id,
            acquired=window.acquired,
            sensor="S1",
            detector="cfar",
            properties=props,
        )
        cx, cy = float(cc.mean() + 0.5), float(rr.mean() + 0.5)
        reason = None
        if det.length_m > p.max_length_m:
            reason = "too_large"
        elif (fixed_mask is not None and fixed_mask[int(cy), int(cx)]) or (
            len(fixed_px)
            and np.min(np.hypot(fixed_px[:, 0] - cx, fixed_px[:, 1] - cy)) * res <= p.fixed_radius_m
        ):
            reason = "fixed_structure"
        elif p.ambiguity is not None and bearing is not None:
            ghost, ratio_db, cover = _ambiguity_check(cx, cy, peak_y, y_all, res, float(bearing), p.ambiguity)
            det = det.with_properties(ambiguity_search_coverage=round(cover, 2))
            if ghost:
                reason = "azimuth_ambiguity"
                det = det.with_properties(ambiguity_source_ratio_db=round(ratio_db, 1))
        if reason:
            rejected.append(det.with_properties(rejected=reason))
        else:
            kept.append(det)
    return SarDetectionResult(
        detections=kept, rejected=rejected, cfar=res_cfar, water=water_mask, land_mask_source=source
    )


# ------------------------------------------------------------------------------------------ registry, days


class SarShipDetector:
    """The ``Detector`` protocol over ``detect_ships_sar`` (registered as ship / cfar)."""

    name = "cfar"
    classes = ("ship",)

    def __init__(self, params: SarShipParams | None = None, **kw: Any) -> None:
        self.params = params or SarShipParams(**kw)
        self.required_bands = (self.params.polarisation,)

    def detect(self, window: RasterWindow, *, conf: float | None = None, **kw: Any) -> list[Detection]:
        found = detect_ships_sar(window, self.params, **kw).detections
        return [d for d in found if conf is None or d.score >= conf]


def s1_observation(window: RasterWindow, water: np.ndarray | None = None) -> dict[str, Any]:
    """A scene row for the daily table: S1 sees through cloud, so the observed share is the valid share.

    ``valid_fraction`` is over the whole grid; with ``water`` the observed fraction is over water only.
    """
    sar_quantity(window)
    valid = window.valid_mask
    valid_fraction = float(valid.mean()) if valid.size else 0.0
    observed = valid_fraction
    if water is not None and np.any(water):
        observed = float((valid & water).sum() / np.sum(water))
    acquired: datetime | None = window.acquired
    return {
        "scene": window.scene_id,
        "datetime": acquired,
        "date": acquired.date() if isinstance(acquired, datetime) else None,
        "source": window.source,
        "processing_level": window.processing_level or "GRD",
        "cloud_cover": None,
        "cloud_fraction": 0.0,
        "valid_fraction": valid_fraction,
        "observed_fraction": observed,
        "status": "clear" if observed > 0 else "no_data",
        "reason": "" if observed > 0 else "no valid S1 pixels on the grid",
        "sensor": "S1",
        "polarisations": ",".join(window.band_names),
        "quantity": window.meta.get("quantity"),
    }


# ------------------------------------------------------------------------------------------ simulation


def simulate_clutter(
    shape: tuple[int, int],
    sigma0_db: float = -20.0,
    looks: float = 4.4,
    *,
    texture_nu: float | None = None,
    texture_px: int = 8,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Sea clutter intensity (linear, mean 10^(sigma0_db/10)): gamma speckle with ``looks`` looks,
    times (for K clutter) a gamma texture of shape ``texture_nu`` and mean 1, constant over
    ``texture_px`` × ``texture_px`` patches (swell and wind cells vary slower than speckle)."""
    rng = rng or np.random.default_rng()
    mean = 10 ** (sigma0_db / 10)
    x = rng.gamma(looks, 1.0 / looks, size=shape)
    if texture_nu is not None:
        hb, wb = -(-shape[0] // texture_px), -(-shape[1] // texture_px)
        tex = rng.gamma(texture_nu, 1.0 / texture_nu, size=(hb, wb))
        x *= np.repeat(np.repeat(tex, texture_px, 0), texture_px, 1)[: shape[0], : shape[1]]
    return (x * mean).astype(np.float32)


def vessel_pixels(
    shape: tuple[int, int], row: float, col: float, length_px: float, width_px: float, heading_rad: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and cols of the pixels whose centres lie in an oriented rectangle (at least the centre pixel)."""
    r = math.ceil(max(length_px, width_px)) + 1
    r0, c0 = max(0, int(row) - r), max(0, int(col) - r)
    rr, cc = np.mgrid[r0 : min(shape[0], int(row) + r + 1), c0 : min(shape[1], int(col) + r + 1)]
    dy, dx = rr + 0.5 - row, cc + 0.5 - col
    along = dx * math.sin(heading_rad) - dy * math.cos(heading_rad)
    across = dx * math.cos(heading_rad) + dy * math.sin(heading_rad)
    inside = (np.abs(along) <= length_px / 2) & (np.abs(across) <= width_px / 2)
    if not inside.any():
        return np.array([int(row)]), np.array([int(col)])
    return rr[inside], cc[inside]


def inject_vessel(
    x: np.ndarray,
    row: float,
    col: float,
    length_m: float,
    res_m: float,
    scr_db: float,
    clutter_mean: float,
    *,
    heading_deg: float = 0.0,
    looks: float = 4.4,
    rng: np.random.Generator | None = None,
) -> int:
    """Write a vessel into ``x`` in place: its pixels get mean ``clutter_mean``·10^(scr_db/10) with gamma
    fluctuation; width is length/7 (at least 10 m). Returns the number of vessel pixels."""
    rng = rng or np.random.default_rng()
    rr, cc = vessel_pixels(
        x.shape, row, col, length_m / res_m, max(10.0, length_m / 7) / res_m, math.radians(heading_deg)
    )
    x[rr, cc] = clutter_mean * 10 ** (scr_db / 10) * rng.gamma(looks, 1.0 / looks, size=rr.size)
    return int(rr.size)


def detection_pixels(detections: Sequence[Detection], grid: Grid) -> np.ndarray:
    """(col, row) float pixel positions of detection centres on ``grid``."""
    return _fixed_pixels([(d.lon, d.lat) for d in detections], grid)
