"""Moving-truck detector for Sentinel-2: a per-pixel gradient-boosted classifier of the B02→B03→B04
band-offset "rainbow", peak extraction, and speed/heading from the B02→B04 displacement.

Counts are a relative index of moving heavy traffic, not a census: parked or queued trucks show no
band offset and are invisible (Fisser et al. 2022, Remote Sensing 14:1595). See docs/trucks.md.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from detect.core.geometry import Detection, detection_from_pixel_box, oriented_box
from detect.core.haze import check_haze_mode, haze_applies, subtract_dark
from detect.core.water import ndwi_array
from detect.trucks.sim import BAND_DELAY_S, find_roads, pixel_vector_to_bearing
from imagery.errors import InputError, ModelError
from imagery.types import RasterWindow

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from imagery.aoi import Aoi

#: Bands in the order the features are computed from; B02, B03, B04 carry the signature, B08 the context.
TRUCK_BANDS = ("B02", "B03", "B04", "B08")
DEFAULT_MODEL = "trucks-s2"
INDEX_NOTE = (
    "truck counts are a relative index of moving heavy traffic, not a census: parked, queued or slow "
    "trucks show no band offset and are missed; validate against traffic counts before reading them "
    "as numbers"
)
ZONE_KINDS_COUNTED = ("bridge_deck", "road")
_BACKGROUND_PX = 7  # median window for the local background
_NMS_PX = 5  # peaks closer than this (Chebyshev) are one truck
_NOMINAL_TRUCK_M = 15.0


def _shift(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """``out[r, c] = a[r + dr, c + dc]`` with edge replication."""
    h, w = a.shape
    rows = np.clip(np.arange(h) + dr, 0, h - 1)
    cols = np.clip(np.arange(w) + dc, 0, w - 1)
    return a[np.ix_(rows, cols)]


_DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))

FEATURE_NAMES: tuple[str, ...] = (
    "B02",
    "B03",
    "B04",
    "B08",
    "a02",
    "a03",
    "a04",
    "a08",
    "rel02",
    "rel03",
    "rel04",
    "blue",
    "green",
    "red",
    "ndvi",
    "ndwi",
    "bg_vis",
    "rainbow1",
    "rainbow2",
    "rainbow_max",
    "rainbow_mean1",
    "blue_max3",
    "red_max3",
    "green_max3",
    "a03_max3",
    "blue_max5",
    "red_max5",
    "nir_std5",
    "valley",
    *(
        f"{name}_{dr}{dc}".replace("-", "m")
        for name in ("blue", "green", "red")
        for dr in (-1, 0, 1)
        for dc in (-1, 0, 1)
        if (dr, dc) != (0, 0)
    ),
)


def pixel_features(data: np.ndarray) -> np.ndarray:
    """Per-pixel features (H·W, F) from (4, H, W) reflectance in TRUCK_BANDS order; see FEATURE_NAMES.

    The core is the local anomaly of each band over a median background and the "rainbow" score: a
    blue excess ``h`` pixels behind, green here and a red excess ``h`` pixels ahead, best of 8 directions.
    """
    x = np.asarray(data, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] != len(TRUCK_BANDS):
        raise InputError(f"pixel_features needs (4, H, W) data in {TRUCK_BANDS} order, got {x.shape}")
    fill = np.nanmedian(x, axis=(1, 2), keepdims=True)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    x = np.where(np.isfinite(x), x, fill).astype(np.float32)
    bg = np.stack([ndimage.median_filter(b, size=_BACKGROUND_PX, mode="reflect") for b in x])
    a = x - bg
    rel = a[:3] / (bg[:3] + 0.01)
    blue = a[0] - (a[1] + a[2]) / 2.0
    green = a[1] - (a[0] + a[2]) / 2.0
    red = a[2] - (a[0] + a[1]) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = np.nan_to_num((x[3] - x[2]) / (x[3] + x[2]))
        ndwi = np.nan_to_num((x[1] - x[3]) / (x[1] + x[3]))
    bg_vis = bg[:3].mean(axis=0)
    rainbow = {}
    for h in (1, 2):
        scores = [
            _shift(blue, -dr * h, -dc * h) + a[1] + _shift(red, dr * h, dc * h) for dr, dc in _DIRECTIONS
        ]
        stack = np.stack(scores)
        rainbow[h] = (stack.max(axis=0), stack.mean(axis=0))
    nir_mean = ndimage.uniform_filter(x[3], 5)
    nir_std = np.sqrt(np.maximum(ndimage.uniform_filter(x[3] ** 2, 5) - nir_mean**2, 0.0))
    valley = find_roads(x, TRUCK_BANDS).strength
    feats = [
        x[0],
        x[1],
        x[2],
        x[3],
        a[0],
        a[1],
        a[2],
        a[3],
        rel[0],
        rel[1],
        rel[2],
        blue,
        green,
        red,
        ndvi,
        ndwi,
        bg_vis,
        rainbow[1][0],
        rainbow[2][0],
        np.maximum(rainbow[1][0], rainbow[2][0]),
        rainbow[1][1],
        ndimage.maximum_filter(blue, 3),
        ndimage.maximum_filter(red, 3),
        ndimage.maximum_filter(green, 3),
        ndimage.maximum_filter(a[1], 3),
        ndimage.maximum_filter(blue, 5),
        ndimage.maximum_filter(red, 5),
        nir_std,
        valley,
        *(
            _shift(m, dr, dc)
            for m in (blue, green, red)
            for dr in (-1, 0, 1)
            for dc in (-1, 0, 1)
            if (dr, dc) != (0, 0)
        ),
    ]
    return np.stack(feats, axis=-1).reshape(-1, len(FEATURE_NAMES)).astype(np.float32)


@dataclass(frozen=True)
class TruckCandidate:
    """A truck found in pixel space: (row, col) is the midpoint of its B02 and B04 blobs (pixel centres
    at integers); (d_row, d_col) is the B02→B04 displacement in pixels."""

    row: float
    col: float
    score: float
    d_row: float
    d_col: float

    def speed_kmh(self, gsd_m: float) -> float:
        dt = BAND_DELAY_S["B04"] - BAND_DELAY_S["B02"]
        return math.hypot(self.d_row, self.d_col) * gsd_m / dt * 3.6

    @property
    def travel_bearing_deg(self) -> float:
        return pixel_vector_to_bearing(self.d_row, self.d_col)


_ANGLES = np.radians(np.arange(0.0, 360.0, 5.0))
_HALF_OFFSETS_PX = np.arange(0.25, 1.76, 0.125)  # half the B02→B04 distance: ~18–125 km/h at 10 m
_CENTRE_STEPS_PX = np.arange(-1.0, 1.01, 0.5)


def fit_signature(
    anomaly_b02: np.ndarray, anomaly_b04: np.ndarray, row: float, col: float
) -> tuple[float, float, float, float]:
    """Fit the two-blob signature near (row, col): (row, col) of the midpoint and (d_row, d_col) of B02→B04.

    See ``fit_signature_full``, which also returns the blob strengths.
    """
    return fit_signature_full(anomaly_b02, anomaly_b04, row, col)[:4]


def fit_signature_full(
    anomaly_b02: np.ndarray, anomaly_b04: np.ndarray, row: float, col: float
) -> tuple[float, float, float, float, float, float]:
    """Fit the two-blob signature near (row, col): (row, col) of the midpoint and (d_row, d_col) of B02→B04.

    Searches a centre within ±1 px, a direction (5° steps) and a half-offset h for the largest
    ``a02(centre − h·u) + a04(centre + h·u)``: the B02 blob behind and the B04 blob ahead. B04 is
    recorded ~1 s after B02, so the B02→B04 vector points along the direction of travel.
    """
    # Work on a small patch: cubic-spline sampling prefilters its whole input, and bilinear sampling
    # would pull the offset to whole pixels.
    k = 4
    h_img, w_img = anomaly_b02.shape
    r0, c0 = max(round(row) - k, 0), max(round(col) - k, 0)
    r1, c1 = min(round(row) + k + 1, h_img), min(round(col) + k + 1, w_img)
    p02, p04 = anomaly_b02[r0:r1, c0:c1], anomaly_b04[r0:r1, c0:c1]
    u_row, u_col = -np.cos(_ANGLES), np.sin(_ANGLES)  # bearing → pixel vector, as bearing_to_pixel_vector
    dr, dc = np.meshgrid(_CENTRE_STEPS_PX, _CENTRE_STEPS_PX, indexing="ij")
    cr = (row - r0 + dr.ravel())[:, None, None]
    cc = (col - c0 + dc.ravel())[:, None, None]
    h = _HALF_OFFSETS_PX[None, None, :]
    ur, uc = u_row[None, :, None], u_col[None, :, None]
    shape = (cr.shape[0], ur.shape[1], h.shape[2])
    back = np.stack(
        [np.broadcast_to(cr - h * ur, shape).ravel(), np.broadcast_to(cc - h * uc, shape).ravel()]
    )
    ahead = np.stack(
        [np.broadcast_to(cr + h * ur, shape).ravel(), np.broadcast_to(cc + h * uc, shape).ravel()]
    )
    b02_back = ndimage.map_coordinates(p02, back, order=3, mode="nearest")
    b04_back = ndimage.map_coordinates(p04, back, order=3, mode="nearest")
    b02_ahead = ndimage.map_coordinates(p02, ahead, order=3, mode="nearest")
    b04_ahead = ndimage.map_coordinates(p04, ahead, order=3, mode="nearest")
    # Blue excess behind and red excess ahead: a grey neighbour (car, roof edge) has both and cancels.
    score = (b02_back - b04_back) + (b04_ahead - b02_ahead)
    best = int(np.argmax(score))
    i_c, i_a, i_h = np.unravel_index(best, shape)
    half = float(_HALF_OFFSETS_PX[i_h])
    d_row, d_col = 2.0 * half * float(u_row[i_a]), 2.0 * half * float(u_col[i_a])
    # The blobs' strengths: the largest B02 anomaly on the track behind the midpoint and the largest B04
    # anomaly ahead of it (within 2.5 px, 45 m of travel). Read off the track rather than at ±h, because the
    # fitted offset of a truck longer than its band offset is the truck's length, not its travel.
    mid_r, mid_c = float(cr.ravel()[i_c]), float(cc.ravel()[i_c])
    steps = np.arange(0.0, 2.51, 0.25)
    ur1, uc1 = float(u_row[i_a]), float(u_col[i_a])
    behind = np.stack([mid_r - steps * ur1, mid_c - steps * uc1])
    front = np.stack([mid_r + steps * ur1, mid_c + steps * uc1])
    blob02 = float(ndimage.map_coordinates(p02, behind, order=3, mode="nearest").max())
    blob04 = float(ndimage.map_coordinates(p04, front, order=3, mode="nearest").max())
    return mid_r + r0, mid_c + c0, d_row, d_col, blob02, blob04


@dataclass(frozen=True)
class TruckModelSpec:
    """The sidecar JSON of the truck classifier: bands, features, threshold, provenance and metrics."""

    name: str
    model_file: str
    bands: tuple[str, ...]
    feature_names: tuple[str, ...]
    threshold: float
    gsd_m: float = 10.0
    sha256: str = ""
    metrics: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    training: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    #: Dark level per band of the training scenes (``detect.core.haze``): what dark-object subtraction
    #: brings a Level-1C scene back to. Empty: no subtraction.
    dark_reference: dict[str, float] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def read(cls, path: str | Path) -> TruckModelSpec:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"truck model spec not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ModelError(f"truck model spec {path} is not valid JSON: {e}") from None
        d["bands"] = tuple(d["bands"])
        d["feature_names"] = tuple(d["feature_names"])
        return cls(**d)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_file": self.model_file,
            "bands": list(self.bands),
            "feature_names": list(self.feature_names),
            "threshold": self.threshold,
            "gsd_m": self.gsd_m,
            "sha256": self.sha256,
            "metrics": self.metrics,
            "training": self.training,
            "dark_reference": self.dark_reference,
        }


#: Share of a window's valid pixels that must be open water (``water_share``) for the haze correction to
#: run: on simulated L1C it gained trucks on 256 px windows with at least 1 % water and lost them on windows
#: without (``benchmarks/truck_l1c_tiles.py``).
MIN_WATER_SHARE = 0.01
#: NDWI(B03, B08) above which a pixel counts as open water for ``water_share``.
WATER_NDWI = 0.3


def water_share(data: np.ndarray, valid: np.ndarray) -> float:
    """Share of ``valid`` pixels of a (4, H, W) ``TRUCK_BANDS`` array whose NDWI(B03, B08) is above
    ``WATER_NDWI``; 0 when nothing is valid."""
    if not valid.any():
        return 0.0
    return float((np.nan_to_num(ndwi_array(data[1], data[3]), nan=-1.0) > WATER_NDWI)[valid].mean())


class TruckDetector:
    """Detects moving trucks in a RasterWindow holding B02, B03, B04 and B08 (reflectance 0–1).

    ``haze``: dark-object subtraction (``detect.core.haze``) down to the spec's ``dark_reference`` before the
    features, on Level-1C (top-of-atmosphere) windows (``auto``), always (``on``) or never (``off``), and
    only on a window with open water (``MIN_WATER_SHARE``): the reference is the dark level of water in the
    training scenes, and on windows of land alone the subtraction cost trucks (simulated L1C). The model was
    trained on L2A; the subtraction takes the path light off, not the contrast the air takes away
    (weights/trucks-s2.md, "Level-1C input"). Where it took something off, the detector label ends in
    ``[haze-corrected]``; each detection carries ``haze_offsets`` (what was taken off per band, ``{}`` where
    it ran and took nothing off, null where it did not run), as the ship model's do.
    """

    name = "trucks-s2-gbm"
    classes = ("truck",)
    required_bands = TRUCK_BANDS

    def __init__(self, booster: Any, spec: TruckModelSpec, haze: str = "auto") -> None:
        if tuple(spec.feature_names) != FEATURE_NAMES:
            raise ModelError(
                f"truck model {spec.name} was trained on other features than this code computes; retrain it"
            )
        self.booster = booster
        self.spec = spec
        self.haze = check_haze_mode(haze)

    @classmethod
    def load(
        cls, name_or_path: str | Path = DEFAULT_MODEL, device: str | None = None, haze: str = "auto"
    ) -> TruckDetector:
        """Load a classifier by name (``<name>.json`` in the weights folder, as for ship models) or by the
        path of its spec JSON. ``device`` is accepted for the registry; the classifier runs on CPU."""
        import lightgbm as lgb

        from detect.core.weights import sha256_file, weights_dir

        p = Path(name_or_path)
        spec_path = p if p.suffix == ".json" or p.exists() else weights_dir() / f"{p.name}.json"
        spec = TruckModelSpec.read(spec_path)
        model_path = spec_path.parent / spec.model_file
        if not model_path.exists():
            raise ModelError(f"truck model weights not found: {model_path}")
        if spec.sha256 and sha256_file(model_path) != spec.sha256:
            raise ModelError(f"truck model {model_path} does not match the sha256 in {spec_path}")
        return cls(lgb.Booster(model_file=str(model_path)), spec, haze=haze)

    def probability(self, data: np.ndarray) -> np.ndarray:
        """Per-pixel truck-centre probability (H, W) for (4, H, W) reflectance in TRUCK_BANDS order."""
        feats = pixel_features(data)
        return self.booster.predict(feats, num_threads=1).reshape(data.shape[1:]).astype(np.float32)

    def candidates(self, data: np.ndarray, *, conf: float | None = None) -> list[TruckCandidate]:
        """Peaks of the probability map above ``conf`` (default: the spec's threshold), with displacements."""
        thr = self.spec.threshold if conf is None else float(conf)
        x = np.asarray(data, dtype=np.float32)
        return candidates_from_probability(x, self.probability(x), thr)

    def detect(self, window: RasterWindow, *, conf: float | None = None) -> list[Detection]:
        """Truck detections (class ``truck``) with speed_kmh, heading_deg (0–180), travel_bearing_deg (0–360).

        ``on_road`` is None here; ``flag_on_road`` sets it from an AOI's road and bridge-deck zones.
        """
        data = window.select(self.required_bands)  # MissingBandsError names every absent band
        check_reflectance_scale(data[:3], window.scene_id or "input")
        gsd = window.grid.res_m
        if abs(gsd - self.spec.gsd_m) > 0.1 * self.spec.gsd_m:
            raise InputError(
                f"the truck detector needs a {self.spec.gsd_m:g} m grid, got {gsd:g} m; "
                "read the scene onto its UTM 10 m grid"
            )
        haze = None
        if self.haze_applies(window):
            valid = window.valid_mask & np.all(np.isfinite(data), axis=0)
            if water_share(data, valid) >= MIN_WATER_SHARE:
                data, offsets = subtract_dark(data, self.required_bands, valid, self.spec.dark_reference)
                haze = {b: round(v, 4) for b, v in offsets.items()}
            else:
                log.info(
                    "%s: under %.0f%% open water, so no dark object to measure haze by: read as it is",
                    window.scene_id or "input",
                    100 * MIN_WATER_SHARE,
                )
        label = f"{self.name}[haze-corrected]" if haze else self.name
        return [
            candidate_to_detection(cand, window, label).with_properties(haze_offsets=haze)
            for cand in self.candidates(data, conf=conf)
        ]

    def haze_applies(self, window: RasterWindow) -> bool:
        """Whether dark-object subtraction runs on ``window`` (``haze`` and its processing level)."""
        return haze_applies(self.haze, self.spec.dark_reference, window.processing_level)


def check_reflectance_scale(visible: np.ndarray, context: str) -> None:
    """Refuse visible bands whose levels cannot be 0–1 reflectance (an unscaled 0–255 or DN file).

    Even clear deep water keeps B02 above ~0.01; a brightest-band median under 0.005 or over 1.5 means
    the file's scale was not applied (e.g. the S2TD chip read without ``read_s2td_chip``).
    """
    with np.errstate(all="ignore"):
        medians = [float(np.nanmedian(b)) for b in visible]
    level = max((m for m in medians if np.isfinite(m)), default=float("nan"))
    if np.isfinite(level) and not 0.005 <= level <= 1.5:
        raise InputError(
            f"{context}: visible-band median {level:.4g} is not a 0–1 reflectance; the file's scale was "
            "not applied (give DN × 1e-4, reflectance, or name the scale; see docs/trucks.md)"
        )


#: One vehicle, one detection: peaks whose fitted midpoints lie closer than this (pixels, 45 m) are the
#: B02, B03 and B04 blobs of one vehicle (a 12–18 m truck plus its 10–35 m band offset) and are grouped.
GROUP_PX = 4.5
#: One vehicle in both bands: the weaker of the B02 blob (on the track behind the midpoint) and the B04
#: blob (ahead) must be positive and at least this share of the stronger. A roof edge or a coloured roof
#: is bright in one band only; a truck, even a coloured one, shows in both.
MIN_BLOB_BALANCE = 0.15
#: One vehicle at one speed: a fit at the edge of the offset search (125 km/h) means the two blobs are
#: farther apart than one vehicle's band offset, i.e. two objects; EU trucks are limited to 90 km/h
#: (Directive 92/6/EEC).
MAX_TRUCK_SPEED_KMH = 120.0


def candidates_from_probability(
    data: np.ndarray, prob: np.ndarray, threshold: float, *, legacy: bool = False, gsd_m: float = 10.0
) -> list[TruckCandidate]:
    """Moving trucks from the probability map: one per vehicle, each with its B02→B04 displacement.

    Local maxima of ``prob`` at or above ``threshold`` (one per 5×5 neighbourhood) get a signature fit;
    a peak is kept only when both blobs of one vehicle at one speed are there (B02 behind, B04 ahead,
    both brighter than their background, the weaker at least MIN_BLOB_BALANCE of the stronger, an offset
    of at most MAX_TRUCK_SPEED_KMH); then peaks closer than GROUP_PX are grouped into one vehicle (the
    most probable one stands for it). ``legacy=True`` keeps every peak without these tests or grouping,
    as before issue 15 (for the before/after benchmarks). See docs/trucks.md.
    """
    x = np.asarray(data, dtype=np.float32)
    valid = np.all(np.isfinite(x), axis=0)
    peaks = (prob >= threshold) & (prob == ndimage.maximum_filter(prob, size=_NMS_PX)) & valid
    rows, cols = np.nonzero(peaks)
    if rows.size == 0:
        return []
    fill = np.where(np.isfinite(x), x, 0.0)
    an02 = fill[0] - ndimage.median_filter(fill[0], size=_BACKGROUND_PX)
    an04 = fill[2] - ndimage.median_filter(fill[2], size=_BACKGROUND_PX)
    out: list[TruckCandidate] = []
    taken = np.zeros(prob.shape, bool)
    for i in np.argsort(-prob[rows, cols], kind="stable"):
        r, c = int(rows[i]), int(cols[i])
        if taken[r, c]:  # plateau twins of a peak already kept
            continue
        taken[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3] = True
        fr, fc, d_row, d_col, blob02, blob04 = fit_signature_full(an02, an04, r, c)
        cand = TruckCandidate(row=fr, col=fc, score=float(prob[r, c]), d_row=d_row, d_col=d_col)
        if not legacy:
            if cand.speed_kmh(gsd_m) > MAX_TRUCK_SPEED_KMH:
                continue
            weak, strong = min(blob02, blob04), max(blob02, blob04)
            if weak <= 0 or weak < MIN_BLOB_BALANCE * strong:
                continue
            if any(math.hypot(fr - k.row, fc - k.col) < GROUP_PX for k in out):
                continue  # another blob of a vehicle already kept (peaks come most probable first)
        out.append(cand)
    return out


def candidate_to_detection(cand: TruckCandidate, window: RasterWindow, detector: str) -> Detection:
    """A Detection whose box covers the rainbow: B02→B04 offset plus a nominal truck length, 10 m wide."""
    gsd = window.grid.res_m
    offset_px = math.hypot(cand.d_row, cand.d_col)
    length_px = offset_px + _NOMINAL_TRUCK_M / gsd
    angle = math.atan2(cand.d_row, cand.d_col) if offset_px > 0 else 0.0
    # Pixel centres are at integers here; the grid's affine puts them at +0.5.
    corners = oriented_box(cand.col + 0.5, cand.row + 0.5, length_px, 1.0, angle)
    bearing = cand.travel_bearing_deg
    return detection_from_pixel_box(
        window.grid,
        corners,
        "truck",
        cand.score,
        scene=window.scene_id,
        acquired=window.acquired,
        detector=detector,
        speed_kmh=cand.speed_kmh(gsd),
        heading_deg=bearing % 180.0,
        properties={
            "travel_bearing_deg": round(bearing, 1),
            "band_offset_m": round(offset_px * gsd, 1),
            "on_road": None,
            "index_note": INDEX_NOTE,
        },
    )


def _zone_areas(aoi: Aoi) -> tuple[str, list[tuple[str, Any]]]:
    """Road and bridge-deck zones as areas in the AOI's UTM CRS, so ``buffer_m`` is ground metres."""
    crs = aoi.utm_crs
    return crs, [(z.name, z.area_geometry(crs)) for z in aoi.zones if z.kind in ZONE_KINDS_COUNTED]


def _zone_of(det: Detection, crs: str, zones: list[tuple[str, Any]]) -> str | None:
    from shapely.geometry import Point

    from imagery.aoi import to_crs

    p = to_crs(Point(det.lon, det.lat), crs)
    return next((name for name, geom in zones if geom.contains(p)), None)


def flag_on_road(detections: list[Detection], aoi: Aoi) -> list[Detection]:
    """Copies of the detections with ``on_road`` (inside a road/bridge-deck zone) and ``road_zone`` set."""
    crs, zones = _zone_areas(aoi)
    out = []
    for d in detections:
        hit = _zone_of(d, crs, zones)
        out.append(d.with_properties(on_road=hit is not None, road_zone=hit))
    return out


def count_in_zones(detections: list[Detection], aoi: Aoi) -> dict[str, int]:
    """Number of truck detections inside each road/bridge-deck zone of ``aoi``.

    Line zones are buffered by their ``buffer_m`` in the AOI's UTM CRS.

    A detection is counted in the first zone that contains its centre, so overlapping buffers never
    count one truck twice.
    """
    crs, zones = _zone_areas(aoi)
    counts = {name: 0 for name, _ in zones}
    for d in detections:
        if d.class_name != "truck":
            continue
        hit = _zone_of(d, crs, zones)
        if hit is not None:
            counts[hit] += 1
    return counts


#: The S2TD test chip (Fisser et al. 2022 repository) stores B04, B03, B02, B08 in that order on a
#: 0–255-like visual scale, not reflectance; 1/255 maps it to a reflectance-like 0–1 range.
S2TD_BANDS = ("B04", "B03", "B02", "B08")
S2TD_SCALE = 1.0 / 255.0


def read_s2td_chip(path: str | Path, scale: float = S2TD_SCALE) -> RasterWindow:
    """Read the S2TD motorway chip with its band order and scale made explicit (see docs/trucks.md)."""
    from imagery.read import open_raster

    return open_raster(path, bands=list(S2TD_BANDS), scale=scale, scene_id=Path(path).stem)
