"""Ship outline from the pixels: refine a detector's oriented box to the bright object inside it.

A box regressed by a small network on 4–40 px objects is good at *where* a ship is and poor at *how
long* (the 5-fold cross-validation of the first shipped model: length error 44 m, widths of 50–90 m
for 20–40 m beams). The hull itself is easy to outline at 10 m: in NIR (B08) a steel or painted hull
is several times brighter than water. So for each box, pixels of a crop around it that stand out from
the crop's open water (median + max(k·σ, min_contrast), σ from the MAD) form connected components,
and the component that overlaps the box most gives the new box (``cv2.minAreaRect`` of its pixel
corners: the same measure as the sen2ships truth lengths, which come from the labelled masks).

The outline is refused when it cannot be trusted: no water to measure the background against, no
bright component in the box, a component touching the crop's edge (the ship merged with a quay, a
breakwater or a neighbour), or one mostly on land. A ship merged with the quay it lies alongside still
has water off its bow and stern, so its length is then taken from the brightness profile along the
box's long axis (``axis_extent``). If that fails too, the detector's box is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from detect.core.geometry import mask_corner_points
from detect.core.slicing import CX, CY, THETA, H, W, rotated_corners
from detect.core.water import WaterMask
from imagery.types import RasterWindow

#: Bands tried in order for the brightness image; visible bands are averaged when NIR is missing.
_NIR = "B08"
_VISIBLE = ("B04", "B03", "B02")


@dataclass(frozen=True)
class RefineParams:
    """``k``: threshold in robust σ of the crop's water. ``min_contrast``: minimum excess over the water
    median, reflectance (calm water has almost no σ). ``pad``: crop margin around the box as a share
    of its longer side (plus ``margin_px``). ``max_half_px``: crop half-size cap (a 400 m ship needs
    20 px). ``min_px``: smallest component kept. ``min_water_px``: water pixels needed for the
    background. ``max_land_frac``: largest share of the component allowed off the water mask core.
    """

    k: float = 4.0
    min_contrast: float = 0.03
    pad: float = 0.5
    margin_px: int = 4
    max_half_px: int = 40
    min_px: int = 3
    min_water_px: int = 30
    max_land_frac: float = 0.5
    axis_fallback: bool = True


def brightness(window: RasterWindow) -> np.ndarray | None:
    """NIR reflectance, else the mean of the visible bands present, else None."""
    if _NIR in window.band_names:
        return window.band(_NIR).astype(np.float32)
    vis = [b for b in _VISIBLE if b in window.band_names]
    if not vis:
        return None
    return np.mean([window.band(b).astype(np.float32) for b in vis], axis=0)


def _component(fg: np.ndarray, inside: np.ndarray, min_px: int) -> tuple[np.ndarray, bool] | None:
    """The 8-connected component of ``fg`` overlapping ``inside`` most, and whether it touches the
    edge of the crop; None if none overlaps or it is smaller than ``min_px``."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    overlap = np.bincount(labels[inside], minlength=n)
    overlap[0] = 0
    best = int(np.argmax(overlap))
    if overlap[best] == 0 or stats[best, cv2.CC_STAT_AREA] < min_px:
        return None
    x, y, w, h = (int(stats[best, k]) for k in range(4))
    at_edge = x == 0 or y == 0 or x + w == fg.shape[1] or y + h == fg.shape[0]
    return labels == best, at_edge


def _background(
    img: np.ndarray, water: np.ndarray, box: np.ndarray, p: RefineParams
) -> tuple[tuple[int, int, int, int], np.ndarray, float] | None:
    """The crop around ``box`` (r0, r1, c0, c1), the box's footprint in it, and the hull threshold
    (open-water median + max(k·σ, min_contrast)); None without enough water or room."""
    h_img, w_img = img.shape
    cx, cy = float(box[CX]), float(box[CY])
    half = min(p.max_half_px, math.ceil(max(box[W], box[H]) * (0.5 + p.pad)) + p.margin_px)
    c0, c1 = max(0, math.floor(cx) - half), min(w_img, math.floor(cx) + half + 1)
    r0, r1 = max(0, math.floor(cy) - half), min(h_img, math.floor(cy) + half + 1)
    if c1 - c0 < 3 or r1 - r0 < 3:
        return None
    crop = img[r0:r1, c0:c1]
    inside = np.zeros(crop.shape, np.uint8)
    # fillPoly fills a pixel whose centre lies inside; centres sit at +0.5 in box coordinates.
    corners = rotated_corners(box[None])[0] - np.array([c0 + 0.5, r0 + 0.5])
    cv2.fillPoly(inside, [np.round(corners * 16).astype(np.int32)], 1, shift=4)
    bg = crop[water[r0:r1, c0:c1] & ~inside.astype(bool) & np.isfinite(crop)]
    if bg.size < p.min_water_px:
        return None
    med = float(np.median(bg))
    sigma = 1.4826 * float(np.median(np.abs(bg - med)))
    return (r0, r1, c0, c1), inside.astype(bool), med + max(p.k * sigma, p.min_contrast)


def _profile(
    img: np.ndarray, cx: float, cy: float, ux: float, uy: float, reach: float
) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``t`` (px, every 0.5 from −reach to reach) along the unit vector (ux, uy) from (cx, cy),
    and the median brightness of three parallel lines 1 px apart there (NaN off the image)."""
    t = np.arange(-reach, reach + 1e-6, 0.5, dtype=np.float32)
    lines = []
    for off in (-1.0, 0.0, 1.0):
        xs = cx + t * ux - off * uy - 0.5  # pixel centres sit at +0.5
        ys = cy + t * uy + off * ux - 0.5
        sampled = cv2.remap(
            img, xs[None], ys[None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan
        )
        lines.append(sampled[0])
    return t, np.median(np.stack(lines), axis=0)


def _ends(t: np.ndarray, profile: np.ndarray, threshold: float) -> tuple[float | None, float | None] | None:
    """Walking out from the middle of a profile while it stays above ``threshold``: where each side
    drops onto water (halfway to the first dark sample), or None for a side that runs out of reach or
    onto nodata. None altogether when the middle itself is dark."""
    above = np.nan_to_num(profile, nan=-np.inf) > threshold
    mid = len(t) // 2
    if not above[mid]:
        return None
    below = np.flatnonzero(~above)
    left, right = below[below < mid], below[below > mid]
    lo = float(t[left[-1]]) + 0.25 if left.size and np.isfinite(profile[left[-1]]) else None
    hi = float(t[right[0]]) - 0.25 if right.size and np.isfinite(profile[right[0]]) else None
    return lo, hi


def axis_extent(img: np.ndarray, box: np.ndarray, threshold: float, p: RefineParams) -> np.ndarray | None:
    """For a ship the outline cannot be trusted for (merged with a quay alongside): its extent along
    the box's long axis, from the brightness profile on the centre line walked out from the centre
    until it drops below the hull threshold onto water, at both ends (else None: a dark centre,
    another ship in line, a quay ahead, nodata). The beam is walked the same way across the re-centred
    hull: both sides if both reach water, else twice the side that does (the other lies against the
    quay), else the box's width is kept. ``threshold``: the hull threshold from ``_background``.
    Returns ``[cx, cy, length, beam, axis_angle]``."""
    w, h, theta = float(box[W]), float(box[H]), float(box[THETA])
    axis = theta if w >= h else theta + math.pi / 2
    length, width = max(w, h), min(w, h)
    ux, uy = math.cos(axis), math.sin(axis)
    reach = min(float(p.max_half_px), 0.75 * length + p.margin_px)
    t, profile = _profile(img, float(box[CX]), float(box[CY]), ux, uy, reach)
    ends = _ends(t, profile, threshold)
    if ends is None or ends[0] is None or ends[1] is None:
        return None
    t0, t1 = ends
    if t1 <= t0:
        return None
    shift = (t0 + t1) / 2
    cx, cy = float(box[CX]) + shift * ux, float(box[CY]) + shift * uy
    # Across the hull (perpendicular to the axis).
    vx, vy = -uy, ux
    t, profile = _profile(img, cx, cy, vx, vy, min(float(p.max_half_px), 0.75 * width + p.margin_px))
    sides = _ends(t, profile, threshold)
    beam = width
    if sides is not None:
        s0, s1 = sides
        if s0 is not None and s1 is not None and s1 > s0:
            beam, across = s1 - s0, (s0 + s1) / 2
            cx, cy = cx + across * vx, cy + across * vy
        elif s0 is not None or s1 is not None:
            beam = 2 * abs(s0 if s0 is not None else s1)  # type: ignore[arg-type]
    return np.array([cx, cy, t1 - t0, max(beam, 0.5), axis])


def refine_box(
    img: np.ndarray,
    land: np.ndarray,
    crop_at: tuple[int, int, int, int],
    inside: np.ndarray,
    threshold: float,
    p: RefineParams,
) -> np.ndarray | None:
    """The refined ``[cx, cy, w, h, theta]`` of one box on the window grid, or None to keep it.

    ``img``: brightness (NaN where there is no data); ``land``: pixels off the water mask's core;
    ``crop_at``, ``inside``, ``threshold``: the box's crop, footprint and hull threshold
    (``_background``).
    """
    r0, r1, c0, c1 = crop_at
    crop = img[r0:r1, c0:c1]
    fg = np.nan_to_num(crop, nan=-np.inf) > threshold
    component = _component(fg, inside, p.min_px)
    # Touching the crop's edge: merged with a quay, a breakwater or the ship alongside. (Raising the
    # threshold does not separate them: quays are as bright as hulls in NIR; measured on fold 0.)
    if component is None or component[1]:
        return None
    comp = component[0]
    if float(land[r0:r1, c0:c1][comp].mean()) > p.max_land_frac:
        return None
    grown = cv2.dilate(comp.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if not np.isfinite(crop[grown]).all():  # cut by nodata: the outline is only part of the hull
        return None
    (rx, ry), (rw, rh), angle = cv2.minAreaRect(mask_corner_points(comp).astype(np.float32))
    return np.array([rx + c0, ry + r0, rw, rh, math.radians(angle)])


def refine_boxes(
    window: RasterWindow,
    boxes: np.ndarray,
    wm: WaterMask | None,
    params: RefineParams | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Boxes (rows ``[cx, cy, w, h, theta, score, class, ...]`` on the window grid) with their geometry
    replaced by the outline of the bright object inside where that can be trusted (``"pixels"``), else
    the length from the axis profile (``"axis"``), else kept (``"box"``); and that source per box.
    Scores and classes are unchanged."""
    p = params or RefineParams()
    out = np.array(boxes, dtype=np.float64, copy=True)
    sources = ["box"] * len(out)
    img = brightness(window) if len(out) else None
    if img is None:
        return out, sources
    valid = window.valid_mask
    if wm is not None and wm.available and wm.core is not None:
        water, land = wm.core & valid, ~wm.core
    else:
        water, land = valid, np.zeros(valid.shape, bool)
    for i, b in enumerate(out):
        found = _background(img, water, b, p)  # None: too little water around it to judge
        if found is None:
            continue
        new = refine_box(img, land, *found, p)
        if new is not None:
            out[i, [CX, CY, W, H, THETA]] = new
            sources[i] = "pixels"
        elif p.axis_fallback:
            new = axis_extent(img, b, found[2], p)
            if new is not None:
                out[i, [CX, CY, W, H, THETA]] = new
                sources[i] = "axis"
    return out, sources
