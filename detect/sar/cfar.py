"""CFAR on Sentinel-1 backscatter: the adaptive threshold under the radar ship detector (``sar.detector``).

Radar sees through cloud, so S1 scenes fill the days Sentinel-2 cannot see. The detector is the
classic adaptive-threshold CFAR (SNAP's defaults: target 50 m, guard 500 m, background 800 m,
PFA 10^-6.5): a target-window mean is compared with clutter statistics from a background ring
around a guard area, under a Gaussian (two-parameter, or Global Fishing Watch style mean + k·σ),
gamma (speckle) or K (speckle × texture) clutter model, or (``auto``, the default) K where the ring's
fitted texture shape says the tails are heavy and gamma elsewhere. In the heavy-tailed rings ``auto`` adds
an extended-target test: hull-shaped window means against thresholds from a K texture model whose
correlation length is fitted to the scene. Box sums come from integral images, so
the cost per pixel is constant whatever the window sizes. See docs/sar.md.
"""

from __future__ import annotations

import functools
import logging
import math
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
    w = _log_gamma_pdf(s, nu) * np.gradient(s, axis=1)
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
                    x, y, water, tested, clutter, mean, var, xm, xv, float(pixel_looks), t, res_m, p
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
    clutter: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    xm: np.ndarray,
    xv: np.ndarray,
    pixel_looks: float,
    target_px: int,
    res_m: float,
    p: CfarParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The ``auto`` test: (statistic, threshold, heavy-tailed rings, pixel looks).

    Where the ring's fitted K shape ν is below ``heavy_tail_nu``, the single-pixel K test (its texture
    model needs texture constant over the target window, which a 50 m window breaks) and, sharing the PFA,
    the extended-target test (``extended_test``: long weak hulls). Elsewhere two tests share the PFA: the
    target-window mean under a gamma law with pooled looks (extended vessels) and the single pixel (small
    boats, whose few bright pixels the target-window mean dilutes). Each pixel keeps the test it passes by
    more, so the statistic and threshold stay one pair.
    """
    xw = np.where(water, x, np.nan)
    k_thr, looks, nu = _k_threshold(xm, xv, xm, xv, tested, pixel_looks, 1, p.pfa)
    heavy = tested & (nu < p.heavy_tail_nu)
    heavy_stat, heavy_thr = xw, k_thr
    if p.extended_m and heavy.any():
        k_rest = _k_threshold(xm, xv, xm, xv, tested, pixel_looks, 1, p.pfa * (1 - p.extended_pfa_share))[0]
        # Pixels the single-pixel test finds are left out of the window means: the windows would otherwise
        # light up all around a bright compact vessel and blur it into a long false one.
        with np.errstate(invalid="ignore"):
            found = heavy & (xw > k_rest)
        ext = extended_test(
            x, water & ~found, heavy, clutter & ~found, xm, nu, pixel_looks, p.pfa * p.extended_pfa_share,
            tuple((length / res_m, width / res_m) for length, width in p.extended_m), p.extended_orientations,
            p.windows_px(res_m)[1:],
        )
    else:
        ext = None
    if ext is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            use_ext = heavy & (ext[0] / ext[1] > xw / k_rest)
        heavy_stat, heavy_thr = np.where(use_ext, ext[0], xw), np.where(use_ext, ext[1], k_rest)
    if target_px == 1:
        thr = np.where(heavy, heavy_thr, _pooled_gamma_threshold(mean, var, tested & ~heavy, p.pfa))
        return heavy_stat, thr, heavy, looks
    k_half = _k_threshold(xm, xv, xm, xv, tested, pixel_looks, 1, p.pfa / 2)[0]
    px_thr = np.where(heavy, heavy_thr, k_half)
    px_stat = np.where(heavy, heavy_stat, xw)
    mean_thr = _pooled_gamma_threshold(mean, var, tested & ~heavy, p.pfa / 2)
    use_px = heavy | (px_stat / px_thr > y / mean_thr)
    return np.where(use_px, px_stat, y), np.where(use_px, px_thr, mean_thr), heavy, looks


def extended_test(
    x: np.ndarray,
    water: np.ndarray,
    heavy: np.ndarray,
    clutter: np.ndarray,
    ring_mean: np.ndarray,
    nu: np.ndarray,
    looks: float,
    pfa: float,
    hulls_px: tuple[tuple[float, float], ...],
    orientations: int,
    ring_px: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray] | None:
    """Extended-target test in heavy-tailed clutter: (statistic, threshold), NaN where not tested; None
    when the scene has too little heavy-tailed water to fit the texture's correlation.

    For each hull-shaped rectangle (``hulls_px``: length, width) the statistic is the largest mean of
    x / ring mean over it at ``orientations`` headings, times the ring mean; each pixel keeps the size it
    passes by more. A long hull spans several texture cells, so its window mean has a far lighter tail
    than one pixel's; how much lighter depends on the texture's correlation length, fitted from the data
    (``texture_scale_px``), and ν. The thresholds are those of that fitted model (``_extended_table``)
    at ``pfa`` split evenly among all sizes and headings (a union bound).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(water & (ring_mean > 0), x / ring_mean, 0.0)
    ok = heavy & np.isfinite(nu)
    scene_nu = float(np.median(nu[ok]))
    box = max(3, round(max(h[0] for h in hulls_px) / 2))
    ell = texture_scale_px(z, clutter & heavy, scene_nu, looks, box)
    if ell is None:
        return None
    # A geometric grid (9 % steps, rounded up: the longer scale is the safer) keeps the tables few.
    ell_q = float(2.0 ** (np.ceil(8 * np.log2(ell)) / 8))
    # One ring's ν is noisy (tens of texture cells) and the threshold falls fast with ν: the ring's ν, or the
    # scene's median where that is smaller (heavier tails).
    log_nu_px = np.log(np.clip(np.minimum(nu, scene_nu), 0.3, 60.0))
    # Only the heavy-tailed part of the scene (and a window's reach around it) needs the window means.
    reach = math.ceil(max(math.hypot(*h) for h in hulls_px) / 2) + 2
    rows, cols = np.flatnonzero(heavy.any(axis=1)), np.flatnonzero(heavy.any(axis=0))
    crop = (
        slice(max(0, rows[0] - reach), rows[-1] + reach + 1),
        slice(max(0, cols[0] - reach), cols[-1] + reach + 1),
    )
    zf, wf = z[crop].astype(np.float32), water[crop].astype(np.float32)
    stat = np.full(x.shape, np.nan)
    thr = np.full(x.shape, np.nan)
    for length_px, width_px in hulls_px:
        length_px, width_px = round(length_px, 2), round(width_px, 2)
        log_nu, table = _extended_table(
            ell_q, round(float(looks), 2), pfa / len(hulls_px), length_px, width_px, orientations, ring_px
        )
        m = np.full(x.shape, -np.inf)
        for k in hull_kernels(length_px, width_px, orientations):
            cover = cv2.filter2D(wf, -1, k, borderType=cv2.BORDER_CONSTANT)
            mean = cv2.filter2D(zf, -1, k, borderType=cv2.BORDER_CONSTANT)
            # Windows that reach land or the scene edge are not tested (their mean mixes in no-data).
            m[crop] = np.maximum(m[crop], np.where(cover > 0.98, mean / np.maximum(cover, 1e-6), -np.inf))
        t = np.exp(np.interp(log_nu_px, log_nu, np.log(table)))
        better = np.isfinite(m) & ~(stat / thr >= m / t)
        stat, thr = np.where(better, m, stat), np.where(better, t, thr)
    tested = heavy & np.isfinite(stat)
    return (np.where(tested, stat * ring_mean, np.nan), np.where(tested, thr * ring_mean, np.nan))


@functools.lru_cache(maxsize=8)
def hull_kernels(length_px: float, width_px: float, n: int) -> tuple[np.ndarray, ...]:
    """Pixel weights (sum 1) of a ``length_px`` × ``width_px`` rectangle at ``n`` headings over 180°,
    edge pixels weighted by the share of them inside (4 × 4 subsamples)."""
    ss = 4
    size = 2 * (math.ceil(math.hypot(length_px, width_px) / 2) + 1) + 1
    g = (np.arange(size * ss) + 0.5) / ss - size / 2
    yy, xx = np.meshgrid(g, g, indexing="ij")
    out = []
    for theta in np.pi * np.arange(n) / n:
        along = xx * math.cos(theta) + yy * math.sin(theta)
        across = yy * math.cos(theta) - xx * math.sin(theta)
        inside = (np.abs(along) <= length_px / 2) & (np.abs(across) <= width_px / 2)
        k = inside.reshape(size, ss, size, ss).mean(axis=(1, 3))
        out.append((k / k.sum()).astype(np.float32))
    return tuple(out)


def _box_share(r: np.ndarray) -> np.ndarray:
    """Mean of Σ (share of a length-r interval in each unit cell)², over the interval's offsets."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(r <= 1.0, 1.0 - r / 3.0, 1.0 / r - 1.0 / (3.0 * r * r))


def texture_scale_px(z: np.ndarray, mask: np.ndarray, nu: float, looks: float, box: int) -> float | None:
    """Correlation length of the texture in pixels: the cell side of a piecewise-constant gamma texture
    (shape ``nu``, random cell offsets) whose ``box``² means vary as much as those of ``z`` (intensity over
    its local mean) inside ``mask``; None with fewer than 1000 full boxes.

    For such a texture the box mean's variance is s(box/ℓ)² / ν + (1 + 1/ν) / (L·box²), s = ``_box_share``
    (also exact for any texture whose correlation is a product of triangles of width ℓ). The variance is
    taken from the log interquartile range of the box means through a gamma law, so that bright vessels in
    the scene (a few per cent of the boxes) barely move it.
    """
    full = box_sum(mask, box) >= box * box - 0.5
    if full.sum() < 1000:
        return None
    m = box_sum(np.where(mask, z, 0.0), box)[full] / (box * box)
    q25, q75 = np.quantile(m, [0.25, 0.75])
    if not q25 > 0:
        return None
    shapes = np.geomspace(0.05, 1e6, 600)
    spread = np.log(special.gammaincinv(shapes, 0.75) / special.gammaincinv(shapes, 0.25))
    shape = float(np.interp(-np.log(q75 / q25), -spread, shapes))
    share = math.sqrt(max(nu * (1.0 / shape - (1.0 + 1.0 / nu) / (looks * box * box)), 0.0))
    if share >= 1.0:
        return 4.0 * box  # texture constant over the boxes: as long as the windows and more
    r = np.geomspace(1e-3, 1e3, 4000)
    return float(max(1.0, box / np.interp(share, _box_share(r)[::-1], r[::-1])))


def _cell_shares(kernel: np.ndarray, ell: float, offsets: int = 8) -> np.ndarray:
    """(offsets², cells): the kernel's weight in each ℓ × ℓ texture cell, for a grid of cell offsets (at
    most ⌈ℓ⌉ per axis: pixels fall into cells the same way for every offset within one pixel)."""
    offsets = max(1, min(offsets, math.ceil(ell)))
    idx = np.arange(kernel.shape[0])
    weights = kernel.ravel().astype(np.float64)
    rows = []
    for oy in (np.arange(offsets) + 0.5) / offsets * ell:
        ry = np.floor((idx + oy) / ell).astype(int)
        for ox in (np.arange(offsets) + 0.5) / offsets * ell:
            rx = np.floor((idx + ox) / ell).astype(int)
            a = np.bincount((ry[:, None] * (rx[-1] + 1) + rx[None, :]).ravel(), weights)
            rows.append(a[a > 1e-12])
    out = np.zeros((len(rows), max(len(a) for a in rows)))
    for i, a in enumerate(rows):
        out[i, : len(a)] = a
    return out


def _weighted_gamma_tail(shares: np.ndarray, nu: float, t: np.ndarray) -> np.ndarray:
    """P(Σ a_c T_c > t), T_c iid Gamma(ν, 1/ν), averaged over the rows a of ``shares`` (Lugannani–Rice
    saddlepoint: within a few per cent of Monte Carlo for these sums)."""
    a = shares[:, None, :]
    frac = 1.0 - np.geomspace(1e-7, 1.0 - 1e-3, 400)[::-1]
    s = (nu / shares.max(axis=1, keepdims=True)) * frac[None, :]
    q = 1.0 - s[:, :, None] * a / nu
    q = np.where(a > 0, q, 1.0)
    cgf = -nu * np.log(q).sum(-1)
    mean_t = (a / q).sum(-1)  # K'(s): the t whose saddlepoint is s
    k2 = (a * a / nu / (q * q)).sum(-1)
    w = np.sqrt(np.maximum(2.0 * (s * mean_t - cgf), 1e-300))
    u = s * np.sqrt(k2)
    tail = special.ndtr(-w) + np.exp(-w * w / 2) / math.sqrt(2 * math.pi) * (1.0 / u - 1.0 / w)
    tail = np.log(np.clip(tail, 1e-300, 0.5))
    out = np.zeros(t.size)
    for mt, lt in zip(mean_t, tail, strict=True):
        out += np.exp(np.interp(t, mt, np.minimum.accumulate(lt), left=np.log(0.5), right=-np.inf))
    return out / len(shares)


@functools.lru_cache(maxsize=32)
def _extended_table(
    ell: float, looks: float, pfa: float, length_px: float, width_px: float, n: int, ring_px: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """log ν grid and thresholds (× ring mean) of ``extended_test`` at total ``pfa`` (split among the ``n``
    headings, a union bound), for texture cells of side ``ell`` px.

    The window mean over the ring mean is Σ_c a_c T_c × the window's speckle mean (Gamma, L / Σ w² looks)
    / the ring's texture mean (the ring, ``ring_px`` = guard and background sides, spans only tens of
    texture cells: Gamma, moment-matched). The texture sum's tail comes from a saddlepoint approximation
    for each cell offset; the two near-1 factors are convolved in log t.
    """
    log_nu = np.linspace(np.log(0.3), np.log(60.0), 16)
    step = 0.004
    log_t = np.arange(0.0, np.log(80.0), step)
    t = np.exp(log_t)
    g, b = ring_px
    ring = np.ones((b, b))
    ring[(b - g) // 2 : (b + g) // 2, (b - g) // 2 : (b + g) // 2] = 0.0
    ring_share = float(np.mean(np.sum(_cell_shares(ring / ring.sum(), ell, 4) ** 2, axis=1)))
    lag = np.arange(-int(0.6 / step), int(0.6 / step) + 1) * step
    total = np.zeros((log_nu.size, t.size))
    for k in hull_kernels(length_px, width_px, n):
        shares = _cell_shares(k, ell)
        l_eff = looks / float(np.sum(k.astype(np.float64) ** 2))
        for i, nu in enumerate(np.exp(log_nu)):
            # density of log(speckle mean / ring texture mean) on the lag grid
            r_shape = nu / ring_share
            pdf = np.convolve(_log_gamma_pdf(lag, l_eff), _log_gamma_pdf(-lag, r_shape), mode="same")
            pdf /= pdf.sum()
            tex = _weighted_gamma_tail(shares, float(nu), t)
            padded = np.concatenate([np.full(lag.size // 2, tex[0]), tex, np.zeros(lag.size // 2)])
            total[i] += np.convolve(padded, pdf, mode="valid")
    thr = [np.interp(np.log(pfa), np.log(np.maximum(row, 1e-300))[::-1], t[::-1]) for row in total]
    return log_nu, np.array(thr)


def _log_gamma_pdf(u: np.ndarray, shape: float | np.ndarray) -> np.ndarray:
    """Density of log X on the grid ``u``, X ~ Gamma(shape, 1/shape) (mean 1)."""
    return np.exp(shape * np.log(shape) - special.gammaln(shape) + shape * u - shape * np.exp(u))


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
