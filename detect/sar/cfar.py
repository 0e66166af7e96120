"""CFAR on Sentinel-1 backscatter: the adaptive threshold under the radar ship detector (``sar.detector``).

Radar sees through cloud, so S1 scenes fill the days Sentinel-2 cannot see. The detector is the
classic adaptive-threshold CFAR (SNAP's defaults: target 50 m, guard 500 m, background 800 m,
PFA 10^-6.5): a target-window mean is compared with clutter statistics from a background ring
around a guard area, under a Gaussian (two-parameter, or Global Fishing Watch style mean + k·σ),
gamma (speckle) or K (speckle × texture) clutter model, or (``auto``, the default) K where the ring's
fitted texture shape says the tails are heavy and gamma elsewhere. Box sums come from integral images, so
the cost per pixel is constant whatever the window sizes. See docs/sar.md.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import special

from detect.sar.params import CfarParams
from imagery.errors import InputError
from imagery.sar import S1_IW_GRDH_ENL

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, eq=False)
class CfarResult:
    """Per-pixel CFAR outputs on the window's grid."""

    hits: np.ndarray  # bool, pixels whose statistic exceeds the threshold
    statistic: np.ndarray  # target-window mean of the backscatter over water (auto, heavy tails: the pixel)
    threshold: np.ndarray  # NaN where not tested
    pixel_threshold: np.ndarray  # single-pixel threshold at ``extent_pfa`` (vessel extent)
    clutter_mean: np.ndarray
    tested: np.ndarray  # bool, pixels that were tested (water, away from shore, enough clutter)
    windows_px: tuple[int, int, int]
    res_m: float
    looks: float | None = None
    #: ``auto``: bool, tested pixels whose ring chose the K law (heavy tails); None for the other models.
    heavy_tailed: np.ndarray | None = None

    @property
    def n_tested(self) -> int:
        return int(self.tested.sum())

    @property
    def heavy_tailed_fraction(self) -> float | None:
        """``auto``: the share of tested pixels thresholded under the K law; None for the other models."""
        if self.heavy_tailed is None:
            return None
        return float(self.heavy_tailed.sum() / max(1, self.n_tested))


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
    use_k = p.distribution in ("k", "auto") and p.k_sigma is None
    if not use_k:
        pixel_looks = None
    elif p.looks:
        pixel_looks = p.looks
    elif p.distribution == "auto":
        # The product's stated ENL: small-window estimates mistake texture inside the window for speckle
        # (on K clutter with 80 m cells they read 2.9–3.8 for 4.4 looks, and the K test then lets 2–13× the
        # design rate through).
        pixel_looks = S1_IW_GRDH_ENL
    else:
        pixel_looks = local_enl(x0, water)
    clutter = water.copy()
    looks_used = None
    heavy = None
    stat = y
    for _ in range(max(1, p.iterations)):
        mean, var, n = ring_stats(y0, clutter, g, b)
        xm, xv, _ = ring_stats(x0, clutter, g, b)
        tested = water & (n >= p.min_ring_fraction * ring_full) & (mean > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            if p.distribution == "gaussian" or p.k_sigma is not None:
                k = p.k_sigma if p.k_sigma is not None else gaussian_factor(p.pfa)
                thr = mean + k * np.sqrt(var)
            elif p.distribution == "gamma":
                thr = _gamma_threshold(mean, var, p.pfa)
            elif p.distribution == "k":
                thr, looks_used, _ = _k_threshold(mean, var, xm, xv, tested, float(pixel_looks), t, p.pfa)
            else:
                stat, thr, heavy, looks_used = _auto_test(
                    x, y, water, tested, mean, var, xm, xv, float(pixel_looks), t, p
                )
        thr = np.where(tested, thr, np.nan)
        hits = tested & (stat > thr)
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
            pix = _gamma_threshold(xm, xv, p.extent_pfa)
    return CfarResult(
        hits=hits,
        statistic=stat,
        threshold=thr,
        pixel_threshold=np.where(tested, pix, np.nan),
        clutter_mean=mean,
        tested=tested,
        windows_px=(t, g, b),
        res_m=res_m,
        looks=looks_used,
        heavy_tailed=heavy,
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
) -> tuple[np.ndarray, float, np.ndarray]:
    """K-law threshold of the target-window mean, the speckle looks of that mean, and ν per ring (∞: none).

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
    return mean * k_factor(nu, looks, pfa), looks, nu


def _auto_test(
    x: np.ndarray,
    y: np.ndarray,
    water: np.ndarray,
    tested: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    xm: np.ndarray,
    xv: np.ndarray,
    pixel_looks: float,
    target_px: int,
    p: CfarParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The ``auto`` test: (statistic, threshold, heavy-tailed rings, pixel looks).

    Where the ring's fitted K shape ν is below ``heavy_tail_nu``, the single-pixel K test (its texture
    model needs texture constant over the target window, which a 50 m window breaks). Elsewhere two
    tests share the PFA: the target-window mean under a gamma law with pooled looks (extended vessels)
    and the single pixel (small boats, whose few bright pixels the target-window mean dilutes). Each
    pixel keeps the test it passes by more, so the statistic and threshold stay one pair.
    """
    xw = np.where(water, x, np.nan)
    k_thr, looks, nu = _k_threshold(xm, xv, xm, xv, tested, pixel_looks, 1, p.pfa)
    heavy = tested & (nu < p.heavy_tail_nu)
    if target_px == 1:
        thr = np.where(heavy, k_thr, _pooled_gamma_threshold(mean, var, tested & ~heavy, p.pfa))
        return xw, thr, heavy, looks
    px_thr = np.where(heavy, k_thr, _k_threshold(xm, xv, xm, xv, tested, pixel_looks, 1, p.pfa / 2)[0])
    mean_thr = _pooled_gamma_threshold(mean, var, tested & ~heavy, p.pfa / 2)
    use_px = heavy | (xw / px_thr > y / mean_thr)
    return np.where(use_px, xw, y), np.where(use_px, px_thr, mean_thr), heavy, looks


def _pooled_gamma_threshold(mean: np.ndarray, var: np.ndarray, where: np.ndarray, pfa: float) -> np.ndarray:
    """Gamma-law threshold with the looks of the statistic pooled (median μ²/σ²) over the rings ``where``.

    One ring's looks estimate is noisy (±11 % for the 50 m mean in an 800 m ring), and at PFA 10^-6.5 that
    noise alone lets several times the design rate through; speckle looks are a property of the product.
    """
    if not where.any():
        return np.full(mean.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        looks = float(np.nanmedian((mean * mean / var)[where]))
    return mean * gamma_factor(np.clip(looks, 0.3, 1e4), pfa)


def _gamma_threshold(mean: np.ndarray, var: np.ndarray, pfa: float) -> np.ndarray:
    """Gamma-law threshold with the looks of the ring's statistic, μ²/σ²."""
    return mean * _gamma_factor_lut(np.clip(mean * mean / np.maximum(var, 1e-30), 0.3, 1e4), pfa)


def _gamma_factor_lut(looks: np.ndarray, pfa: float) -> np.ndarray:
    """gamma_factor over a log-looks table (exact per-pixel inversion is ~50× slower)."""
    grid = np.exp(np.linspace(np.log(0.3), np.log(1e4), 512))
    table = gamma_factor(grid, pfa)
    return np.exp(np.interp(np.log(looks), np.log(grid), np.log(table)))
