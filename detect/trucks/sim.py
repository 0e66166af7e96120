"""Inject simulated moving trucks into real Sentinel-2 road pixels, with the inter-band offset signature.

Sentinel-2 records B02, B08, B03 and B04 a fraction of a second apart, so a moving truck lands at a
different place in each band: a blue, green, red "rainbow" along the road. Every parameter here and
its source is listed in docs/trucks.md; the road centre-lines and directions come from the image
itself (``find_roads``), never from a map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from detect.core.water import ndwi_array
from imagery.errors import InputError

#: Acquisition delay of each 10 m band after B02, seconds. B04 − B02 = 1.005 s (also used, rounded to
#: 1.01 s, by Fisser et al. 2022); B08 and B03 follow the MSI focal-plane order (Heiselberg 2019).
BAND_DELAY_S: dict[str, float] = {"B02": 0.0, "B08": 0.264, "B03": 0.527, "B04": 1.005}
#: The bands the signature needs, in acquisition order.
SIGNATURE_BANDS = ("B02", "B03", "B04")

#: Gaussian PSF sigma range in 10 m pixels: MTF at Nyquist 0.2–0.3 gives sigma ≈ 0.49–0.57 px
#: (FWHM ≈ 1.15–1.35 px); see docs/trucks.md.
PSF_SIGMA_PX = (0.45, 0.60)
#: Truck body (tractor + semi-trailer or rigid truck), metres.
TRUCK_LENGTH_M = (12.0, 18.0)
TRUCK_WIDTH_M = (2.4, 2.6)
#: Motorway speeds ~ N(80, 10) km/h; a share drawn uniformly over 30–120 km/h covers bridges, ramps
#: and fast vans so the detector sees the whole offset range.
SPEED_MEAN_KMH, SPEED_SD_KMH = 80.0, 10.0
SPEED_RANGE_KMH = (30.0, 120.0)

_SUPERSAMPLE = 10  # render the truck at 1 m for 10 m pixels


@dataclass(frozen=True)
class RoofSpectrum:
    """Roof/tarpaulin reflectance per band (0–1) and what kind it is."""

    kind: str
    reflectance: dict[str, float] = field(hash=False)


@dataclass(frozen=True)
class SimulatedTruck:
    """One injected truck. ``row``/``col`` (pixel centres at integers) is its position halfway between
    its B02 and B04 positions; ``travel_bearing_deg`` is its direction of travel, clockwise from north."""

    row: float
    col: float
    travel_bearing_deg: float
    speed_kmh: float
    length_m: float
    width_m: float
    psf_sigma_px: float
    roof: RoofSpectrum

    def band_position(self, band: str, gsd_m: float) -> tuple[float, float]:
        """(row, col) of the truck centre in ``band``: displaced along its track by speed × band delay."""
        t_mid = (BAND_DELAY_S["B02"] + BAND_DELAY_S["B04"]) / 2.0
        dist_px = self.speed_kmh / 3.6 * (BAND_DELAY_S[band] - t_mid) / gsd_m
        d_row, d_col = bearing_to_pixel_vector(self.travel_bearing_deg)
        return self.row + d_row * dist_px, self.col + d_col * dist_px

    @property
    def heading_deg(self) -> float:
        """Axis direction (0–180), as the detector reports it."""
        return self.travel_bearing_deg % 180.0


@dataclass(frozen=True, eq=False)
class RoadMap:
    """Road-like pixels found in an image and the local road axis (degrees clockwise from north, 0–180)."""

    mask: np.ndarray  # bool (H, W)
    axis_deg: np.ndarray  # float32 (H, W)
    strength: np.ndarray  # float32 (H, W), valley depth in NIR reflectance per px²


def bearing_to_pixel_vector(bearing_deg: float) -> tuple[float, float]:
    """Unit (d_row, d_col) of a map bearing on a north-up grid (rows grow southwards)."""
    b = math.radians(bearing_deg)
    return -math.cos(b), math.sin(b)


def pixel_vector_to_bearing(d_row: float, d_col: float) -> float:
    """Map bearing (0–360, clockwise from north) of a pixel displacement on a north-up grid."""
    return math.degrees(math.atan2(d_col, -d_row)) % 360.0


def _band(data: np.ndarray, band_names: tuple[str, ...], name: str) -> np.ndarray:
    try:
        return data[band_names.index(name)]
    except ValueError:
        raise InputError(f"band {name} is needed but the bands are {', '.join(band_names)}") from None


def find_roads(
    data: np.ndarray,
    band_names: tuple[str, ...],
    *,
    sigma_px: float = 1.0,
    min_valley: float = 0.01,
) -> RoadMap:
    """Road-like pixels from the image itself: dark linear valleys in NIR that are not vegetation or water.

    The Hessian of the smoothed B08 band has one large positive eigenvalue across a dark line and a
    small one along it; the eigenvector of the small one is the road axis. Asphalt is darker in NIR than
    vegetation, bare soil and most roofs, so motorways and major streets stand out; rail lines, canal
    banks and some building gaps do too, which is acceptable for a background sampler.
    """
    b02, b03, b04, b08 = (_band(data, band_names, b) for b in ("B02", "B03", "B04", "B08"))
    nir = np.nan_to_num(b08, nan=float(np.nanmedian(b08)) if np.isfinite(b08).any() else 0.0)
    hrr = ndimage.gaussian_filter(nir, sigma_px, order=(2, 0))
    hcc = ndimage.gaussian_filter(nir, sigma_px, order=(0, 2))
    hrc = ndimage.gaussian_filter(nir, sigma_px, order=(1, 1))
    half_trace = (hrr + hcc) / 2.0
    disc = np.sqrt(((hrr - hcc) / 2.0) ** 2 + hrc**2)
    lam_big = half_trace + disc  # curvature across the line (positive in a valley)
    lam_small = half_trace - disc
    # Eigenvector of lam_small (along the line), in (row, col) components.
    v_row = hrc
    v_col = lam_small - hrr
    degenerate = (np.abs(v_row) + np.abs(v_col)) < 1e-12
    v_row = np.where(degenerate, 1.0, v_row)
    v_col = np.where(degenerate, 0.0, v_col)
    axis = (np.degrees(np.arctan2(v_col, -v_row)) % 180.0).astype(np.float32)

    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (b08 - b04) / (b08 + b04)
    vis = (b02 + b03 + b04) / 3.0
    linear = lam_big > np.maximum(2.5 * np.abs(lam_small), min_valley)
    mask = linear & (ndvi < 0.3) & (ndwi_array(b03, b08) < 0.0) & (vis > 0.03) & (vis < 0.25)
    mask &= np.all(np.isfinite(data), axis=0)
    return RoadMap(mask=mask, axis_deg=axis, strength=lam_big.astype(np.float32))


ROOF_KINDS = ("white", "grey", "coloured", "tarpaulin")
ROOF_KIND_P = (0.35, 0.30, 0.20, 0.15)


def draw_roof(rng: np.random.Generator, kind: str | None = None) -> RoofSpectrum:
    """A roof or tarpaulin spectrum: white, grey/silver, coloured paint, or dull tarpaulin.

    Ranges are assumptions (docs/trucks.md): white 0.35–0.50, grey 0.15–0.30, coloured paint with one
    or two bands raised to 0.2–0.45 over a 0.08–0.15 floor, dull tarpaulin 0.10–0.20; NIR follows the
    visible mean within ±20 % (paints and PVC are bright in NIR).
    """
    if kind is None:
        kind = str(rng.choice(ROOF_KINDS, p=ROOF_KIND_P))
    elif kind not in ROOF_KINDS:
        raise InputError(f"unknown roof kind {kind!r}; known: {', '.join(ROOF_KINDS)}")
    if kind == "white":
        level = rng.uniform(0.35, 0.50)
        vis = {b: level * rng.uniform(0.95, 1.05) for b in SIGNATURE_BANDS}
    elif kind == "grey":
        level = rng.uniform(0.15, 0.30)
        vis = {b: level * rng.uniform(0.93, 1.07) for b in SIGNATURE_BANDS}
    elif kind == "coloured":
        vis = {b: rng.uniform(0.08, 0.15) for b in SIGNATURE_BANDS}
        for b in rng.choice(SIGNATURE_BANDS, size=int(rng.integers(1, 3)), replace=False):
            vis[str(b)] = rng.uniform(0.20, 0.45)
    else:
        level = rng.uniform(0.10, 0.20)
        vis = {b: level * rng.uniform(0.9, 1.1) for b in SIGNATURE_BANDS}
    mean_vis = sum(vis.values()) / 3.0
    refl = {**{b: float(v) for b, v in vis.items()}, "B08": float(mean_vis * rng.uniform(0.8, 1.2))}
    return RoofSpectrum(kind=kind, reflectance=refl)


def draw_speed(rng: np.random.Generator, motorway_share: float = 0.7) -> float:
    lo, hi = SPEED_RANGE_KMH
    if rng.random() < motorway_share:
        return float(np.clip(rng.normal(SPEED_MEAN_KMH, SPEED_SD_KMH), lo, hi))
    return float(rng.uniform(lo, hi))


def draw_truck(
    rng: np.random.Generator,
    row: float,
    col: float,
    road_axis_deg: float,
    *,
    speed_kmh: float | None = None,
    roof_kind: str | None = None,
) -> SimulatedTruck:
    """A truck at (row, col) travelling along ``road_axis_deg`` in a random sense."""
    bearing = (road_axis_deg + (180.0 if rng.random() < 0.5 else 0.0)) % 360.0
    return SimulatedTruck(
        row=float(row),
        col=float(col),
        travel_bearing_deg=float(bearing),
        speed_kmh=float(speed_kmh if speed_kmh is not None else draw_speed(rng)),
        length_m=float(rng.uniform(*TRUCK_LENGTH_M)),
        width_m=float(rng.uniform(*TRUCK_WIDTH_M)),
        psf_sigma_px=float(rng.uniform(*PSF_SIGMA_PX)),
        roof=draw_roof(rng, roof_kind),
    )


def _coverage(
    row: float, col: float, truck: SimulatedTruck, gsd_m: float, r0: int, c0: int, size: int
) -> np.ndarray:
    """Fraction of each pixel of a ``size``² patch (top-left pixel r0, c0) covered by the truck body."""
    s = _SUPERSAMPLE
    offs = (np.arange(size * s) + 0.5) / s - 0.5
    rr = r0 + offs[:, None] - row
    cc = c0 + offs[None, :] - col
    d_row, d_col = bearing_to_pixel_vector(truck.travel_bearing_deg)
    along = rr * d_row + cc * d_col
    across = -rr * d_col + cc * d_row
    inside = (np.abs(along) <= truck.length_m / 2.0 / gsd_m) & (np.abs(across) <= truck.width_m / 2.0 / gsd_m)
    return inside.reshape(size, s, size, s).mean(axis=(1, 3))


def render_truck(
    data: np.ndarray, band_names: tuple[str, ...], truck: SimulatedTruck, gsd_m: float = 10.0
) -> None:
    """Mix one truck into ``data`` (bands, H, W) in place, band by band at its displaced position.

    Each band sees the truck body (area-averaged from 1 m to the pixel grid), blurred by a Gaussian PSF,
    mixed with the background by that fraction: ``new = bg·(1 − f) + roof·f``.
    """
    size = 13
    h, w = data.shape[1:]
    for i, band in enumerate(band_names):
        if band not in BAND_DELAY_S or band not in truck.roof.reflectance:
            continue
        row, col = truck.band_position(band, gsd_m)
        r0, c0 = round(row) - size // 2, round(col) - size // 2
        frac = _coverage(row, col, truck, gsd_m, r0, c0, size)
        frac = ndimage.gaussian_filter(frac, truck.psf_sigma_px, mode="constant")
        rs, cs = max(r0, 0), max(c0, 0)
        re, ce = min(r0 + size, h), min(c0 + size, w)
        if rs >= re or cs >= ce:
            continue
        f = frac[rs - r0 : re - r0, cs - c0 : ce - c0]
        bg = data[i, rs:re, cs:ce]
        data[i, rs:re, cs:ce] = bg * (1.0 - f) + truck.roof.reflectance[band] * f


def inject_trucks(
    data: np.ndarray,
    band_names: tuple[str, ...],
    rng: np.random.Generator,
    n_trucks: int,
    *,
    roads: RoadMap | None = None,
    gsd_m: float = 10.0,
    min_separation_px: float = 6.0,
    margin_px: int = 6,
    speed_kmh: float | None = None,
    roof_kind: str | None = None,
) -> tuple[np.ndarray, list[SimulatedTruck]]:
    """A copy of ``data`` with up to ``n_trucks`` moving trucks on road pixels, and the trucks.

    Fewer trucks are placed when the image has too few road pixels ``min_separation_px`` apart.
    """
    if roads is None:
        roads = find_roads(data, band_names)
    out = data.astype(np.float32, copy=True)
    h, w = out.shape[1:]
    rows, cols = np.nonzero(roads.mask)
    keep = (rows >= margin_px) & (rows < h - margin_px) & (cols >= margin_px) & (cols < w - margin_px)
    rows, cols = rows[keep], cols[keep]
    trucks: list[SimulatedTruck] = []
    if rows.size == 0:
        return out, trucks
    for idx in rng.permutation(rows.size):
        if len(trucks) >= n_trucks:
            break
        r, c = int(rows[idx]), int(cols[idx])
        axis = float(roads.axis_deg[r, c])
        # Lateral jitter of up to half a pixel: lanes are not on the pixel centre line.
        d_row, d_col = bearing_to_pixel_vector(axis + 90.0)
        lateral = rng.uniform(-0.5, 0.5)
        rr, cc = r + d_row * lateral, c + d_col * lateral
        if any(math.hypot(rr - t.row, cc - t.col) < min_separation_px for t in trucks):
            continue
        truck = draw_truck(rng, rr, cc, axis, speed_kmh=speed_kmh, roof_kind=roof_kind)
        render_truck(out, band_names, truck, gsd_m)
        trucks.append(truck)
    return out, trucks


#: Centre wavelength (µm) of the bands ``add_haze`` knows (Sentinel-2A, rounded).
HAZE_WAVELENGTH_UM = {"B02": 0.492, "B03": 0.560, "B04": 0.665, "B08": 0.833}


def add_haze(data: np.ndarray, band_names: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """A copy of ``data`` (L2A reflectance) under a random atmosphere, as a Level-1C (top-of-atmosphere)
    scene or a hazy day shows it: ``path_b + t_b · x`` per band, for training only.

    Path reflectance in B02 0.03–0.16 (Rayleigh alone gives ~0.06 for a sun 25° from zenith, aerosol adds
    up to ~0.1 more), falling with wavelength as λ^-α, α 0.5–2.5 (white haze to bluer air; Rayleigh alone
    falls as λ^-4, so clear air is steeper than this range); transmittance in B02 0.5–0.95, rising with
    wavelength as t^((λ/λ_B02)^-β), β 0.5–2. The sum brightens dark pixels, most in the blue, and dims a
    truck's rainbow. Bands not in ``HAZE_WAVELENGTH_UM``, and pixels where any band is not finite, are
    returned unchanged. Measured as a training lever and not kept (weights/trucks-s2.md).
    """
    path_b02 = rng.uniform(0.03, 0.16)
    t_b02 = rng.uniform(0.5, 0.95)
    alpha = rng.uniform(0.5, 2.5)
    beta = rng.uniform(0.5, 2.0)
    out = np.array(data, dtype=np.float32, copy=True)
    valid = np.all(np.isfinite(data), axis=0)
    ref = HAZE_WAVELENGTH_UM["B02"]
    for i, b in enumerate(band_names):
        if b in HAZE_WAVELENGTH_UM:
            rel = HAZE_WAVELENGTH_UM[b] / ref
            path = path_b02 * rel**-alpha
            t = t_b02 ** (rel**-beta)
            out[i] = np.where(valid, path + t * out[i], out[i])
    return out
