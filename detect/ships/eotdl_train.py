"""The eotdl Sentinel-2-Ships chips (Kiel Bay, Kiel Canal, Little Belt; T32UNF 2022-08-12) as extra training
data for the hull-segmentation model, after an eye check of every chip's label.

Each chip's label is a polygon made from its ship's AIS (sometimes with parts on vessels near it); other
vessels in the chip are not labelled (docs/data.md). So a chip trains the model only where its label was seen
to lie on hulls (``EYE_CHECK``), and every other bright object afloat in it is left out of the loss (weight
0), neither hull nor water. The checked chips are laid side by side, each reprojected onto its UTM 10 m grid,
in one mosaic scene ``eotdl`` of the training cache, so that they weigh as one city of their number of ships
when crops are drawn (``TrainingScenes``), and the copy-paste bank gains their hulls.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.warp import (
    aligned_target,
    calculate_default_transform,
    reproject,
    transform_bounds,
    transform_geom,
)
from scipy import ndimage

from detect.ships.dataset import write_scene
from detect.ships.segment import SEG_BANDS
from imagery.aoi import utm_crs_for
from imagery.errors import InputError

log = logging.getLogger(__name__)

#: Band order of the eotdl chips (12 bands, no descriptions in the files), values = reflectance x 10,000.
EOTDL_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
EOTDL_SCALE = 1e-4
#: The scene name of the mosaic in the training cache.
EOTDL_SCENE = "eotdl"
#: sen2ships labels vessels of roughly 40 m and up; shorter AIS vessels do not train the model.
MIN_LENGTH_M = 40.0
#: The eye check (session 13): each chip's RGB at 4-8x with every part of its label drawn on it, judged
#: without any model's output. A chip's label is a (multi)polygon on its AIS ship and sometimes on other
#: vessels near it. "hull": every part lies on a vessel's hull (within about a pixel); "offset": shifted off
#: the hull; "no hull": no vessel can be told apart at the label (on a pier, in a marina, on land); "other
#: ship": the label lies only on a vessel other than the chip's AIS ship, which another chip labels; "short":
#: the only labelled vessel is shorter than ``MIN_LENGTH_M`` (small craft, which sen2ships does not label).
#: Only "hull" chips train; in them, the parts in ``IGNORED_PARTS`` (small craft, spray) are left out of the
#: loss like unlabelled objects, and every other part is a hull.
EYE_CHECK: dict[int, str] = {
    209075000: "hull",  # 104 m under way, Kiel Bay
    210017000: "offset",  # 151 m, Kiel Canal: polygon ~3 px along-track behind the hull
    210167000: "hull",  # 142 m, Kiel Canal
    210332000: "hull",  # 168 m under way, long wake outside the polygon
    210359000: "hull",  # 152 m, Kiel Canal (two overlapping parts on the one ship)
    211215730: "no hull",  # 48 m: polygon on a pier
    211216570: "hull",  # 55 m
    211222710: "hull",  # 27 m boat (part 0, short) and a ~60 m vessel beside it (part 1), Kiel Canal
    211223120: "short",  # 33 m
    211336340: "no hull",  # 28 m, in a marina
    211367180: "no hull",  # 15 m, on a marina pontoon
    211533370: "short",  # 18 m pilot boat; the 99 m ship beside it trains from chip 275519000
    211769770: "short",  # 15 m
    211812780: "short",  # 16 m
    211848130: "other ship",  # 34 m by AIS; the polygon is on the 304 m ship at the quay (chip 247353700)
    211855000: "hull",  # 160 m, Kiel Canal
    219000606: "hull",  # 70 m under way
    219000674: "hull",  # 50 m, long wake outside the polygon
    219000836: "hull",  # 60 m, wake outside the polygon
    219001431: "hull",  # 54 m
    219001647: "short",  # 36 m, beside a bridge
    219003217: "short",  # 15 m
    219026197: "hull",  # 50 m
    219850000: "short",  # 33 m
    244780000: "hull",  # 95 m under way
    247353700: "hull",  # 304 m moored at a quay
    255806511: "hull",  # 153 m, Kiel Canal
    265411000: "hull",  # 170 m and a ~50 m vessel, Kiel Canal
    275496000: "hull",  # 91 m at anchor
    275519000: "hull",  # 99 m under way (part 1); part 0 is the pilot boat's spray, left out
    308924000: "hull",  # 83 m under way (part 1); part 0 a small boat (short)
    636092240: "hull",  # 155 m, Kiel Canal
    636092297: "hull",  # 115 m, a ~60 m barge and the 142 m ship of chip 210167000, Kiel Canal
}
#: Label parts (index in the label file's order) seen to be small craft or spray, not a hull of
#: ``MIN_LENGTH_M`` or more: left out of the loss. (A part's drawn length is no guide: the 27 m boat's polygon
#: is ~50 m long.)
IGNORED_PARTS: dict[int, tuple[int, ...]] = {
    211222710: (0,),  # the 27 m boat; part 1 is the ~60 m vessel beside it
    275519000: (0,),  # the 18 m pilot boat's spray
    308924000: (0,),  # a small boat west of the 83 m ship
}
#: Raise when the mosaic is made differently, so that prepared caches are made again.
MOSAIC_VERSION = 1
#: Pixels of invalid gutter between the chips of the mosaic.
GUTTER = 8
#: Objects afloat left out of the loss: NIR above the local (15 px median) background by this much ...
IGNORE_NIR_EXCESS = 0.025
#: ... at least this many pixels, with at least half of the ring around them water (NDWI > 0).
IGNORE_MIN_PX = 2


def chip_mmsi(tif: Path) -> int:
    return int(tif.stem.split("_")[1])


def checked_chips(root: Path) -> list[Path]:
    """The chips of ``root`` whose label passed the eye check (``EYE_CHECK`` "hull"), sorted; InputError
    when there are none."""
    tifs = sorted((root / "chips").glob("ship_*_*.tif"))
    if not tifs:
        raise InputError(f"no eotdl chips (chips/ship_<MMSI>_<date>.tif) under {root} (docs/data.md)")
    try:
        ok = [t for t in tifs if EYE_CHECK.get(chip_mmsi(t)) == "hull"]
    except ValueError as e:
        raise InputError(f"{root / 'chips'}: a chip not named ship_<MMSI>_<date>.tif ({e})") from None
    if not ok:
        raise InputError(f"none of the {len(tifs)} chips under {root} passed the eye check (EYE_CHECK)")
    return ok


def afloat_objects(img: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Bright objects afloat that carry no label (boats, unlabelled ships, buoys), grown by a pixel: NIR
    above its local background by ``IGNORE_NIR_EXCESS``, mostly ringed by water, not touching ``keep`` (the
    labelled hull, whose wake then stays a negative). ``img``: a chip's ``SEG_BANDS`` (the eotdl chips have
    all of them)."""
    b3, b8 = img[SEG_BANDS.index("B03")], img[SEG_BANDS.index("B08")]
    water = (b3 - b8) / (b3 + b8 + 1e-6) > 0
    excess = b8 - ndimage.median_filter(b8, 15)
    lab, _ = ndimage.label(excess > IGNORE_NIR_EXCESS)
    near_label = ndimage.binary_dilation(keep, iterations=2)
    out = np.zeros(b8.shape, bool)
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(0, s.start - 3), s.stop + 3) for s in sl)
        m = lab[sl] == k
        if m.sum() < IGNORE_MIN_PX or (m & near_label[sl]).any():
            continue
        ring = ndimage.binary_dilation(m, iterations=2) & ~m
        if water[sl][ring].mean() >= 0.5:
            out[sl] |= ndimage.binary_dilation(m)
    return out & ~keep


@contextmanager
def _quiet_gdal():
    """The eotdl TIFFs make GDAL warn about their photometric tags on every read; those warnings say nothing
    about the data, so they are held back while a chip is read."""
    logger = logging.getLogger("rasterio._env")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def label_parts(label: dict) -> list[dict]:
    """Every polygon of a chip's label file, in the file's order (a MultiPolygon gives one per part)."""
    parts = []
    for f in label.get("features", []):
        g = f.get("geometry") or {}
        if g.get("type") == "Polygon":
            parts.append(g)
        elif g.get("type") == "MultiPolygon":
            parts += [{"type": "Polygon", "coordinates": c} for c in g["coordinates"]]
    return parts


def read_chip(tif: Path) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """One chip on its UTM 10 m grid: (reflectance of ``SEG_BANDS`` (5, h, w), one mask per label part,
    valid mask)."""
    label_path = Path(str(tif)[: -len(".tif")] + "_labels.geojson")
    try:
        label = json.loads(label_path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{label_path.name}: unreadable label ({e})") from None
    with _quiet_gdal(), rasterio.open(tif) as src:
        if src.count != len(EOTDL_BANDS):
            raise InputError(f"{tif.name}: {src.count} bands, the eotdl chips have {len(EOTDL_BANDS)}")
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        lon, lat = (west + east) / 2, (south + north) / 2
        utm = utm_crs_for(lon, lat)
        transform, w, h = calculate_default_transform(
            src.crs, utm, src.width, src.height, *src.bounds, resolution=10.0
        )
        # on whole multiples of 10 m, as Sentinel-2's own UTM grid (one resampling, not two)
        transform, w, h = aligned_target(transform, w, h, 10.0)
        img = np.zeros((len(SEG_BANDS), h, w), np.float32)
        for i, b in enumerate(SEG_BANDS):
            reproject(
                src.read(EOTDL_BANDS.index(b) + 1).astype(np.float32) * EOTDL_SCALE,
                img[i],
                src_transform=src.transform,
                src_crs=src.crs,
                dst_transform=transform,
                dst_crs=utm,
                resampling=Resampling.bilinear,
                dst_nodata=np.nan,
            )
    valid = np.isfinite(img).all(0)
    img[:, ~valid] = 0
    masks = [  # GeoJSON is WGS84 longitude, latitude
        rasterize(
            [transform_geom("EPSG:4326", utm, g)], out_shape=(h, w), transform=transform, dtype="uint8"
        ).astype(bool)
        & valid
        for g in label_parts(label)
    ]
    return img, masks, valid


def check_digest(chips: Sequence[Path]) -> str:
    """What a prepared mosaic depends on besides the pixels: the chips, the eye check and the rules."""
    key = [
        [t.name for t in chips],
        sorted(EYE_CHECK.items()),
        sorted(IGNORED_PARTS.items()),
        [GUTTER, IGNORE_NIR_EXCESS, IGNORE_MIN_PX, MOSAIC_VERSION],
    ]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def prepare_eotdl(root: Path, cache: Path) -> str:
    """The eye-checked eotdl chips as one mosaic scene ``cache/eotdl.npz`` (the format of
    ``segment_train.prepare``, plus ``ignore``: unlabelled objects afloat and the no-data between chips, out
    of the loss). Returns the scene name. An existing file made from the same chips and eye check is kept;
    InputError when no chip passed the check."""
    out = cache / f"{EOTDL_SCENE}.npz"
    chips = checked_chips(root)
    digest = check_digest(chips)
    if out.is_file():
        with np.load(out) as z:
            if "check" in z.files and str(z["check"]) == digest:
                return EOTDL_SCENE
        log.info("%s: made from other chips or another eye check; made again", out)
    read = [read_chip(t) for t in chips]
    slot = max(max(v.shape) for _, _, v in read) + GUTTER
    cols = math.ceil(math.sqrt(len(read)))
    rows = math.ceil(len(read) / cols)
    img = np.zeros((len(SEG_BANDS), rows * slot, cols * slot), np.float32)
    inst = np.zeros(img.shape[1:], np.int16)
    valid = np.zeros(img.shape[1:], bool)
    ignore = np.zeros(img.shape[1:], bool)
    ids = []
    for k, (tif, (im, parts, ok)) in enumerate(zip(chips, read, strict=True)):
        mmsi = chip_mmsi(tif)
        r, c = divmod(k, cols)
        h, w = ok.shape
        sl = (slice(r * slot, r * slot + h), slice(c * slot, c * slot + w))
        img[(slice(None), *sl)] = im
        valid[sl] = ok
        hulls = np.zeros((h, w), bool)
        left_out = np.zeros((h, w), bool)
        for j, m in enumerate(parts):
            if not m.any():
                continue
            if j in IGNORED_PARTS.get(mmsi, ()):
                left_out |= ndimage.binary_dilation(m)
                continue
            new = m & ~hulls
            if new.sum() < m.sum() / 2:  # mostly on a hull already labelled: two parts of one ship
                seen = inst[sl][m & hulls]
                inst[sl][new] = np.bincount(seen).argmax()
            else:
                ids.append(f"{mmsi}:{j}")
                inst[sl][new] = len(ids)
            hulls |= m
        if not hulls.any():
            log.warning("%s: no label part of a hull; only its water trains", tif.name)
        ignore[sl] = (afloat_objects(im, hulls | left_out) | left_out) & ~hulls & ok
    ignore |= ~valid  # the gutters and the corners reprojection leaves empty are not water
    write_scene(
        out,
        image=img.astype(np.float16),
        bands=np.array(SEG_BANDS),
        valid=valid,
        inst=inst,
        ann_ids=np.array(ids),
        ignore=ignore,
        check=np.array(digest),
    )
    log.info(
        "%s: %d eye-checked eotdl chips, %d hulls, %d px of the chips left out of the loss",
        out,
        len(chips),
        len(ids),
        int((ignore & valid).sum()),
    )
    return EOTDL_SCENE
