"""The radar ship detector's parameters: the CFAR (``CfarParams``), the azimuth-ghost check
(``AmbiguityParams``) and the detector as a whole (``SarShipParams``), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from imagery.sar import S1_WAVELENGTH_M

DISTRIBUTIONS = ("auto", "gaussian", "gamma", "k")


@dataclass(frozen=True)
class CfarParams:
    """Window sizes (full side lengths, metres), design false-alarm probability and clutter model.

    ``distribution``: ``auto`` (the default) chooses per background ring from the data: it fits the
    K-law texture shape ν there (method of moments) and takes the ``k`` threshold where ν is below
    ``heavy_tail_nu`` (heavy tails: swell, wind cells), ``gamma`` elsewhere. ``gaussian`` is SNAP's
    two-parameter rule (mean + t·σ, t from the PFA under a normal law), ``gamma`` takes the threshold
    from a gamma law whose looks are estimated in every ring (μ²/σ²), ``k`` from a K law (gamma speckle
    × gamma texture) with texture estimated per ring.
    ``k_sigma`` sets t directly (Global Fishing Watch style mean + k·σ) and forces ``gaussian``.
    """

    target_m: float = 50.0
    guard_m: float = 500.0
    background_m: float = 800.0
    pfa: float = 10**-6.5
    distribution: str = "auto"
    #: ``auto``: rings whose fitted K shape ν is below this get the K threshold (gamma above it).
    heavy_tail_nu: float = 30.0
    k_sigma: float | None = None
    #: Speckle looks of single pixels for ``k``/``auto``; None: for ``k`` the median 7 × 7 estimate over the
    #: scene, for ``auto`` the IW GRDH product's ENL (4.4; give the looks of other products or multilooks).
    looks: float | None = None
    #: Passes; after the first, pixels near hits are left out of the clutter statistics.
    iterations: int = 2
    #: A pixel is tested only when this share of its background ring is valid water.
    min_ring_fraction: float = 0.25
    #: Per-pixel false-alarm probability that delimits a vessel's extent around a hit.
    extent_pfa: float = 1e-3
    #: ``auto``, heavy-tailed rings: (length, width) in metres of the hull-shaped windows whose means the
    #: extended-target test compares with their K-law tail (long weak hulls whose single pixels stay under the
    #: heavy tail); empty: the single-pixel test alone.
    extended_m: tuple[tuple[float, float], ...] = ((300.0, 40.0), (200.0, 30.0))
    #: Headings of those windows over 180°; the test's PFA is split among all sizes and headings.
    extended_orientations: int = 12
    #: Share of ``pfa`` given to the extended-target test (the single-pixel K test keeps the rest).
    extended_pfa_share: float = 0.3

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {self.distribution!r}"
            )
        if not self.heavy_tail_nu > 0:
            raise ValueError(f"heavy_tail_nu must be positive, got {self.heavy_tail_nu}")
        if not 0.0 < self.pfa < 0.5:
            raise ValueError(f"pfa must be in (0, 0.5), got {self.pfa}")
        for hull in self.extended_m:
            if len(hull) != 2 or not 0 < hull[1] <= hull[0] < self.guard_m:
                raise ValueError(
                    f"extended_m must hold (length, width) pairs with 0 < width <= length < guard_m "
                    f"({self.guard_m:g} m), got {self.extended_m}"
                )
        if not 0.0 < self.extended_pfa_share < 1.0:
            raise ValueError(f"extended_pfa_share must be in (0, 1), got {self.extended_pfa_share}")
        if self.extended_orientations < 1:
            raise ValueError(f"extended_orientations must be at least 1, got {self.extended_orientations}")
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
