"""Simulated sea clutter and vessels for testing and benchmarking the radar detector (docs/sar.md)."""

from __future__ import annotations

import math

import numpy as np


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
