"""A simulated Level-1C (top-of-atmosphere) look for L2A (surface) reflectance, for the benchmarks that ask
what the L2A-trained ship model loses on L1C input (``seg_toa.py``, ``eotdl_recall.py --simulate-l1c``):
``rho_toa = rho_path + T * rho_boa`` per band, with single-scattering path reflectance of air (Rayleigh) and
of an aerosol layer, and the two-way diffuse transmittance T:

- Rayleigh optical depth by Hansen & Travis (1974), at each band's centre wavelength;
- aerosol optical depth at 550 nm with Angstrom exponent 1.3, single-scattering albedo 0.9, Henyey-Greenstein
  phase function g 0.65;
- nadir view, the sun ``sun_zenith`` degrees from zenith, scattering angle 180° minus it;
- transmittance ``exp(-(tau_R / 2 + (1 - 0.8 * omega) * tau_a) / mu)`` on the way down and up.

Single scattering underestimates the path radiance of thick haze; ozone and water-vapour absorption, adjacency
effects and glint are left out, and a diffuse transmittance overstates the contrast a small target keeps: this
makes sensitivity tests, not measurements on real L1C.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

#: Centre wavelength (µm) of each band (Sentinel-2A spectral response, rounded).
WAVELENGTH_UM = {
    "B01": 0.443, "B02": 0.492, "B03": 0.560, "B04": 0.665, "B05": 0.704, "B06": 0.740, "B07": 0.783,
    "B08": 0.833, "B8A": 0.865, "B09": 0.945, "B11": 1.614, "B12": 2.202,
}  # fmt: skip
ANGSTROM = 1.3
OMEGA = 0.9
HG_G = 0.65


def rayleigh_depth(um: float) -> float:
    """Rayleigh optical depth of the whole atmosphere at sea level (Hansen & Travis 1974, eq. 2.29)."""
    return 0.008569 * um**-4 * (1 + 0.0113 * um**-2 + 0.00013 * um**-4)


def atmosphere(band: str, aot550: float, sun_zenith: float) -> tuple[float, float]:
    """(path reflectance, two-way transmittance) of ``band`` for a nadir view (see the module text)."""
    um = WAVELENGTH_UM[band]
    tau_r = rayleigh_depth(um)
    tau_a = aot550 * (um / 0.55) ** -ANGSTROM
    mu_s = math.cos(math.radians(sun_zenith))
    cos_scat = -mu_s  # nadir view: scattering angle 180° - sun zenith
    p_r = 0.75 * (1 + cos_scat**2)
    p_a = (1 - HG_G**2) / (1 + HG_G**2 - 2 * HG_G * cos_scat) ** 1.5
    path = (tau_r * p_r + OMEGA * tau_a * p_a) / (4 * mu_s)
    depth = tau_r / 2 + (1 - 0.8 * OMEGA) * tau_a
    return path, math.exp(-depth / mu_s) * math.exp(-depth)


def to_toa(rho: np.ndarray, band: str, aot550: float, sun_zenith: float) -> np.ndarray:
    """Surface reflectance ``rho`` of ``band`` as the top of the atmosphere sees it: ``path + T * rho``."""
    path, t = atmosphere(band, aot550, sun_zenith)
    return path + t * rho


def simulate_toa_array(
    data: np.ndarray, bands, aot550: float, sun_zenith: float, valid: np.ndarray | None = None
) -> np.ndarray:
    """A (bands, H, W) L2A reflectance array as a simulated L1C (``to_toa`` per band); pixels off ``valid``
    (default: where any band is not finite), and bands outside ``WAVELENGTH_UM``, unchanged."""
    if valid is None:
        valid = np.all(np.isfinite(data), axis=0)
    out = np.array(data, dtype=np.float32, copy=True)
    for i, b in enumerate(bands):
        if b in WAVELENGTH_UM:
            out[i] = np.where(valid, to_toa(out[i], b, aot550, sun_zenith), out[i])
    return out


def simulate_toa(window, aot550: float, sun_zenith: float):
    """``window`` (L2A reflectance) as a simulated L1C: path reflectance added, contrast lowered per band;
    invalid pixels and bands outside ``WAVELENGTH_UM`` unchanged."""
    arr = simulate_toa_array(window.data, window.band_names, aot550, sun_zenith, window.valid_mask)
    return replace(window, data=arr, processing_level="L1C")
