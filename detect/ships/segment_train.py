"""Training and cross-validation of the segmentation ship model (``detect.ships.segment``) on sen2ships.

Scenes are read once onto the UTM 10 m grid with their instance masks (``prepare``); training draws random
crops (most around a labelled ship, the rest anywhere, so quays, roofs and bridges are the negatives) with
flips, rotations, gain, random band dropout down to B08-only or true colour, simulated 8-bit true colour, and
optionally copy-paste of real labelled hulls onto open water, in rows side by side. Every ``checkpoint_every``
steps the model, optimiser and random states are saved, so a killed run resumes where it stopped.
Cross-validation leaves whole cities out; each fold's score threshold is chosen on two of its own training
cities held out from its training (inner split).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from rasterio.enums import Resampling
from rasterio.warp import reproject
from scipy import ndimage

from detect.core.rle import decode_rle
from detect.ships.dataset import SEN2SHIPS_SCALE, available_bands, coco_cities, load_coco, write_scene
from detect.ships.segment import SEG_BANDS, TRUE_COLOUR, encode, seg_network, usable_bands
from detect.ships.segment import upsample as upsample_array
from imagery.atomic import atomic_path
from imagery.errors import InputError
from imagery.read import TRUE_COLOUR_8BIT_SCALE, find_band_files, open_raster

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- scenes
def prepare(data: Path, cache: Path, cities: Sequence[str] | None = None) -> list[str]:
    """Each city's bands (those of ``SEG_BANDS`` it has) on its UTM 10 m grid and its instance raster
    (COCO masks reprojected with nearest neighbour) → ``cache/<city>.npz``. Existing files are kept."""
    coco = load_coco(data / "annotations_coco.json")
    images = coco_cities(coco)
    cache.mkdir(parents=True, exist_ok=True)
    done = []
    for city, im in sorted(images.items()):
        if cities is not None and city not in cities:
            continue
        out = cache / f"{city}.npz"
        done.append(city)
        if out.is_file():
            continue
        have = [b for b in SEG_BANDS if b in available_bands(data, city)]
        if not have:
            log.warning("%s has none of %s; skipped", city, ", ".join(SEG_BANDS))
            done.pop()
            continue
        win = open_raster(data / city, have, scene_id=city, scale=SEN2SHIPS_SCALE)
        with rasterio.open(find_band_files(data / city)[have[0]]) as src:
            src_transform, src_crs = src.transform, src.crs
        inst_src = np.zeros((im["height"], im["width"]), np.int32)
        ids = []
        for a in coco["annotations"]:
            if a["image_id"] != im["id"]:
                continue
            seg = a.get("segmentation")
            if isinstance(seg, dict) and "counts" in seg:
                m = decode_rle(seg).astype(bool)
            else:  # a box when the label has no mask
                x, y, w, h = (round(v) for v in a["bbox"])
                m = np.zeros(inst_src.shape, bool)
                m[y : y + h, x : x + w] = True
            inst_src[m & (inst_src == 0)] = len(ids) + 1
            ids.append(int(a["id"]))
        g = win.grid
        inst = np.zeros(g.shape, np.int32)
        reproject(
            inst_src,
            inst,
            src_transform=src_transform,
            src_crs=src_crs,
            dst_transform=g.transform,
            dst_crs=g.crs,
            resampling=Resampling.nearest,
            src_nodata=None,
            dst_nodata=0,
        )
        write_scene(
            out,
            image=np.asarray(win.data, np.float32).astype(np.float16),
            bands=np.array(win.band_names),
            valid=np.asarray(win.valid_mask),
            inst=inst.astype(np.int16),
            ann_ids=np.array(ids),
        )
        log.info("%s: %s, %d vessels", city, "+".join(win.band_names), len(ids))
    return done


def core_target(inst: np.ndarray) -> np.ndarray:
    """Per instance: its inner half (by distance to its edge), less the pixels touching another hull."""
    core = np.zeros(inst.shape, np.uint8)
    if inst.max() == 0:
        return core
    touch = np.zeros(inst.shape, bool)
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        sh = np.roll(np.roll(inst, dy, 0), dx, 1)
        touch |= (sh != inst) & (sh > 0) & (inst > 0)
    for k, sl in enumerate(ndimage.find_objects(inst), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in sl)
        m = inst[sl] == k
        d = cv2.distanceTransform(np.pad(m, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
        c = m & (d >= max(1.0, 0.5 * d.max())) & ~touch[sl]
        if not c.any():
            c = m & (d >= d.max())
        core[sl][c] = 1
    return core


class TrainingScenes:
    """The cached cities a model trains on, with every labelled hull kept for copy-paste."""

    def __init__(
        self, cache: Path, cities: Sequence[str], upsample: int = 1, ignore_unlabelled: bool = False
    ) -> None:
        if ignore_unlabelled and upsample > 1:
            raise InputError("ignore_unlabelled works on the 10 m grid only (upsample 1)")
        self.s: dict[str, dict[str, Any]] = {}
        self.hulls: list[tuple[np.ndarray, np.ndarray, tuple[str, ...]]] = []
        for c in cities:
            path = cache / f"{c}.npz"
            if not path.is_file():
                raise InputError(f"no prepared scene {path}; run prepare() first")
            z = np.load(path)
            bands = [str(b) for b in z["bands"]]
            img = np.zeros((len(SEG_BANDS), *z["inst"].shape), np.float32)
            for i, b in enumerate(bands):
                if b in SEG_BANDS:
                    img[SEG_BANDS.index(b)] = z["image"][i].astype(np.float32)
            inst = z["inst"].astype(np.int32)
            valid = z["valid"].astype(bool)
            if upsample > 1:  # lever "finer grid": the 10 m scene on a 5 m grid, as the detector reads it
                img, inst, valid = (
                    upsample_array(img, upsample, linear=True),
                    upsample_array(inst, upsample),
                    upsample_array(valid, upsample),
                )
            img[:, ~valid] = 0
            present = tuple(b for b in SEG_BANDS if b in bands)
            water = water_like(img, present)
            ignore = None
            if ignore_unlabelled:
                ignore = unlabelled_objects(img, present, inst, valid, water=water)
            if "ignore" in z.files:  # stored with the scene: objects afloat that carry no label (eotdl chips)
                stored = z["ignore"].astype(bool)
                stored = upsample_array(stored, upsample) if upsample > 1 else stored
                ignore = stored if ignore is None else ignore | stored
            ignore = ignore if ignore is not None and ignore.any() else None
            objs = [sl for sl in ndimage.find_objects(inst) if sl is not None]
            centres = [((s[0].start + s[0].stop) // 2, (s[1].start + s[1].stop) // 2) for s in objs]
            coast = np.zeros((0, 2), np.int32)
            if water is not None:  # land within 2 px of water: quays, breakwaters, bridges, beaches
                k = 4 * upsample + 1
                near = cv2.dilate(water.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
                coast = np.argwhere(near & ~water & valid).astype(np.int32)
                if len(coast) > 20000:
                    coast = coast[np.random.default_rng(0).choice(len(coast), 20000, replace=False)]
            for k, sl in enumerate(ndimage.find_objects(inst), start=1):
                if sl is None:
                    continue
                sl = tuple(slice(max(0, q.start - 1), q.stop + 1) for q in sl)
                self.hulls.append((img[(slice(None), *sl)].copy(), (inst[sl] == k), present))
            self.s[c] = dict(
                img=img,
                present=present,
                inst=inst,
                coast=coast,
                core=core_target(inst),
                mask=(inst > 0).astype(np.uint8),
                centres=centres,
                valid=valid,
                ignore=ignore,
                water=water,
            )
        self.cities = list(self.s)
        self.upsample = upsample
        self.has_ignore = any(d["ignore"] is not None for d in self.s.values())
        n = np.array([max(1, len(self.s[c]["centres"])) for c in self.cities], float)
        self.p = np.sqrt(n) / np.sqrt(n).sum()  # big ports drawn more, not in proportion


# ------------------------------------------------------------------------------------- augmentation
def random_bands(present: Sequence[str], rng: random.Random) -> tuple[str, ...]:
    """All bands 40 % of the time, else a random subset the model must still handle (B08 or true colour)."""
    present = tuple(present)
    if rng.random() < 0.4:
        return present
    for _ in range(20):
        s = tuple(b for b in present if rng.random() < 0.5)
        if usable_bands(s):
            return s
    return present


def tci_to_reflectance(v: np.ndarray) -> np.ndarray:
    """8-bit true-colour values → reflectance, as ``imagery.read`` decodes 8-bit files."""
    return np.asarray(v, np.float32) * TRUE_COLOUR_8BIT_SCALE


def water_like(img: np.ndarray, present: Sequence[str]) -> np.ndarray | None:
    """Rough open-water mask of a crop from NDWI (B03, B08) or dark NIR; None without either band."""
    if "B03" in present and "B08" in present:
        g, n = img[SEG_BANDS.index("B03")], img[SEG_BANDS.index("B08")]
        return (g - n) / (g + n + 1e-6) > 0.05
    if "B08" in present:
        return img[SEG_BANDS.index("B08")] < 0.05
    return None


#: Largest blob (10 m pixels) ``unlabelled_objects`` takes for a vessel: 600 px = 0.06 km², beyond any hull.
UNLABELLED_MAX_PX = 600
#: ... and longest side of its bounding box: 35 px = 350 m.
UNLABELLED_MAX_SPAN_PX = 35
#: Open water (10 m pixels) that must ring such a blob: 10 000 px = 1 km².
OPEN_WATER_MIN_PX = 10_000
#: Reflectance by which such a blob must outshine the water around it in at least one band.
UNLABELLED_CONTRAST = 0.03


def unlabelled_objects(
    img: np.ndarray,
    present: Sequence[str],
    inst: np.ndarray,
    valid: np.ndarray,
    water: np.ndarray | None = None,
) -> np.ndarray:
    """Bright objects afloat that nobody labelled: blobs of 2–``UNLABELLED_MAX_PX`` non-water pixels (at
    most ``UNLABELLED_MAX_SPAN_PX`` across) ringed by open water of a square kilometre or more, alone (no
    other blob, labelled hulls included, within 6 px), brighter than that water by ``UNLABELLED_CONTRAST``
    in some band, and not touched by a label; grown by one pixel, never onto a labelled hull's edge.

    sen2ships labels most vessels of ~40 m and up but not every boat, so small craft, unlabelled ships at
    anchor, buoys and rocks are taught as background; training with ``ignore_unlabelled`` takes them out of
    the loss. Things joined to land (quays, breakwaters, moored hulls) are not ringed by water and stay
    negatives, so the confusers a hull detector must learn are kept. Empty without a water estimate.
    ``water``: ``water_like(img, present)`` when the caller has it already."""
    out = np.zeros(inst.shape, bool)
    water = water_like(img, present) if water is None else water
    if water is None:
        return out
    water = water & valid
    solid = (~water & valid).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
    span = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    small = (stats[:, cv2.CC_STAT_AREA] >= 2) & (stats[:, cv2.CC_STAT_AREA] <= UNLABELLED_MAX_PX)
    small &= span <= UNLABELLED_MAX_SPAN_PX  # detached breakwaters are longer than any ship: negatives
    small[0] = False
    if not small.any():
        return out
    # 8-connected blobs: every valid pixel next to one is water, so only no-data or the scene edge can cut it
    edge = ~valid.copy()
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    cut = cv2.dilate(edge.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    small[np.unique(lab[cut])] = False
    small[0] = False
    # ... and ringed by open water of at least a square kilometre, not by specks of a poor water estimate
    _, wlab, wstats, _ = cv2.connectedComponentsWithStats(water.astype(np.uint8), connectivity=8)
    big_water = (wstats[:, cv2.CC_STAT_AREA] >= OPEN_WATER_MIN_PX)[wlab] & water
    grown = ndimage.grey_dilation(np.where(small[lab], lab, 0), size=(3, 3))
    ok = np.zeros(n, bool)
    ok[np.unique(grown[big_water & (grown > 0)])] = True
    out = (small & ok)[lab]
    if not out.any():
        return out
    # ... and alone: sun glint, whitecaps and a water estimate failing on rough water break into clusters of
    # blobs; a blob with another within 6 px (each grown by 3) is kept as background
    near, _ = ndimage.label(
        cv2.dilate(out.astype(np.uint8), np.ones((7, 7), np.uint8)), structure=np.ones((3, 3))
    )
    pairs = np.unique(np.stack([near[out], lab[out]]), axis=1)
    crowded = np.bincount(pairs[0]) > 1
    out &= ~crowded[near]
    # ... and brighter than that water in some band (hull, deck, wake), not a dark or textured patch of it
    ids = np.unique(lab[out])
    if len(ids):
        ring = ndimage.grey_dilation(np.where(out, lab, 0), size=(5, 5))
        ring = np.where(water & ~out, ring, 0)
        contrast = np.full(len(ids), -np.inf)
        for i, b in enumerate(SEG_BANDS):
            if b in present:
                inside = np.asarray(ndimage.mean(img[i], lab * out, ids))
                around = np.asarray(ndimage.median(img[i], ring, ids))
                contrast = np.maximum(contrast, np.nan_to_num(inside - around, nan=-np.inf))
        dim = np.zeros(n, bool)
        dim[ids[contrast < UNLABELLED_CONTRAST]] = True
        out &= ~dim[lab]
    out &= ~np.isin(lab, np.unique(lab[inst > 0]))  # a blob a label touches is that ship (hull, wake)
    labelled = cv2.dilate((inst > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    out &= ~labelled
    return cv2.dilate(out.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~labelled


#: Relative haze (path radiance) per band of ``SEG_BANDS``: scattering falls with wavelength (B02 ... B11).
HAZE_SPECTRUM = (1.0, 0.85, 0.75, 0.6, 0.4)


def add_haze(img: np.ndarray, rng: random.Random) -> np.ndarray:
    """Thin haze over a crop: x·t + A·(1 − t) per band, transmittance t 0.5–0.95, airlight A 0.1–0.3 in B02
    falling with wavelength (``HAZE_SPECTRUM``), so water brightens and contrast drops as in hazy scenes."""
    t = rng.uniform(0.5, 0.95)
    a = rng.uniform(0.1, 0.3)
    out = img.copy()
    for i, k in enumerate(HAZE_SPECTRUM):
        out[i] = np.where(img[i] != 0, img[i] * t + a * k * (1 - t), 0)  # 0 = band missing or no data
    return out


#: Whitecap foam reflectance per band of ``SEG_BANDS`` relative to B02: foam is white in the visible and falls
#: off in the NIR and SWIR as water absorbs (Frouin et al. 1996, J. Geophys. Res. 101:14361; Dierssen 2019).
FOAM_SPECTRUM = (1.0, 1.0, 0.95, 0.6, 0.15)


def hull_colour(pp: np.ndarray, mm: np.ndarray, rng: random.Random) -> None:
    """Repaint a pasted hull in place: independent gains per band (visible ×0.6–1.65, NIR and SWIR
    ×0.75–1.35), so red, blue, green and black hulls of ports the model never saw look like ships too."""
    for i, b in enumerate(SEG_BANDS):
        k = 0.5 if b in TRUE_COLOUR else 0.3
        pp[i][mm] *= math.exp(rng.uniform(-k, k))


def add_wake(img, inst, present, centre, axis, half_len, half_width, rng: random.Random) -> None:
    """A foam trail behind a pasted hull, in place and not in the hull mask: from one end of the hull
    along its axis, 1–4 hull lengths long, widening behind the stern and fading to nothing, bright as
    whitecaps (``FOAM_SPECTRUM``; 0.02–0.12 reflectance in B02 at the stern, patchy), only on open water
    outside other hulls. Ships under way drag such wakes; a detector that calls the wake hull gets lengths and
    centres wrong."""
    h, w = inst.shape
    sign = rng.choice((-1.0, 1.0))
    ay, ax = axis
    sy, sx = centre[0] + sign * ay * half_len, centre[1] + sign * ax * half_len
    length = rng.uniform(1.0, 4.0) * 2 * half_len
    spread = rng.uniform(0.02, 0.12)
    amp = rng.uniform(0.02, 0.12)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    along = (yy - sy) * ay * sign + (xx - sx) * ax * sign
    across = np.abs(-(yy - sy) * ax + (xx - sx) * ay)
    trail = (along > 0) & (along < length) & (across <= half_width + spread * along)
    water = water_like(img, present)
    if water is not None:
        trail &= water
    trail &= inst == 0
    if not trail.any():
        return
    # turbulent foam: patchy (smoothed noise ×0.4–1.6), brightest at the stern
    noise = np.asarray(rng.choices(range(1000), k=h * w), np.float32).reshape(h, w)
    patch = cv2.GaussianBlur(noise, (0, 0), 1.0)
    patch = 0.4 + 1.2 * (patch - patch.min()) / max(1e-6, float(np.ptp(patch)))
    fade = amp * np.clip(1.0 - along / length, 0.0, 1.0) ** 1.5 * patch * trail
    for i, b in enumerate(SEG_BANDS):
        if b in present:
            img[i] = np.where(img[i] != 0, img[i] + fade * FOAM_SPECTRUM[i], 0.0)


#: Berths are water pixels this many pixels from land (quays, breakwaters, piers) inside the crop.
QUAY_MAX_GAP_PX = 1
#: Land patches smaller than this (NDWI noise, buoys, boats) are no quay.
QUAY_MIN_LAND_PX = 20


def quay_berths(water: np.ndarray, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where a pasted hull can be berthed in a crop: water pixels next to land (land = valid pixels that are
    not water; the crop's no-data is neither), each with its unit normal pointing away from the land, in
    (row, col); land patches under ``QUAY_MIN_LAND_PX`` do not count. Returns (points (n, 2), normals
    (n, 2)); none where the crop has no quay."""
    valid = (img != 0).any(0)
    land = (valid & ~water).astype(np.uint8)
    _, lab, stats, _ = cv2.connectedComponentsWithStats(land, connectivity=8)
    land = (stats[:, cv2.CC_STAT_AREA] >= QUAY_MIN_LAND_PX)[lab] & (lab > 0)
    if not land.any() or not water.any():
        return np.zeros((0, 2)), np.zeros((0, 2))
    k = 2 * QUAY_MAX_GAP_PX + 1
    edge = water & (cv2.dilate(land.astype(np.uint8), np.ones((k, k), np.uint8)) > 0)
    smooth = cv2.GaussianBlur(water.astype(np.float32), (0, 0), 2.0)
    gy, gx = np.gradient(smooth)
    pts = np.argwhere(edge)
    g = np.stack([gy[edge], gx[edge]], 1)
    norm = np.hypot(g[:, 0], g[:, 1])
    ok = norm > 1e-3
    return pts[ok].astype(np.float64), g[ok] / norm[ok, None]


def berth_angle(m: np.ndarray, normal: np.ndarray) -> float:
    """The rotation (degrees, as ``cv2.getRotationMatrix2D`` takes it) that lays hull mask ``m``'s long
    axis across ``normal`` (row, col), i.e. along the quay."""
    ys, xs = np.nonzero(m)
    if len(ys) < 2:
        return 0.0
    cov = np.cov(np.stack([xs, ys]).astype(np.float64))
    w, v = np.linalg.eigh(cov)
    lx, ly = v[:, int(np.argmax(w))]  # long axis (x, y) of the source mask
    tx, ty = -normal[0], normal[1]  # the quay direction (x, y): perpendicular to the normal (row, col)
    # cv2 turns by +angle counter-clockwise as displayed (y down); a vector's displayed angle is atan2(-y, x)
    return math.degrees(math.atan2(-ty, tx) - math.atan2(-ly, lx))


def paste_hulls(
    img,
    inst,
    present,
    scenes: TrainingScenes,
    rng: random.Random,
    n_max: int = 3,
    p_colour: float = 0.0,
    p_wake: float = 0.0,
    p_quay: float = 0.0,
):
    """Copy-paste real labelled hulls (of the training cities only) onto open water in a crop: rotated,
    rescaled ±20 %, brightness ±25 %, and sometimes as a row of 2–3 moored side by side; ``p_colour`` of them
    repainted (``hull_colour``), ``p_wake`` of the single ones given a foam wake (``add_wake``). ``p_quay`` of
    them are berthed instead (``quay_berths``): long side along a quay or breakwater edge in the crop, 0–1 px
    off it, a row then rafting outwards; no wake."""
    water = water_like(img, present)
    if water is None or not scenes.hulls:
        return img, inst
    h_img, w_img = inst.shape
    nxt = int(inst.max()) + 1
    berths = quay_berths(water, img) if p_quay else None
    for _ in range(rng.randint(1, n_max)):
        patch, m, src_present = scenes.hulls[rng.randrange(len(scenes.hulls))]
        ang, scl = rng.uniform(0, 360), math.exp(rng.uniform(-0.2, 0.2))
        berth = None
        if berths is not None and len(berths[0]) and rng.random() < p_quay:
            k = rng.randrange(len(berths[0]))
            berth = berths[0][k], berths[1][k]
            ang = berth_angle(m, berths[1][k])
        h, w = m.shape
        size = math.ceil(math.hypot(h, w) * scl) + 2
        mat = cv2.getRotationMatrix2D((w / 2, h / 2), ang, scl)
        mat[:, 2] += (size / 2 - w / 2, size / 2 - h / 2)
        mm = cv2.warpAffine(m.astype(np.uint8), mat, (size, size), flags=cv2.INTER_NEAREST) > 0
        if mm.sum() < 3 or size >= min(h_img, w_img) - 2:
            continue
        pp = np.stack(
            [
                cv2.warpAffine(patch[i], mat, (size, size), flags=cv2.INTER_LINEAR)
                for i in range(len(SEG_BANDS))
            ]
        )
        gain = math.exp(rng.uniform(-0.25, 0.25))
        if p_colour and rng.random() < p_colour:
            hull_colour(pp, mm, rng)
        ys, xs = np.nonzero(mm)
        (hx, hy), (rw, rh), rang = cv2.minAreaRect(np.stack([xs, ys], 1).astype(np.float32))
        across = math.radians(rang + (90 if rw >= rh else 0))
        step = min(rw, rh) + rng.choice((1, 1, 2))
        copies = rng.choice((1, 1, 2, 3))
        if berth is None:
            y0, x0 = rng.randint(0, h_img - size), rng.randint(0, w_img - size)
            min_water = 0.95
        else:  # hull centre half a beam (plus 0–1 px of fender) off the quay, a row rafting outwards
            (py, px), (ny, nx) = berth
            off = min(rw, rh) / 2 + rng.choice((0.0, 0.5, 1.0))
            y0, x0 = round(py + ny * off - hy), round(px + nx * off - hx)
            across = math.atan2(ny, nx)
            min_water = 0.8  # the hull's quay-side edge pixels are mixed with the quay
        placed = 0
        for j in range(copies):
            yy = y0 + round(j * step * math.sin(across))
            xx = x0 + round(j * step * math.cos(across))
            if yy < 0 or xx < 0 or yy + size > h_img or xx + size > w_img:
                break
            region = (slice(yy, yy + size), slice(xx, xx + size))
            if (inst[region][mm] > 0).any() or water[region][mm].mean() < min_water:
                break
            for i, b in enumerate(SEG_BANDS):
                if b in present and b in src_present:
                    img[i][region][mm] = pp[i][mm] * gain
            inst[region][mm] = nxt
            nxt += 1
            placed += 1
        if p_wake and berth is None and copies == 1 and placed and rng.random() < p_wake:
            ang_long = math.radians(rang + (0 if rw >= rh else 90))
            add_wake(
                img,
                inst,
                present,
                (y0 + hy, x0 + hx),
                (math.sin(ang_long), math.cos(ang_long)),
                max(rw, rh) / 2,
                min(rw, rh) / 2,
                rng,
            )
    return img, inst


def sample(
    scenes: TrainingScenes,
    rng: random.Random,
    crop: int,
    p_ship: float = 0.5,
    p_paste: float = 0.0,
    p_coast: float = 0.25,
    p_haze: float = 0.0,
    p_colour: float = 0.0,
    p_wake: float = 0.0,
    p_hard: float = 0.0,
    p_quay: float = 0.0,
):
    """One training crop: (encoded input (2·bands, crop, crop), targets (hull, core)). Crops centre on a
    labelled ship (``p_ship``), on one of the model's own false ships in this city (``p_hard``: hard
    negatives, ``mine_hard_negatives``), on the land edge of water (``p_coast``: the quays, breakwaters and
    bridges a hull detector confuses with ships) or anywhere."""
    c = scenes.cities[np.searchsorted(np.cumsum(scenes.p), rng.random() * 0.999999)]
    d = scenes.s[c]
    h, w = d["inst"].shape
    r = rng.random()
    if d["centres"] and r < p_ship:
        cy, cx = d["centres"][rng.randrange(len(d["centres"]))]
        y0 = cy - crop // 2 + rng.randint(-crop // 3, crop // 3)
        x0 = cx - crop // 2 + rng.randint(-crop // 3, crop // 3)
    elif len(d.get("hard", ())) and r < p_ship + p_hard:
        cy, cx = d["hard"][rng.randrange(len(d["hard"]))]
        y0 = int(cy) - crop // 2 + rng.randint(-crop // 4, crop // 4)
        x0 = int(cx) - crop // 2 + rng.randint(-crop // 4, crop // 4)
    elif len(d["coast"]) and r < p_ship + p_hard + p_coast:
        cy, cx = d["coast"][rng.randrange(len(d["coast"]))]
        y0, x0 = int(cy) - crop // 2, int(cx) - crop // 2
    else:
        y0, x0 = rng.randint(0, max(0, h - crop)), rng.randint(0, max(0, w - crop))
    y0 = min(max(0, y0), max(0, h - crop))
    x0 = min(max(0, x0), max(0, w - crop))
    sl = (slice(y0, y0 + crop), slice(x0, x0 + crop))
    img = d["img"][(slice(None), *sl)].copy()
    if p_paste and rng.random() < p_paste:
        inst = d["inst"][sl].copy()
        img, inst = paste_hulls(
            img, inst, d["present"], scenes, rng, p_colour=p_colour, p_wake=p_wake, p_quay=p_quay
        )
        mask, core = (inst > 0).astype(np.uint8), core_target(inst)
    else:
        mask, core = d["mask"][sl].copy(), d["core"][sl].copy()
    # loss weight: 0 on unlabelled objects afloat (``unlabelled_objects``) unless a pasted hull covers them
    weight = None if d.get("ignore") is None else (~d["ignore"][sl] | (mask > 0)).astype(np.uint8)
    if p_haze and rng.random() < p_haze:
        img = add_haze(img, rng)
    bands = random_bands(d["present"], rng)
    g = math.exp(rng.uniform(-0.3, 0.3))
    for i in range(len(SEG_BANDS)):
        img[i] = img[i] * g * math.exp(rng.uniform(-0.1, 0.1)) + rng.uniform(-0.01, 0.01)
    if set(TRUE_COLOUR) <= set(bands) and rng.random() < 0.15:
        # 8-bit true colour (ESA TCI, browser exports): other gains and gamma than the decoder assumes
        bands = TRUE_COLOUR
        gain = rng.uniform(2.5, 5.0)
        gamma = 1 / 2.2 if rng.random() < 0.3 else 1.0
        for i in range(3):
            img[i] = tci_to_reflectance(np.round(255 * np.clip(img[i] * gain, 0, 1) ** gamma))
    x = encode(img, bands)
    if weight is None and scenes.has_ignore:
        weight = np.ones_like(mask)
    y = np.stack([mask, core] if weight is None else [mask, core, weight])
    k = rng.randrange(4)
    x, y = np.rot90(x, k, (1, 2)), np.rot90(y, k, (1, 2))
    if rng.random() < 0.5:
        x, y = x[:, :, ::-1], y[:, :, ::-1]
    ph, pw = crop - y.shape[1], crop - y.shape[2]
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, ph), (0, pw)))
        y = np.pad(y, ((0, 0), (0, ph), (0, pw)))  # padding: no hull, and no weight where there is a weight
    return np.ascontiguousarray(x), y.astype(np.float32)


# ------------------------------------------------------------------------------------ hard negatives
#: Instance score at or above which the model's own unlabelled detections count as hard negatives.
HARD_MIN_SCORE = 0.5
#: A detection within this many pixels of a labelled hull is that ship (or its wake), not a false one.
HARD_LABEL_REACH_PX = 2


def mine_hard_negatives(
    model: torch.nn.Module, scenes: TrainingScenes, device: str = "cpu", min_score: float = HARD_MIN_SCORE
) -> dict[str, list[list[int]]]:
    """{city: [[row, col], ...]}: centres of the hulls ``model`` finds on its own training scenes (all
    their bands, the detector's instance rule) with score >= ``min_score`` that touch no labelled hull
    within ``HARD_LABEL_REACH_PX``: the breakwater heads, surf, islets, roofs and vegetation it takes for
    ships. Unlabelled real boats are among them too (sen2ships labels ships of ~40 m and up).
    As the detector does, a hull that touches no open water (``water_like``, within ``WATER_REACH_PX``) is
    dropped, and a scene whose bands the detector refuses (San Francisco: B02 B03 B11) is not mined."""
    from detect.ships.segment import WATER_REACH_PX, SegModel, SegSpec, instances, touches

    spec = SegSpec(name="mining")
    seg = SegModel(model, spec, device)
    k = 2 * HARD_LABEL_REACH_PX * scenes.upsample + 1
    out: dict[str, list[list[int]]] = {}
    for c in scenes.cities:
        d = scenes.s[c]
        if not usable_bands(d["present"]):
            out[c] = []
            continue
        prob = seg.probabilities(encode(d["img"], d["present"]), keep=d["valid"])
        near = cv2.dilate(d["mask"], np.ones((k, k), np.uint8)) > 0
        if d.get("ignore") is not None:
            near |= d["ignore"]  # objects already out of the loss (``ignore_unlabelled``)
        water = d.get("water")
        out[c] = [
            [int(inst.rows.mean()), int(inst.cols.mean())]
            for inst in instances(prob, spec)
            if inst.score >= min_score
            and not near[inst.rows, inst.cols].any()
            and (water is None or touches(inst, water, WATER_REACH_PX * scenes.upsample))
        ]
    return out


def use_hard_negatives(
    model: torch.nn.Module,
    scenes: TrainingScenes,
    out: Path,
    step: int,
    cfg: SegTrainConfig,
    device: str = "cpu",
) -> None:
    """Give each scene its hard negatives (``scene["hard"]``): read from ``out/hard_negatives.json`` when
    they were mined in this learning-rate cycle (a resumed run draws the same ones), else mined now from
    ``model`` and saved. At step 0 there is no trained model to mine from, and nothing is mined."""
    from imagery.atomic import atomic_write_json

    if step == 0:
        log.warning("%s: no trained checkpoint to mine hard negatives from; this cycle trains without", out)
        return
    path = out / "hard_negatives.json"
    cycle = (lambda s: s // cfg.cycle) if cfg.cycle else (lambda s: 0)
    mined = None
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            if cycle(int(saved["step"])) == cycle(step) and int(saved["step"]) <= step:
                mined = {str(c): [[int(r), int(q)] for r, q in v] for c, v in saved["cities"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            mined = None  # unreadable: mine again
    if mined is None:
        mined = mine_hard_negatives(model, scenes, device)
        atomic_write_json(path, {"step": step, "min_score": HARD_MIN_SCORE, "cities": mined})
        log.info("%s: %d hard negatives mined at step %d", out, sum(map(len, mined.values())), step)
    for c, pts in mined.items():
        if c in scenes.s:
            scenes.s[c]["hard"] = np.asarray(pts, np.int32).reshape(-1, 2)


# ------------------------------------------------------------------------------------------ training
#: Config fields added after runs were kept, and their defaults: left out of a recipe's record or key at
#: the default (``config_fields``), so averages, soups and results kept before still match their recipe.
LATER_FIELDS: dict[str, Any] = {"soup": 1, "encoder": "", "encoder_lr": 0.1}


def recipe_key(fields: dict[str, Any], cities: Sequence[str]) -> str:
    """A short digest of a recipe's ``fields`` (``config_fields``) and the cities it trains on: the key of a
    kept average or soup, or of a soup's branches."""
    return hashlib.sha256(json.dumps([fields, sorted(cities)], sort_keys=True).encode()).hexdigest()[:10]


def config_fields(cfg: SegTrainConfig, without: Sequence[str] = ("checkpoint_every", "precision")) -> dict:
    """``cfg``'s fields as a recipe record or key: less ``without``, and less ``LATER_FIELDS`` at their
    defaults."""
    return {
        n: v
        for n, v in cfg.__dict__.items()
        if n not in without and not (n in LATER_FIELDS and v == LATER_FIELDS[n])
    }


@dataclass(frozen=True)
class SegTrainConfig:
    steps: int = 1200
    batch: int = 16
    crop: int = 96
    lr: float = 3e-3
    seed: int = 0
    base: int = 16
    depth: int = 4
    p_paste: float = 0.0
    #: Share of crops given thin haze (``add_haze``).
    p_haze: float = 0.0
    #: Shares of pasted hulls repainted (``hull_colour``) and of single ones given a wake (``add_wake``).
    p_colour: float = 0.0
    p_wake: float = 0.0
    #: Share of pasted hulls berthed along a quay in the crop instead of set on open water (``quay_berths``).
    p_quay: float = 0.0
    #: Leave unlabelled objects afloat (``unlabelled_objects``) out of the loss, not taught as water.
    ignore_unlabelled: bool = False
    #: Share of crops centred on the model's own false ships in its training cities (hard negatives),
    #: mined from the checkpoint a run continues and again at the start of each later ``cycle``; taken
    #: from the 25 % of crops drawn anywhere (beyond 0.25 from the coast crops; a city with none mined
    #: gives coast crops instead). 0: off. A run from step 0 mines first at its second cycle.
    p_hard: float = 0.0
    checkpoint_every: int = 50
    #: Cosine learning-rate cycle length in steps (warm restarts, SGDR); 0: one cycle over all ``steps``.
    #: With ``cycle`` = the steps of a finished run, a longer run resumes from that run's checkpoint.
    cycle: int = 0
    #: Model pixels per 10 m scene pixel along each axis (2: a 5 m grid, bilinear; use ``crop`` 192 to keep
    #: a crop's ground footprint). The spec's ``gsd_m`` tells the detector to upsample scenes the same way.
    upsample: int = 1
    #: The eye-checked eotdl Kiel Bay chips (``detect.ships.eotdl_train``) train every model too.
    eotdl: bool = False
    #: "fp32", or "bf16": forward pass under bfloat16 autocast (weights, optimiser and loss stay fp32).
    #: On CPUs with AVX512-BF16 a training step is ~2x faster (``benchmarks/seg_train_speed.py``).
    precision: str = "fp32"
    #: The model is the mean of the weights at the ends of the last ``average`` cycles (stochastic weight
    #: averaging over the warm restarts), batch-norm statistics re-estimated on training crops; 1: the
    #: last weights. Needs ``cycle`` and the ``cycle-<step>.pt`` files ``train`` writes at each cycle's end.
    average: int = 1
    #: The model is a *model soup* of this many branches of the last ``cycle``: each continues the run's
    #: checkpoint at ``steps - cycle`` (weights and optimiser, the hard negatives mined there once) with crops
    #: of its own seed (``seed``, ``seed`` + 1, ...), and the model is their element-wise mean, batch norm
    #: re-estimated on training crops (v7's recipe: 2). 1: one run, no soup.
    soup: int = 1
    #: The network (``detect.ships.segment.ENCODERS``): "" the plain U-Net of ``base`` and ``depth``;
    #: "efficientnet-b4" a U-Net on ukis-csmask's pretrained Sentinel-2 encoder (``detect.ships.effnet``),
    #: which starts from those weights and learns at ``encoder_lr`` times the rate of the rest.
    encoder: str = ""
    encoder_lr: float = 0.1

    @property
    def gsd_m(self) -> float:
        return 10.0 / self.upsample


def encoder_problem(cfg: SegTrainConfig) -> str | None:
    """Why ``cfg``'s network options do not go together (None: they do): a pretrained encoder has its own
    shape (no ``base``/``depth``) and fixed "same" paddings that need crops of a multiple of 16 px; its rate
    means nothing without it."""
    if not cfg.encoder:
        return (
            None if cfg.encoder_lr == 0.1 else "--encoder-lr is the pretrained encoder's rate: add --encoder"
        )
    if (cfg.base, cfg.depth) != (16, 4):
        return f"the {cfg.encoder} network has its own shape: leave --base and --depth at 16 and 4"
    if cfg.crop % 16:
        return f"the {cfg.encoder} network takes crops of a multiple of 16 px, not {cfg.crop}"
    return None


def network(cfg: SegTrainConfig) -> torch.nn.Module:
    """A fresh network of ``cfg``'s architecture (random weights)."""
    return seg_network(cfg.base, cfg.depth, cfg.encoder)


def optimiser(model: torch.nn.Module, cfg: SegTrainConfig) -> torch.optim.AdamW:
    """AdamW over ``model``; a pretrained encoder's parameters in a group of their own whose rate is
    ``cfg.encoder_lr`` times the schedule's (``lr_scale`` of each group, read by ``train``)."""
    enc = model.encoder_parameters() if cfg.encoder else []
    ids = {id(q) for q in enc}
    groups = [{"params": [q for q in model.parameters() if id(q) not in ids], "lr_scale": 1.0}]
    if enc:
        groups.append({"params": enc, "lr_scale": cfg.encoder_lr})
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=1e-4)


def crop_shares(cfg: SegTrainConfig, hard: bool = True) -> dict[str, float]:
    """The augmentation shares of ``sample`` that ``cfg`` sets (``hard``: with its hard-negative share)."""
    return dict(
        p_paste=cfg.p_paste,
        p_haze=cfg.p_haze,
        p_colour=cfg.p_colour,
        p_wake=cfg.p_wake,
        p_hard=cfg.p_hard if hard else 0.0,
        p_quay=cfg.p_quay,
    )


def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Weighted BCE (hulls are rare) plus soft Dice, on both the hull and the core map. A third target
    channel, when there, is a per-pixel weight (0: left out of both terms)."""
    pos = torch.tensor([3.0, 3.0], device=logits.device).view(1, 2, 1, 1)
    if y.shape[1] == 3:
        w, y = y[:, 2:3], y[:, :2]
    else:
        w = torch.ones_like(y[:, :1])
    bce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos, reduction="none")
    bce = (bce * w).sum() / (2 * w.sum()).clamp(min=1.0)
    p = torch.sigmoid(logits) * w
    inter = (p * y).sum((0, 2, 3))
    den = (p + y * w).sum((0, 2, 3))
    return bce + 1 - ((2 * inter + 1) / (den + 1)).mean()


#: Training precisions (``SegTrainConfig.precision``).
PRECISIONS = ("fp32", "bf16")


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict on the CPU in the default memory layout (the model trains channels-last, maybe on a GPU):
    weights saved from it load anywhere, without ``map_location``."""
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` through a temporary file beside it (``imagery.atomic.atomic_path``), so a
    killed run never leaves a half-written file. Written through an open file, so the archive inside is not
    named after the temporary file: the same tensors give the same bytes, and the same sha256."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """``model``'s state dict, contiguous, written atomically to ``path`` (``_save``): a model file."""
    _save(_contiguous(model.state_dict()), path)


def optimiser_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    precision: str = "fp32",
) -> torch.Tensor:
    """One training step: the forward pass (under bfloat16 autocast for ``precision`` "bf16"), ``loss_fn``
    in fp32, backward, optimiser step. Returns the loss."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        logits = model(x)
    loss = loss_fn(logits.float(), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def learning_rate(cfg: SegTrainConfig, step: int) -> float:
    """Linear warm-up over the first 100 steps, then cosine decay to 0 over each cycle."""
    cycle = cfg.cycle or cfg.steps
    warm = min(1.0, (step + 1) / 100)
    return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * (step % cycle) / cycle))


def train(
    cache: Path,
    cities: Sequence[str],
    out: Path,
    cfg: SegTrainConfig = SegTrainConfig(),
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> torch.nn.Module:
    """Train on ``cities`` into ``out`` (``checkpoint.pt`` while running, ``model.pt`` when done);
    resumes from ``checkpoint.pt`` when one is there."""
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {cfg.precision!r}")
    problem = encoder_problem(cfg)
    if problem:
        raise InputError(problem)
    out.mkdir(parents=True, exist_ok=True)
    ck = out / "checkpoint.pt"
    torch.manual_seed(cfg.seed)
    # on the device before the optimiser: a resumed optimiser state then lands where the weights are
    # channels-last: the same arithmetic, 1.2-1.5x faster convolutions on CPU (oneDNN)
    model = network(cfg)
    if cfg.encoder and not ck.is_file():
        from detect.ships.effnet import pretrained_start

        log.info("%s: encoder from ukis-csmask (%d tensors)", out, pretrained_start(model))
    model = model.to(device, memory_format=torch.channels_last)
    opt = optimiser(model, cfg)
    step = 0
    rng = random.Random(cfg.seed)
    if ck.is_file():
        st = torch.load(ck, map_location="cpu", weights_only=False)
        try:
            model.load_state_dict(st["model"])
        except RuntimeError:
            raise InputError(
                f"{ck} holds a network of another shape (trained with another --base, --depth or "
                "--encoder): give the run's own options or another --out"
            ) from None
        kept = [g.get("lr_scale", 1.0) for g in st["opt"]["param_groups"]]
        scales = [g["lr_scale"] for g in opt.param_groups]
        if kept != scales:
            raise InputError(
                f"{ck} was trained with encoder rate scales {kept}: give the run's own --encoder-lr "
                "or another --out"
            )
        opt.load_state_dict(st["opt"])
        for g, scale in zip(opt.param_groups, scales, strict=True):  # checkpoints from before the groups
            g["lr_scale"] = scale
        step = st["step"]
        rng.setstate(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        log.info("%s: resumed at step %d", out, step)
    if step >= cfg.steps:
        return model.eval()
    scenes = TrainingScenes(cache, cities, upsample=cfg.upsample, ignore_unlabelled=cfg.ignore_unlabelled)
    model.to(device).train()
    t0, run = time.time(), 0.0
    start = step
    while step < cfg.steps:
        if cfg.p_hard > 0 and (step == start or (cfg.cycle and step % cfg.cycle == 0)):
            use_hard_negatives(model, scenes, out, step, cfg, device)  # on (re)start and at each new cycle
            model.train()
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step) * group["lr_scale"]
        shares = crop_shares(cfg)
        xs, ys = zip(*(sample(scenes, rng, cfg.crop, **shares) for _ in range(cfg.batch)), strict=True)
        x = torch.from_numpy(np.stack(xs)).to(device).contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(np.stack(ys)).to(device)
        loss = optimiser_step(model, opt, x, y, cfg.precision)
        step += 1
        run = 0.9 * run + 0.1 * loss.item() if step > 1 else loss.item()
        if cfg.cycle and step % cfg.cycle == 0:  # a cycle's end: its weights, kept for weight averaging;
            # written before the checkpoint, so a run killed between the two writes it again on resume
            save_weights(model, out / f"cycle-{step:06d}.pt")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save(
                dict(
                    model=_contiguous(model.state_dict()),
                    opt=opt.state_dict(),
                    step=step,
                    rng=rng.getstate(),
                    torch_rng=torch.get_rng_state(),
                ),
                ck,
            )
            per_step = (time.time() - t0) / cfg.checkpoint_every
            msg = f"{out.name}: step {step}/{cfg.steps} loss {run:.4f} {per_step:.2f} s/step"
            (progress or log.info)(msg)  # the CLI's progress is log.info: one line, not two
            t0 = time.time()
    save_weights(model, out / "model.pt")
    return model.eval()


# ------------------------------------------------------------------------------- weight averaging
#: Batches of training crops that re-estimate the batch-norm statistics of averaged weights.
BN_BATCHES = 100


def cycle_weights(out: Path) -> list[Path]:
    """The weights ``train`` kept at the end of each learning-rate cycle under ``out``, oldest first."""
    return sorted(out.glob("cycle-[0-9]*.pt"))


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts of one architecture; integer entries (batch-norm step counts)
    come from the last one."""
    if not states:
        raise ValueError("no weights to average")
    keys = list(states[-1])
    if any(list(st) != keys for st in states):
        raise ValueError("the weights to average are of different architectures")
    out = {}
    for k in keys:
        vs = [st[k] for st in states]
        if any(v.shape != vs[-1].shape for v in vs):
            raise ValueError(f"the weights to average differ in the shape of {k}")
        out[k] = (
            torch.stack([v.float() for v in vs]).mean(0) if vs[-1].is_floating_point() else vs[-1].clone()
        )
    return out


@torch.no_grad()
def recalibrate_bn(
    model: torch.nn.Module,
    scenes: TrainingScenes,
    cfg: SegTrainConfig,
    device: str = "cpu",
    batches: int = BN_BATCHES,
) -> torch.nn.Module:
    """Re-estimate every batch-norm layer's running mean and variance (a plain average over ``batches``
    batches of training crops, drawn as ``train`` draws them, from a fixed seed): averaged weights need
    statistics of their own. Returns the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.eval()  # only the batch norms in training mode: a pretrained encoder's stochastic depth stays off
    for m in bns:
        m.train()
    rng = random.Random(cfg.seed + 7919)
    shares = crop_shares(cfg, hard=False)
    for _ in range(batches):
        xs = [sample(scenes, rng, cfg.crop, **shares)[0] for _ in range(cfg.batch)]
        model(torch.from_numpy(np.stack(xs)).to(device))
    for m, momentum in zip(bns, momenta, strict=True):
        m.momentum = momentum
    return model.eval()


def averaged_model(
    cache: Path, cities: Sequence[str], out: Path, cfg: SegTrainConfig, device: str = "cpu"
) -> torch.nn.Module:
    """The mean of the last ``cfg.average`` cycle-end weights of the run in ``out`` up to ``cfg.steps``,
    batch norm re-estimated on ``cities`` (``recalibrate_bn``); kept as ``out/model-avg<k>-<steps>-<key>.pt``
    (``key``: a digest of everything the result depends on) and read from there on later calls."""
    k = cfg.average
    path = out / f"model-avg{k}-{cfg.steps}-{recipe_key(config_fields(cfg), cities)}.pt"
    model = network(cfg)
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.to(device).eval()
    if not cfg.cycle:
        raise InputError("weight averaging needs learning-rate cycles (--restart-every)")
    at = {p: int(p.stem.split("-")[1]) for p in cycle_weights(out)}
    ends = [p for p, n in at.items() if n <= cfg.steps and n % cfg.cycle == 0][-k:]
    if len(ends) < k:
        raise InputError(f"{out}: {len(ends)} cycle-end weights to average, {k} asked for")
    model = mean_model(ends, cache, cities, cfg, device)
    save_weights(model, path)
    log.info("%s: mean of %s, batch norm re-estimated", path, ", ".join(p.name for p in ends))
    return model


def soup_model(
    cache: Path,
    cities: Sequence[str],
    out: Path,
    cfg: SegTrainConfig,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> torch.nn.Module:
    """``cfg.soup`` branches of the run in ``out`` and their mean (``SegTrainConfig.soup``): the run is
    trained (or resumed) to ``steps - cycle`` in ``out``, branch ``b`` continues its checkpoint in
    ``out/branch<b>`` with crops drawn from seed ``cfg.seed + b``, and the soup (batch norm re-estimated on
    ``cities``) is kept as ``out/model-soup<n>-<steps>-<key>.pt``, read from there on later calls. Every part
    resumes where it stopped."""
    if cfg.soup < 2:
        raise InputError("a soup needs two branches or more")
    problem = soup_problem(cfg)
    if problem:
        raise InputError(problem)
    stem_steps = cfg.steps - cfg.cycle
    path = out / f"model-soup{cfg.soup}-{cfg.steps}-{recipe_key(config_fields(cfg), cities)}.pt"
    # what a branch depends on: the soup's recipe and cities, less how many branches it has
    branch_key = recipe_key(config_fields(cfg, without=("checkpoint_every", "precision", "soup")), cities)
    model = network(cfg)
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.to(device).eval()
    ck = out / "checkpoint.pt"
    if ck.is_file():
        at = int(torch.load(ck, map_location="cpu", weights_only=False)["step"])
        if at > stem_steps:
            raise InputError(
                f"{ck} is at step {at}, past {stem_steps} where the soup's branches start: give the run's "
                "own --steps, or another --out"
            )
    stem = train(cache, cities, out, replace(cfg, steps=stem_steps), device=device, progress=progress)
    if cfg.p_hard > 0:  # mined once from the stem; every branch reads the same ones
        scenes = TrainingScenes(cache, cities, upsample=cfg.upsample, ignore_unlabelled=cfg.ignore_unlabelled)
        use_hard_negatives(stem, scenes, out, stem_steps, cfg, device)
    branches = []
    for b in range(cfg.soup):
        bd = out / f"branch{b}"
        start_branch(out, bd, draw=branch_draw(cfg.seed + b, stem_steps), recipe={"recipe": branch_key})
        train(cache, cities, bd, replace(cfg, seed=cfg.seed + b, soup=1), device=device, progress=progress)
        branches.append(bd / f"cycle-{cfg.steps:06d}.pt")
    model = mean_model(branches, cache, cities, cfg, device)
    save_weights(model, path)
    log.info("%s: mean of %d branches, batch norm re-estimated", path, len(branches))
    return model


def soup_problem(cfg: SegTrainConfig) -> str | None:
    """Why ``cfg`` cannot be made as a soup (None: it can, or it asks for none): its branches are the last
    learning-rate cycle, and a soup is not also a mean of cycles."""
    if cfg.soup < 2:
        return None
    if not cfg.cycle or cfg.steps % cfg.cycle or cfg.steps < 2 * cfg.cycle:
        return (
            "a soup's branches are the last learning-rate cycle: --restart-every R with --steps a multiple "
            "of R, at least 2 x R"
        )
    if cfg.average > 1:
        return "a soup of branches and the mean of a run's cycles are two models: ask for one"
    return None


def soup_provenance(weights: Sequence[Path], names: Sequence[str]) -> dict[str, Any]:
    """What a soup's spec records under ``metrics.training``: its ingredients (``names``, the sha256 of
    ``weights``) and how its batch norm was set."""
    from detect.core.weights import sha256_file

    return {
        "soup": {
            "of": list(names),
            "sha256": [sha256_file(p) for p in weights],
            "batch_norm": f"re-estimated on {BN_BATCHES} batches of training crops of every city",
        }
    }


def start_branch(stem: Path, here: Path, draw: int, recipe: dict[str, Any] | None = None) -> None:
    """Start a branch in ``here`` from ``stem``'s checkpoint (weights, optimiser, step) and hard negatives,
    with its random states drawn afresh from ``draw``: branches of one stem differ only in the crops drawn
    from there. Once: a branch that has its own checkpoint resumes from it, if ``here/branch.json`` says it
    was started from the same step with the same ``draw`` and ``recipe``; any other is refused (another
    ``--steps``, ``--seed`` or recipe in the same folder)."""
    from imagery.atomic import atomic_write_json

    if not (stem / "checkpoint.pt").is_file():
        raise InputError(f"{stem} has no checkpoint.pt to branch from")
    st = torch.load(stem / "checkpoint.pt", map_location="cpu", weights_only=False)
    record = json.loads(json.dumps({"from_step": int(st["step"]), "draw": draw, **(recipe or {})}))
    if (here / "checkpoint.pt").is_file():
        try:
            kept = json.loads((here / "branch.json").read_text())
        except (OSError, ValueError):
            kept = None
        if kept != record:
            raise InputError(
                f"{here} is a branch of another step, seed or recipe ({here / 'branch.json'}): give the "
                "run's own options, or another --out"
            )
        return
    here.mkdir(parents=True, exist_ok=True)
    atomic_write_json(here / "branch.json", record)
    branch_checkpoint(stem, here, draw, st)


def branch_draw(seed: int, step: int) -> int:
    """The seed of a branch's random states: its crop ``seed`` and the ``step`` it starts from, so branches of
    one seed draw the same crops from one checkpoint (paired) and other seeds others."""
    return seed * 1_000_003 + step


def branch_checkpoint(stem: Path, here: Path, draw: int, st: dict[str, Any]) -> None:
    """Copy ``stem``'s hard negatives into ``here``, then its checkpoint ``st`` (as read from ``stem``) with
    the random states drawn afresh from ``draw``; the checkpoint last, so a branch killed before it is
    started again."""
    import os
    import shutil

    hard = stem / "hard_negatives.json"
    if hard.is_file():
        shutil.copy2(hard, here / f".{hard.name}.part")
        os.replace(here / f".{hard.name}.part", here / hard.name)
    st["rng"] = random.Random(draw).getstate()
    st["torch_rng"] = torch.Generator().manual_seed(draw).get_state()
    _save(st, here / "checkpoint.pt")


def fit_model(
    cache: Path,
    cities: Sequence[str],
    out: Path,
    cfg: SegTrainConfig,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> torch.nn.Module:
    """The model ``cfg`` asks for, trained (or resumed) in ``out``: one run, the mean of its last cycles
    (``cfg.average``) or a soup of branches of its last cycle (``cfg.soup``)."""
    if cfg.soup > 1:
        return soup_model(cache, cities, out, cfg, device=device, progress=progress)
    model = train(cache, cities, out, cfg, device=device, progress=progress)
    if cfg.average > 1:
        model = averaged_model(cache, cities, out, cfg, device=device)
    return model


def mean_model(
    weights: Sequence[Path], cache: Path, cities: Sequence[str], cfg: SegTrainConfig, device: str = "cpu"
) -> torch.nn.Module:
    """The element-wise mean of the state dicts in ``weights`` (one architecture: ``cfg.base``,
    ``cfg.depth`` and ``cfg.encoder``), batch norm re-estimated on ``cities`` (``recalibrate_bn``), in eval
    mode. The weights are a run's cycle ends (``averaged_model``) or the same fold's models of branches
    trained from one checkpoint (a "model soup", ``benchmarks/seg_cv_rescore.py --soup``)."""
    model = network(cfg)
    model.load_state_dict(
        average_states([torch.load(p, map_location="cpu", weights_only=True) for p in weights])
    )
    scenes = TrainingScenes(cache, cities, upsample=cfg.upsample, ignore_unlabelled=cfg.ignore_unlabelled)
    return recalibrate_bn(model.to(device), scenes, cfg, device)


# ---------------------------------------------------------------------------------- cross-validation
#: Length classes (m) for recall by ship size, as in the issue tracker's CV table.
LENGTH_CLASSES = ((0.0, 80.0), (80.0, 150.0), (150.0, math.inf))
#: Band sets each held-out city is also scored with (when it has them): how the model fares on a scene
#: that offers only these. "rgb8" is true colour quantised to 8 bits and decoded as 8-bit files are.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {"water": True},  # the shipped detector: every model band the scene has, water check on
    "no_water": {},
    "B08": {"bandset": ("B08",), "water": True},
    "rgb": {"bandset": TRUE_COLOUR, "water": True},
    "rgb8": {"bandset": TRUE_COLOUR, "rgb8": True, "water": True},
}
INNER_CITIES = 2
THRESHOLDS = tuple(round(0.3 + 0.025 * i, 3) for i in range(27))  # 0.3 … 0.95


def scene_record(preds: Sequence[Any], truths: Sequence[Any], threshold: float) -> dict[str, Any]:
    """What pooling needs from one scene: counts at the threshold, matched truths, length errors and the
    inputs of AP: every prediction's score, whether it is a hit for AP50 (``ap_hits``) and under the
    counting rule of P, R and F1 (``hits``: matching is greedy in score order, so the hits at any higher
    threshold are these hits of the predictions that reach it)."""
    from detect.ships.evaluate import match_scene

    m = match_scene(preds, truths)
    op = [d for d in preds if d.score >= threshold]
    mo = match_scene(op, truths)
    matched = [False] * len(truths)
    errs = []
    for i, j in enumerate(mo.match):
        if j >= 0:
            matched[j] = True
            errs.append(float(mo.pred_len[i] - truths[j].length_m))
    return {
        "n_truth": len(truths),
        "n_pred": len(op),
        "tp": int((mo.match >= 0).sum()),
        "truth_len": [float(t.length_m) for t in truths],
        "truth_matched": matched,
        "len_err": errs,
        "ap_scores": [float(x) for x in m.scores],
        "ap_hits": [bool(x) for x in m.ap_hit],
        "hits": [bool(j >= 0) for j in m.match],
    }


def pool(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pooled P, R, F1, AP50, count MAE per scene, length MAE and recall by length class; where every record
    has ``hits`` (``scene_record`` since session 20), also two scores that no threshold choice moves, under
    the counting rule of P, R and F1: ``ap_count`` (average precision) and ``f1_best`` (the pooled F1 at the
    best threshold for these very scenes: an upper bound, not a result)."""
    from detect.ships.evaluate import average_precision

    tp = sum(r["tp"] for r in records)
    n_pred = sum(r["n_pred"] for r in records)
    n_truth = sum(r["n_truth"] for r in records)
    p = tp / n_pred if n_pred else 0.0
    r_ = tp / n_truth if n_truth else 0.0
    f1 = 2 * p * r_ / (p + r_) if p + r_ else 0.0
    scores = np.concatenate([np.asarray(r["ap_scores"], float) for r in records]) if records else np.zeros(0)
    hits = np.concatenate([np.asarray(r["ap_hits"], bool) for r in records]) if records else np.zeros(0, bool)
    errs = [abs(e) for r in records for e in r["len_err"]]
    out = {
        "precision": round(p, 3),
        "recall": round(r_, 3),
        "f1": round(f1, 3),
        "ap50": round(float(average_precision(scores, hits, n_truth)), 3),
        "count_mae": round(float(np.mean([abs(r["n_pred"] - r["n_truth"]) for r in records])), 2)
        if records
        else None,
        "length_mae_m": round(float(np.mean(errs)), 1) if errs else None,
        "n_truth": n_truth,
        "n_pred": n_pred,
        "tp": tp,
    }
    out.update(threshold_free(records, scores, n_truth))
    lens = [
        (length, hit) for r in records for length, hit in zip(r["truth_len"], r["truth_matched"], strict=True)
    ]
    for lo, hi in LENGTH_CLASSES:
        sel = [hit for length, hit in lens if lo <= length < hi]
        key = f"recall_{int(lo)}_{'up' if math.isinf(hi) else int(hi)}m"
        out[key] = round(sum(sel) / len(sel), 3) if sel else None
        out[key.replace("recall", "n")] = len(sel)
    return out


def threshold_free(
    records: Sequence[dict[str, Any]], scores: np.ndarray, n_truth: int
) -> dict[str, float | None]:
    """``ap_count`` and ``f1_best`` of ``pool`` from its records and their predictions' ``scores`` (pooled in
    record order; None where a record lacks ``hits``)."""
    from detect.ships.evaluate import average_precision

    if not records or any("hits" not in r for r in records):
        return {"ap_count": None, "f1_best": None}
    hits = np.concatenate([np.asarray(r["hits"], bool) for r in records])
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    n = np.arange(1, len(order) + 1)
    last = np.r_[scores[order][1:] != scores[order][:-1], True]  # a threshold keeps every tie
    f1 = 2 * tp[last] / (n[last] + n_truth) if len(order) else np.zeros(0)
    return {
        "ap_count": round(float(average_precision(scores, hits, n_truth)), 3),
        "f1_best": round(float(f1.max()), 3) if len(f1) else 0.0,
    }


def records_by_threshold(
    found: dict[str, tuple[list, list]], thresholds: Sequence[float] = THRESHOLDS
) -> dict[float, list[dict[str, Any]]]:
    """{threshold: [scene record of each city]} of ``detect_cities``' output, at every threshold."""
    return {t: [scene_record(p, tr, t) for p, tr in found.values()] for t in thresholds}


def best_threshold(records_by_t: dict[float, list[dict[str, Any]]]) -> tuple[float, float]:
    """The threshold with the best pooled F1 (the lowest one on ties)."""
    best = (0.5, -1.0)
    for t, recs in records_by_t.items():
        f1 = pool(recs)["f1"]
        if f1 > best[1] + 1e-9:
            best = (t, f1)
    return best


def read_city(data: Path, city: str, bandset: Sequence[str] | None = None, rgb8: bool = False):
    """A sen2ships city as a user's file would come in: the model bands it has (or only ``bandset``), on
    its UTM grid; ``rgb8`` re-encodes true colour as an 8-bit file would hold it."""
    have = [b for b in SEG_BANDS if b in available_bands(data, city)]
    if bandset is not None:
        have = [b for b in have if b in bandset]
    if not usable_bands(have):  # e.g. san_francisco (B02 B03 B11): it trains the model, it can't be scored
        return None
    window = open_raster(data / city, have, scale=SEN2SHIPS_SCALE, scene_id=city)
    if rgb8:
        arr = np.array(window.data)
        for i in range(len(window.band_names)):
            arr[i] = tci_to_reflectance(
                np.round(255 * np.clip(arr[i] / (255 * TRUE_COLOUR_8BIT_SCALE), 0, 1))
            )
        window = replace(window, data=arr)
    return window


def dark_reference(data: Path, cities: Sequence[str]) -> dict[str, float]:
    """Median over the sen2ships ``cities`` the detector can read (as read: L2A) of each model band's dark
    level (``detect.core.haze.dark_levels``): the level dark-object subtraction brings a scene back to."""
    from detect.core.haze import dark_levels

    levels: dict[str, list[float]] = {}
    for c in cities:
        w = read_city(data, c) if (data / c).is_dir() else None
        if w is None:
            continue
        for b, v in dark_levels(w.data, w.band_names, w.valid_mask).items():
            levels.setdefault(b, []).append(v)
    return {b: round(float(np.median(levels[b])), 4) for b in SEG_BANDS if b in levels}


def detect_cities(
    seg: Any, data: Path, cities: Sequence[str], variant: dict[str, Any], truth: dict[str, list]
) -> dict[str, tuple[list, list]]:
    """{city: (detections with score >= 0.05, truths)} for one variant of ``seg`` (a
    ``detect.ships.segment.SegModel``, or one of its subclasses such as an ensemble)."""
    from detect.ships.segment import SegShipDetector

    det = SegShipDetector(seg, conf=0.0, water_mask=bool(variant.get("water")))
    out = {}
    for c in cities:
        w = read_city(data, c, variant.get("bandset"), bool(variant.get("rgb8")))
        if w is not None:
            out[c] = (det.detect(w, conf=0.05), truth.get(c, []))
    return out


def extra_scenes(cfg: SegTrainConfig, eotdl: Path | None, cache: Path) -> list[str]:
    """The training scenes beyond sen2ships that every model of a run trains on: the eotdl mosaic when
    ``cfg.eotdl`` (its chips under ``eotdl``)."""
    if not cfg.eotdl:
        return []
    if eotdl is None:
        raise InputError("training with the eotdl chips needs their folder (eotdl-s2-ships, docs/data.md)")
    from detect.ships.eotdl_train import prepare_eotdl

    return [prepare_eotdl(eotdl, cache)]


def cv_setup(data: Path, cache: Path, k: int = 5) -> tuple[list[str], list[dict[str, list[str]]], dict]:
    """What every cross-validation of sen2ships starts from: the cities prepared in ``cache``, their
    ``fold_plan`` and the labelled vessels of each city."""
    from detect.ships.evaluate import load_coco_truth

    cities = prepare(data, cache)
    return cities, fold_plan(cities, k), load_coco_truth(data / "annotations_coco.json", data, cities)


def fold_plan(cities: Sequence[str], k: int) -> list[dict[str, list[str]]]:
    """Leave-cities-out folds (``detect.ships.train.make_folds``), each with its inner threshold cities."""
    from detect.ships.train import make_folds

    plan = []
    for f, held in enumerate(make_folds(cities, k)):
        train_cities = sorted(set(cities) - set(held))
        inner = sorted(random.Random(f).sample(train_cities, INNER_CITIES))
        plan.append({"held_out": held, "inner": inner, "fit": sorted(set(train_cities) - set(inner))})
    return plan


def score_fold(
    seg: Any,
    data: Path,
    fold: dict[str, list[str]],
    truth: dict[str, list],
    progress: Callable[[str], None] | None = None,
    label: str = "fold",
    variants: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One fold's result: its threshold chosen on its inner cities, then every ``VARIANTS`` entry (or those
    named in ``variants``) scored on its held-out cities at that threshold (what ``result.json`` holds)."""
    unknown = set(variants or ()) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    inner = detect_cities(seg, data, fold["inner"], VARIANTS["default"], truth)
    threshold, inner_f1 = best_threshold(records_by_threshold(inner))
    res = {**fold, "threshold": threshold, "inner_f1": inner_f1, "variants": {}}
    for name, variant in VARIANTS.items():
        if variants is not None and name not in variants:
            continue
        found = detect_cities(seg, data, fold["held_out"], variant, truth)
        res["variants"][name] = {c: scene_record(p, tr, threshold) for c, (p, tr) in found.items()}
        if progress:
            s = pool(list(res["variants"][name].values()))
            progress(f"{label} {name}: P {s['precision']} R {s['recall']} F1 {s['f1']} AP50 {s['ap50']}")
    return res


def cross_validate(
    data: Path,
    out: Path,
    cfg: SegTrainConfig,
    k: int = 5,
    device: str = "cpu",
    folds: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
    rescore: bool = False,
    eotdl: Path | None = None,
) -> dict[str, Any]:
    """Train and score every fold (a finished fold's ``result.json`` is kept, or with ``rescore`` scored
    again with this code from its trained model), then pool the scores."""
    from detect.ships.segment import SegModel, SegSpec

    cache = out / "scenes"
    _, plan, truth = cv_setup(data, cache, k)
    extra = extra_scenes(cfg, eotdl, cache)
    for f, fold in enumerate(plan):
        if folds is not None and f not in folds:
            continue
        fd = out / f"fold{f}"
        res_path = fd / "result.json"
        if rescore or not scored_with(res_path, cfg):
            res_path.unlink(missing_ok=True)
        if res_path.is_file():
            continue
        if progress:
            progress(
                f"fold {f}: held out {', '.join(fold['held_out'])}; threshold from {', '.join(fold['inner'])}"
            )
        model = fit_model(cache, fold["fit"] + extra, fd, cfg, device=device, progress=progress)
        spec = SegSpec(name=f"fold{f}", base=cfg.base, depth=cfg.depth, gsd_m=cfg.gsd_m, encoder=cfg.encoder)
        seg = SegModel(model, spec)
        res = score_fold(seg, data, fold, truth, progress=progress, label=f"fold {f}")
        from imagery.atomic import atomic_write_json

        atomic_write_json(res_path, {**res, "recipe": recipe_of(cfg)})
    return summarise(out, plan, cfg)


def recipe_of(cfg: SegTrainConfig) -> dict[str, Any]:
    """What a fold's model depends on: ``cfg`` less how often it checkpoints and its arithmetic."""
    return config_fields(cfg)


def scored_with(res_path: Path, cfg: SegTrainConfig) -> bool:
    """Whether a fold's ``result.json`` (if any) scored the model ``cfg`` asks for: a later stage of a run
    (more ``steps``, a soup) trains and scores the fold again. Results written before the recipe was kept in
    them are taken as they are."""
    if not res_path.is_file():
        return True
    try:
        kept = json.loads(res_path.read_text()).get("recipe")
    except (OSError, ValueError, AttributeError):
        return False
    return kept is None or kept == json.loads(json.dumps(recipe_of(cfg)))


def summarise(out: Path, plan: Sequence[dict[str, Any]], cfg: SegTrainConfig | None = None) -> dict[str, Any]:
    """Pooled and per-fold scores of the finished folds under ``out``, per variant; with ``cfg``, only the
    folds scored with its recipe (``scored_with``: a fold left at an earlier stage by ``--folds`` is not
    pooled with the others)."""
    results = []
    for f in range(len(plan)):
        p = out / f"fold{f}" / "result.json"
        if p.is_file() and cfg is not None and not scored_with(p, cfg):
            log.warning("fold %d: scored with another recipe (%s); left out of the summary", f, p)
        elif p.is_file():
            results.append((f, json.loads(p.read_text())))
    summary: dict[str, Any] = {
        "folds_done": [f for f, _ in results],
        "k": len(plan),
        "thresholds": {f"fold{f}": r["threshold"] for f, r in results},
        "held_out": {f"fold{f}": r["held_out"] for f, r in results},
    }
    for name in VARIANTS:
        recs = [rec for _, r in results for rec in r["variants"].get(name, {}).values()]
        summary[name] = {
            "pooled": pool(recs),
            "per_fold_f1": {
                f"fold{f}": pool(list(r["variants"][name].values()))["f1"]
                for f, r in results
                if r["variants"].get(name)
            },
            "cities": sorted(c for _, r in results for c in r["variants"].get(name, {})),
        }
    return summary


def card_metrics(summary: dict[str, Any], cities: Sequence[str], cfg: SegTrainConfig) -> dict[str, Any]:
    """The metrics block of the model's JSON spec, all from ``summarise`` (nothing typed in by hand)."""
    by_input = {name: v["pooled"] for name, v in summary.items() if name in VARIANTS and isinstance(v, dict)}
    return {
        "cv": {
            "protocol": f"leave-cities-out {summary.get('k', '?')}-fold CV on sen2ships trainval, whole "
            "held-out scenes, match IoU >= 0.1 or centres <= 30 m; each fold's threshold chosen on "
            f"{INNER_CITIES} of its training cities held out of its training",
            "pooled": by_input.get("default", {}),
            "folds_completed": summary.get("folds_done", []),
            "per_fold_f1": (summary.get("default") or {}).get("per_fold_f1", {}),
            "thresholds": summary.get("thresholds", {}),
            "held_out": summary.get("held_out", {}),
            "by_input": by_input,
        },
        "training": {"cities": list(cities), "config": dict(cfg.__dict__)},
    }


def train_final(
    data: Path,
    out: Path,
    cfg: SegTrainConfig,
    summary: dict[str, Any] | None,
    name: str,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
    eotdl: Path | None = None,
) -> Path:
    """Train on every city; write ``<name>.pt`` and its spec (threshold: the median of the folds' inner
    thresholds, metrics: the CV summary) under ``out/final``. Returns the .pt path."""
    cache = out / "scenes"
    cities = prepare(data, cache) + extra_scenes(cfg, eotdl, cache)
    model = fit_model(cache, cities, out / "final", cfg, device=device, progress=progress)
    training = None
    if cfg.soup > 1:
        weights = [out / "final" / f"branch{b}" / f"cycle-{cfg.steps:06d}.pt" for b in range(cfg.soup)]
        training = soup_provenance(weights, [str(p.relative_to(out)) for p in weights])
    return write_model(model, out / "final" / f"{name}.pt", data, cities, cfg, summary, training=training)


def write_model(
    model: torch.nn.Module,
    pt: Path,
    data: Path,
    cities: Sequence[str],
    cfg: SegTrainConfig,
    summary: dict[str, Any] | None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights to ``pt`` and its spec beside it (``.json``, named by ``pt``'s stem):
    threshold the median of the CV folds' inner thresholds in ``summary`` (0.5 without one), the dark
    reference of ``cities``, the sha256, and metrics from ``summary`` (``card_metrics``) with ``training``
    added to their training block."""
    from detect.core.weights import sha256_file
    from detect.ships.segment import SegSpec

    thresholds = list((summary or {}).get("thresholds", {}).values())
    threshold = float(np.median(thresholds)) if thresholds else 0.5
    save_weights(model, pt)
    metrics = card_metrics(summary or {}, cities, cfg)
    metrics["training"].update(training or {})
    SegSpec(
        name=pt.stem,
        base=cfg.base,
        depth=cfg.depth,
        encoder=cfg.encoder,
        gsd_m=cfg.gsd_m,
        threshold=threshold,
        dark_reference=dark_reference(data, cities),
        sha256=sha256_file(pt),
        metrics=metrics,
    ).write(pt.with_suffix(".json"))
    return pt
