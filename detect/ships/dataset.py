"""sen2ships (COCO labels on EPSG:3857 band folders) → vessel labels on the UTM 10 m grid → YOLO-OBB chips.

Labels are mapped through the same transform ``imagery.read.open_raster`` applies to the pixels
(3857 pixel → 3857 map → UTM → grid pixel), and oriented boxes come from the instance masks.
Chips are cut per city, so any split by city is a split of folders.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rasterio
from pyproj import Transformer
from shapely.geometry import Polygon, box

from detect.core.bands import normalise
from detect.core.geometry import mask_corner_points
from detect.core.rle import decode_rle
from detect.core.water import ndwi_array
from imagery.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from imagery.errors import InputError, MissingBandsError
from imagery.read import find_band_files, open_raster
from imagery.types import Grid, RasterWindow

log = logging.getLogger(__name__)

CLASS_NAMES = ("ship",)
#: sen2ships pixels are Sentinel Hub "Raw" uint16 exports: reflectance × 65535, in every band. Passed to
#: ``open_raster`` explicitly, because guessing from each file's median picks 1e-4 for dark (watery) bands
#: and 1/65535 for bright ones, which scales a scene's bands inconsistently.
SEN2SHIPS_SCALE = 1.0 / 65535.0
#: Bands loaded besides the model's, when present, to find the coast for hard negatives (NDWI).
_WATER_BANDS = ("B03", "B08")


# ---------------------------------------------------------------------------------------------
# Labels on the UTM grid
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VesselLabel:
    """One labelled vessel as an oriented box on a scene's UTM grid."""

    city: str
    ann_id: int
    corners_px: np.ndarray  # (4, 2) col, row on the grid
    length_m: float
    width_m: float

    @property
    def centre_px(self) -> tuple[float, float]:
        c = self.corners_px.mean(axis=0)
        return float(c[0]), float(c[1])

    @property
    def polygon(self) -> Polygon:
        return Polygon(self.corners_px)


@dataclass(frozen=True)
class LabelledScene:
    """A city's pixels on the UTM grid and its labels on that grid."""

    city: str
    window: RasterWindow
    labels: tuple[VesselLabel, ...]
    acquired: str  # date as in the COCO file


def load_coco(annotations: str | Path) -> dict[str, Any]:
    path = Path(annotations)
    if not path.is_file():
        raise InputError(f"COCO annotations {path} not found")
    try:
        coco = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON: {e}") from None
    for key in ("images", "annotations"):
        if key not in coco:
            raise InputError(f"{path} is not a COCO file: no {key!r}")
    return coco


def coco_cities(coco: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """city → COCO image record (cities named by the ``city`` key, else the file's folder)."""
    out = {}
    for im in coco["images"]:
        city = im.get("city") or Path(im["file_name"]).parent.name or Path(im["file_name"]).stem
        out[city] = im
    return out


def available_bands(root: str | Path, city: str) -> tuple[str, ...]:
    folder = Path(root) / city
    if not folder.is_dir():
        raise InputError(f"no band folder {folder}")
    return tuple(b for b in find_band_files(folder) if b != "SCL")


def _bbox_corner_points(bbox: Sequence[float]) -> np.ndarray:
    x, y, w, h = (float(v) for v in bbox)
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])


def map_points(points_px: np.ndarray, src_transform: Any, src_crs: str, grid: Grid) -> np.ndarray:
    """Source-raster pixel coordinates (col, row) → pixel coordinates on ``grid`` (via map coordinates)."""
    pts = np.asarray(points_px, dtype=np.float64).reshape(-1, 2)
    t = src_transform
    x = t.a * pts[:, 0] + t.b * pts[:, 1] + t.c
    y = t.d * pts[:, 0] + t.e * pts[:, 1] + t.f
    tr = Transformer.from_crs(src_crs, grid.crs, always_xy=True)
    gx, gy = tr.transform(x, y)
    inv = ~grid.transform
    col = inv.a * np.asarray(gx) + inv.b * np.asarray(gy) + inv.c
    row = inv.d * np.asarray(gx) + inv.e * np.asarray(gy) + inv.f
    return np.stack([col, row], axis=1)


def oriented_box_from_points(points_px: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Minimum-area rectangle around points: (corners (4, 2), long side px, short side px)."""
    (cx, cy), (w, h), ang = cv2.minAreaRect(np.asarray(points_px, dtype=np.float32))
    corners = cv2.boxPoints(((cx, cy), (w, h), ang)).astype(np.float64)
    return corners, float(max(w, h)), float(min(w, h))


def labels_on_grid(
    coco: dict[str, Any], image: dict[str, Any], city: str, src_transform: Any, src_crs: str, grid: Grid
) -> tuple[VesselLabel, ...]:
    """The COCO annotations of one image as oriented boxes on ``grid`` (from masks; boxes when no mask)."""
    res = grid.res_m
    out = []
    for ann in coco["annotations"]:
        if ann["image_id"] != image["id"]:
            continue
        seg = ann.get("segmentation")
        pts = None
        if isinstance(seg, dict) and "counts" in seg:
            mask = decode_rle(seg)
            if mask.shape != (image["height"], image["width"]):
                raise InputError(
                    f"{city} annotation {ann['id']}: mask {mask.shape} != image "
                    f"{image['height']}×{image['width']}"
                )
            if mask.any():
                pts = mask_corner_points(mask)
        if pts is None:
            pts = _bbox_corner_points(ann["bbox"])
        corners, long_px, short_px = oriented_box_from_points(map_points(pts, src_transform, src_crs, grid))
        out.append(VesselLabel(city, int(ann["id"]), corners, long_px * res, short_px * res))
    return tuple(out)


def load_scene(
    root: str | Path,
    city: str,
    bands: Sequence[str],
    coco: dict[str, Any] | None = None,
    *,
    extra_bands: Sequence[str] = (),
    scale: float | None = SEN2SHIPS_SCALE,
) -> LabelledScene:
    """Read a city's band folder onto the UTM 10 m grid (via ``open_raster``) and map its labels onto it.

    ``extra_bands`` are read too when present (e.g. for a water mask); missing model bands raise
    MissingBandsError naming them. ``scale`` converts stored values to reflectance (None: let
    ``open_raster`` read or guess it per file).
    """
    root = Path(root)
    coco = coco if coco is not None else load_coco(root / "annotations_coco.json")
    images = coco_cities(coco)
    if city not in images:
        raise InputError(f"city {city!r} has no image in the COCO file; cities: {', '.join(sorted(images))}")
    have = available_bands(root, city)
    missing = [b for b in bands if b not in have]
    if missing:
        raise MissingBandsError(missing, f"{city} (bands present: {', '.join(have)})")
    wanted = list(bands) + [b for b in extra_bands if b in have and b not in bands]
    window = open_raster(root / city, wanted, scene_id=city, scale=scale)
    image = images[city]
    files = find_band_files(root / city)
    with rasterio.open(files[wanted[0]]) as src:
        if (src.height, src.width) != (image["height"], image["width"]):
            raise InputError(
                f"{city}: labels are for {image['width']}×{image['height']} px, "
                f"raster is {src.width}×{src.height}"
            )
        src_transform, src_crs = src.transform, src.crs.to_string()
    labels = labels_on_grid(coco, image, city, src_transform, src_crs, window.grid)
    return LabelledScene(city, window, labels, str(image.get("date", "")))


# ---------------------------------------------------------------------------------------------
# Chips
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChipConfig:
    """How a scene is cut into training chips."""

    size: int = 128
    stride: int = 96  # overlap of size - stride px, so each ship (≤ ~42 px) lies whole in some chip
    min_visible: float = 0.5  # a box cut by the chip edge is kept (clipped) if this fraction of it is inside
    negatives_per_positive: float = 1.0
    coastal_fraction: float = 0.75  # share of negatives drawn from land/water-mixed chips
    augment: bool = True  # random 90° rotation/flip per chip, brightness/contrast/haze on half of them
    seed: int = 0


def _starts(n: int, size: int, stride: int) -> list[int]:
    if n <= size:
        return [0]
    s = list(range(0, n - size + 1, stride))
    if s[-1] != n - size:
        s.append(n - size)
    return s


def chip_windows(shape: tuple[int, int], size: int, stride: int) -> Iterator[tuple[int, int]]:
    """Top-left (row, col) of overlapping chips covering an (H, W) array, last ones flush with the edges."""
    h, w = shape
    for r in _starts(h, size, stride):
        for c in _starts(w, size, stride):
            yield r, c


def water_fraction(window: RasterWindow) -> np.ndarray | None:
    """Per-pixel water (NDWI > 0 from B03/B08), or None when the scene lacks them."""
    if not all(b in window.band_names for b in _WATER_BANDS):
        return None
    return np.nan_to_num(ndwi_array(window.band("B03"), window.band("B08")), nan=-1.0) > 0.0


def photometric_jitter(reflectance: np.ndarray, bands: Sequence[str], rng: random.Random) -> np.ndarray:
    """Brightness/contrast gain and haze ``a·(1−t) + t·x`` in reflectance; airlight stronger in the blue.

    Mimics what changes between scenes (illumination, thin haze, L1C path radiance vs L2A) without
    inventing textures.
    """
    gain = rng.uniform(0.8, 1.2)
    t = rng.uniform(0.7, 1.0)
    base = rng.uniform(0.0, 0.08)
    airlight = {"B02": 1.0, "B03": 0.85, "B04": 0.7, "B08": 0.5, "B8A": 0.5, "B11": 0.3, "B12": 0.25}
    a = np.array([base * airlight.get(b, 0.6) for b in bands], np.float32)[:, None, None]
    x = reflectance * np.float32(gain)
    return a * (1.0 - t) + np.float32(t) * x


def _dihedral(
    img: np.ndarray, pts: list[np.ndarray], k: int, flip: bool
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rotate (H, W, C) by k·90° (counter-clockwise as np.rot90) and optionally transpose; points follow."""
    size = img.shape[0]
    out_pts = []
    for p in pts:
        q = p.copy()
        for _ in range(k):
            q = np.stack([q[:, 1], size - q[:, 0]], axis=1)  # np.rot90: (col, row) → (row, W - col)
        if flip:
            q = q[:, ::-1].copy()
        out_pts.append(q)
    img = np.rot90(img, k, axes=(0, 1))
    if flip:
        img = img.transpose(1, 0, 2)
    return np.ascontiguousarray(img), out_pts


def _chip_labels(
    scene: LabelledScene, r: int, c: int, size: int, min_visible: float
) -> tuple[list[np.ndarray], int]:
    """Boxes (chip px corners) sufficiently inside the chip, and how many boxes it touches at all."""
    frame = box(c, r, c + size, r + size)
    kept, touched = [], 0
    for lab in scene.labels:
        poly = lab.polygon
        if not poly.intersects(frame):
            continue
        touched += 1
        inter = poly.intersection(frame).area
        if poly.area > 0 and inter / poly.area >= min_visible:
            q = lab.corners_px - np.array([c, r], dtype=np.float64)
            kept.append(np.clip(q, 0.0, float(size)))
    return kept, touched


def write_city_chips(
    scene: LabelledScene,
    bands: Sequence[str],
    normalisation: dict[str, Any],
    out_dir: str | Path,
    cfg: ChipConfig = ChipConfig(),
) -> dict[str, Any]:
    """Cut one city into positive chips and coastal hard-negative chips under ``out_dir/{images,labels}``.

    Returns (and writes as ``chips.json``) a summary; a finished city (summary present) is not redone.
    """
    out_dir = Path(out_dir)
    summary_path = out_dir / "chips.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text())
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{cfg.seed}:{scene.city}")
    data = scene.window.select(list(bands))
    valid = scene.window.valid_mask
    water = water_fraction(scene.window)
    size = cfg.size
    positives, negatives = [], []
    for r, c in chip_windows(scene.window.grid.shape, size, cfg.stride):
        if valid[r : r + size, c : c + size].mean() < 0.5:
            continue
        kept, touched = _chip_labels(scene, r, c, size, cfg.min_visible)
        if kept:
            positives.append((r, c, kept))
        elif touched == 0:
            wf = float(water[r : r + size, c : c + size].mean()) if water is not None else 0.5
            negatives.append((r, c, wf))
    n_neg = min(len(negatives), round(cfg.negatives_per_positive * len(positives)))
    # Hard negatives: mostly where land meets water (quays, breakwaters, cranes, roofs), the rest at random.
    coastal = [n for n in negatives if 0.1 <= n[2] <= 0.9]
    rng.shuffle(coastal)
    chosen = coastal[: round(cfg.coastal_fraction * n_neg)]
    rest = [n for n in negatives if n not in chosen]
    rng.shuffle(rest)
    chosen += rest[: n_neg - len(chosen)]
    n_boxes = 0
    for kind, items in (
        ("pos", [(r, c, k) for r, c, k in positives]),
        ("neg", [(r, c, []) for r, c, _ in chosen]),
    ):
        for r, c, kept in items:
            refl = data[:, r : r + size, c : c + size]
            if refl.shape[1:] != (size, size):  # scene smaller than a chip: pad with no-data
                pad = np.full((refl.shape[0], size, size), np.nan, np.float32)
                pad[:, : refl.shape[1], : refl.shape[2]] = refl
                refl = pad
            pts = [k.copy() for k in kept]
            if cfg.augment and rng.random() < 0.5:
                refl = photometric_jitter(refl, bands, rng)
            img = normalise(refl, normalisation)
            if cfg.augment:
                img, pts = _dihedral(img, pts, rng.randrange(4), rng.random() < 0.5)
            stem = f"{scene.city}_{kind}_r{r}_c{c}"
            ok, buf = cv2.imencode(".png", img)
            if not ok:
                raise OSError(f"cv2 could not encode chip {stem}")
            atomic_write_bytes(out_dir / "images" / f"{stem}.png", buf.tobytes())
            lines = ["0 " + " ".join(f"{v / size:.6f}" for v in q.reshape(-1)) for q in pts]
            atomic_write_text(out_dir / "labels" / f"{stem}.txt", "\n".join(lines) + ("\n" if lines else ""))
            n_boxes += len(pts)
    summary = {
        "city": scene.city,
        "bands": list(bands),
        "positive_chips": len(positives),
        "negative_chips": len(chosen),
        "coastal_negatives": sum(1 for n in chosen if 0.1 <= n[2] <= 0.9),
        "boxes": n_boxes,
        "labels": len(scene.labels),
        "chip_size": size,
        "grid": scene.window.grid.key(),
    }
    atomic_write_json(summary_path, summary)
    return summary


def band_key(bands: Sequence[str]) -> str:
    return "-".join(bands)


def build_chips(
    root: str | Path,
    cities: Sequence[str],
    bands: Sequence[str],
    normalisation: dict[str, Any],
    out_dir: str | Path,
    cfg: ChipConfig = ChipConfig(),
) -> dict[str, dict[str, Any]]:
    """Chips for every city under ``out_dir/<city>/``; cities lacking the bands raise MissingBandsError."""
    coco = load_coco(Path(root) / "annotations_coco.json")
    out = {}
    for city in cities:
        city_dir = Path(out_dir) / city
        if not (city_dir / "chips.json").is_file():
            scene = load_scene(root, city, bands, coco, extra_bands=_WATER_BANDS)
            log.info(
                "%s: %d labels, grid %dx%d",
                city,
                len(scene.labels),
                scene.window.grid.width,
                scene.window.grid.height,
            )
        else:
            scene = None
        out[city] = (
            write_city_chips(scene, bands, normalisation, city_dir, cfg)
            if scene
            else json.loads((city_dir / "chips.json").read_text())
        )
    return out


def write_data_yaml(
    path: str | Path, train_dirs: Sequence[Path], val_dirs: Sequence[Path], channels: int
) -> Path:
    """An ultralytics data file listing per-city image folders (labels beside them in ``labels/``)."""
    import yaml

    doc = {
        "train": [str(Path(d).resolve() / "images") for d in train_dirs],
        "val": [str(Path(d).resolve() / "images") for d in val_dirs],
        "names": dict(enumerate(CLASS_NAMES)),
        "channels": channels,
    }
    return atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False))


def cities_with_bands(
    root: str | Path, cities: Sequence[str], bands: Sequence[str]
) -> tuple[list[str], dict[str, list[str]]]:
    """Split cities into those having all ``bands`` and those lacking some (city → missing bands)."""
    ok, dropped = [], {}
    for city in cities:
        have = available_bands(root, city)
        missing = [b for b in bands if b not in have]
        if missing:
            dropped[city] = missing
        else:
            ok.append(city)
    return ok, dropped


def write_scene(out: Path, **arrays: np.ndarray) -> None:
    """A prepared training scene ``out`` (.npz, compressed), written whole or not at all
    (``imagery.atomic.atomic_path``: a temporary name of its own, so two runs preparing one cache never
    collide)."""
    from imagery.atomic import atomic_path

    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
