"""Regenerate the bundled sample chips in ``imagery/samples/`` from the sen2ships data (``--data`` or
``$HARBORWATCH_DATA/sen2ships``; docs/data.md).

Each sample is a 4-band (B02 B03 B04 B08) UTM 10 m COG cut from one sen2ships port scene, placed where
the most labelled vessels lie, with ``scene.json`` and the vessels inside it as ``vessels.geojson``.

    python tools/make_samples.py [--data SEN2SHIPS_ROOT] [--out imagery/samples]
    python tools/make_samples.py --fixtures SHARED_FIXTURES/cog   # also tests/fixtures/cog crops
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window
from shapely.geometry import Polygon, mapping

from imagery.atomic import atomic_path, atomic_write_json, atomic_write_text
from imagery.fetch import write_cog
from imagery.read import open_raster
from imagery.types import Grid, RasterWindow

CITIES = ("durban", "athens", "genoa")
BANDS = ("B02", "B03", "B04", "B08")
SIZE_PX = 400
MARGIN_PX = 12  # a vessel counts as inside when its centre is this far from the chip edge
ATTRIBUTION = "Contains modified Copernicus Sentinel data 2023, processed by Sentinel Hub."


def rle_decode(segmentation: dict) -> np.ndarray:
    """Decode an uncompressed COCO RLE (column-major runs, starting with zeros) to a bool mask."""
    h, w = segmentation["size"]
    flat = np.zeros(h * w, dtype=bool)
    pos = 0
    for i, run in enumerate(segmentation["counts"]):
        if i % 2:
            flat[pos : pos + run] = True
        pos += run
    return flat.reshape((w, h)).T


def vessel_rect_px(ann: dict) -> np.ndarray:
    """Corners (x, y) in source pixels of the minimum-area rectangle around the mask (or the box)."""
    seg = ann.get("segmentation")
    if isinstance(seg, dict) and "counts" in seg and isinstance(seg["counts"], list):
        rows, cols = np.nonzero(rle_decode(seg))
        if rows.size:
            # Pixel corners, not centres, so a 1-pixel-wide hull still has width.
            pts = np.concatenate([np.stack([cols + dx, rows + dy], axis=1) for dx in (0, 1) for dy in (0, 1)])
            return cv2.boxPoints(cv2.minAreaRect(pts.astype(np.float32))).astype(float)
    x, y, w, h = ann["bbox"]
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=float)


def best_window(centres_px: np.ndarray, grid: Grid, size: int) -> tuple[int, int, int]:
    """(row, col, count) of the size×size window holding the most vessel centres (first in scan order)."""
    best = (0, 0, -1)
    for r0 in range(0, max(1, grid.height - size + 1), 10):
        for c0 in range(0, max(1, grid.width - size + 1), 10):
            c, r = centres_px[:, 0], centres_px[:, 1]
            n = int(
                (
                    (c >= c0 + MARGIN_PX)
                    & (c < c0 + size - MARGIN_PX)
                    & (r >= r0 + MARGIN_PX)
                    & (r < r0 + size - MARGIN_PX)
                ).sum()
            )
            if n > best[2]:
                best = (r0, c0, n)
    return best


def approx_overpass_utc(date: str, lon: float) -> datetime:
    """Sentinel-2 crosses the equator at ~10:30 local mean solar time: UTC = 10:30 − lon/15 h."""
    day = datetime.fromisoformat(date).replace(tzinfo=timezone.utc)
    t = day + timedelta(hours=10.5 - lon / 15.0)
    return t.replace(second=0, microsecond=0) - timedelta(minutes=t.minute % 5)


def make_sample(data_dir: Path, city: str, out_root: Path, coco: dict) -> dict:
    folder = data_dir / "trainval" / city
    image = next(im for im in coco["images"] if im["city"] == city)
    anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
    with rasterio.open(data_dir / "trainval" / image["file_name"]) as src:
        src_crs, src_transform = src.crs.to_string(), src.transform
    # sen2ships stores reflectance × 65535 in EPSG:3857; open_raster resamples to UTM 10 m.
    window = open_raster(folder, list(BANDS), scale=1.0 / 65535.0)
    grid = window.grid
    to_utm = Transformer.from_crs(src_crs, grid.crs, always_xy=True)
    to_lonlat = Transformer.from_crs(src_crs, "EPSG:4326", always_xy=True)

    rects_src = [np.array([src_transform @ tuple(p) for p in vessel_rect_px(a)]) for a in anns]
    rects_utm = [np.column_stack(to_utm.transform(r[:, 0], r[:, 1])) for r in rects_src]
    centres_px = np.array([~grid.transform @ tuple(r.mean(axis=0)) for r in rects_utm])
    r0, c0, count = best_window(centres_px, grid, SIZE_PX)
    chip_grid = Grid(grid.crs, grid.transform @ Affine.translation(c0, r0), SIZE_PX, SIZE_PX)
    chip = RasterWindow(
        data=window.data[:, r0 : r0 + SIZE_PX, c0 : c0 + SIZE_PX],
        band_names=window.band_names,
        grid=chip_grid,
        valid=window.valid_mask[r0 : r0 + SIZE_PX, c0 : c0 + SIZE_PX],
    )

    to_chip_lonlat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    west, south, east, north = to_chip_lonlat.transform_bounds(*chip_grid.bounds)
    acquired = approx_overpass_utc(image["date"], (west + east) / 2)
    sample_id = f"{city}-{image['date']}"
    out = out_root / sample_id
    out.mkdir(parents=True, exist_ok=True)

    features = []
    for ann, rect_src, rect_utm, (cx, cy) in zip(anns, rects_src, rects_utm, centres_px, strict=True):
        inside = (
            c0 + MARGIN_PX <= cx < c0 + SIZE_PX - MARGIN_PX
            and r0 + MARGIN_PX <= cy < r0 + SIZE_PX - MARGIN_PX
        )
        if not inside:
            continue
        sides = [float(np.hypot(*(rect_utm[i] - rect_utm[(i + 1) % 4]))) for i in range(2)]
        lon, lat = to_lonlat.transform(rect_src[:, 0], rect_src[:, 1])
        poly = Polygon(zip(np.round(lon, 7), np.round(lat, 7), strict=True))
        features.append(
            {
                "type": "Feature",
                "geometry": mapping(poly.buffer(0) if not poly.is_valid else poly),
                "properties": {
                    "class": "vessel",
                    "length_m": round(max(sides), 1),
                    "width_m": round(min(sides), 1),
                    "ann_id": ann["id"],
                    "row": round(float(cy - r0), 1),
                    "col": round(float(cx - c0), 1),
                    "shape_from": "mask minAreaRect" if isinstance(ann.get("segmentation"), dict) else "box",
                },
            }
        )
    assert len(features) == count, (city, len(features), count)

    scene = {
        "id": sample_id,
        "datetime": acquired.isoformat().replace("+00:00", "Z"),
        "datetime_note": "approximate: sen2ships records only the date; time = 10:30 local mean solar "
        "time (Sentinel-2 descending node) converted with the chip's longitude",
        "platform": "sentinel-2",
        "processing_level": "L2A",
        "cloud_cover": None,
        "bands": list(BANDS),
        "city": city,
        "crs": chip_grid.crs,
        "transform": list(chip_grid.transform)[:6],
        "width": SIZE_PX,
        "height": SIZE_PX,
        "bbox": [round(v, 6) for v in (west, south, east, north)],
        "vessel_count": len(features),
        "source": f"sen2ships (github.com/ShipDetectionExperts/sen2ships @ d8e83c1), trainval/{city}, "
        f"window rows {r0}-{r0 + SIZE_PX} cols {c0}-{c0 + SIZE_PX} of the UTM 10 m resampling",
        "attribution": ATTRIBUTION,
        "licence": "MIT (labels, see NOTICE); Copernicus Sentinel data terms (imagery)",
    }
    # No overviews: a 400-pixel chip needs none, and they would add a quarter to the bundled size.
    write_cog(
        chip,
        out / f"{sample_id}.tif",
        overviews=False,
        deflate_level=9,
        tags={
            "SCENE_ID": sample_id,
            "DATETIME": scene["datetime"],
            "SOURCE": "sen2ships",
            "PROCESSING_LEVEL": "L2A",
            "ATTRIBUTION": ATTRIBUTION,
        },
    )
    atomic_write_json(out / "scene.json", scene)
    atomic_write_json(out / "vessels.geojson", {"type": "FeatureCollection", "features": features})
    return scene


#: Crops of the decimated real L2A COGs (rio-tiler-pds fixtures): SCL rows/cols at 200 m, bands at 100 m.
FIXTURE_SCENE = "S2A_29RKH_20200219_0_L2A"
FIXTURE_SCL_WINDOW = Window(448, 80, 64, 64)  # 12.8 km square with a third of it cloud (SCL 8/9/10)


def make_cog_fixtures(src_root: Path, out_root: Path) -> None:
    """Copy small crops (same area) of B04, B08 and SCL into ``out_root/<scene>/`` as tiled COGs."""
    out = out_root / FIXTURE_SCENE
    out.mkdir(parents=True, exist_ok=True)
    for name in ("B04", "B08", "SCL"):
        with rasterio.open(src_root / FIXTURE_SCENE / f"{name}.tif") as src:
            factor = round(200.0 / src.res[0])  # SCL is at 200 m, the bands at 100 m
            w = FIXTURE_SCL_WINDOW
            win = Window(w.col_off * factor, w.row_off * factor, w.width * factor, w.height * factor)
            data = src.read(1, window=win)
            profile = {
                "driver": "COG",
                "width": data.shape[1],
                "height": data.shape[0],
                "count": 1,
                "dtype": data.dtype.name,
                "crs": src.crs,
                "transform": src.window_transform(win),
                "nodata": src.nodata,
                "compress": "DEFLATE",
                "blocksize": 64,
                "overview_resampling": "nearest" if name == "SCL" else "average",
            }
        with atomic_path(out / f"{name}.tif") as tmp, rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data, 1)
        print(f"{out / name}.tif: {data.shape[1]}x{data.shape[0]} {data.dtype}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", type=Path, default=None, help="sen2ships root (default $HARBORWATCH_DATA/sen2ships)"
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "imagery" / "samples")
    ap.add_argument("--cities", default=",".join(CITIES))
    ap.add_argument(
        "--fixtures",
        type=Path,
        default=None,
        help="folder with S2A_29RKH_20200219_0_L2A/ (shared fixtures/cog): also write test crops",
    )
    args = ap.parse_args(argv)
    from detect.core.data import data_path

    args.data = data_path("sen2ships-root", args.data)
    if args.fixtures:
        make_cog_fixtures(args.fixtures, Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cog")
    coco = json.loads((args.data / "trainval" / "annotations_coco.json").read_text())
    for old in args.out.iterdir() if args.out.exists() else ():
        if old.is_dir() and (old / "scene.json").exists():
            shutil.rmtree(old)
    for city in args.cities.split(","):
        scene = make_sample(args.data, city, args.out, coco)
        print(f"{scene['id']}: {scene['vessel_count']} vessels, bbox {scene['bbox']}")
    licence = (args.data / "upstream" / "LICENSE.upstream.txt").read_text()
    atomic_write_text(
        args.out / "NOTICE",
        (
            "The sample chips in this folder are derived from the sen2ships dataset\n"
            "(https://github.com/ShipDetectionExperts/sen2ships, commit d8e83c1a039b): its Sentinel-2 L2A\n"
            "band exports were resampled from EPSG:3857 to UTM 10 m, cropped and re-encoded as uint16 DN\n"
            "(reflectance x 10000); its vessel labels were converted to lon/lat rectangles.\n\n"
            f"{ATTRIBUTION}\n\nsen2ships licence:\n\n{licence}"
        ),
    )


if __name__ == "__main__":
    main()
