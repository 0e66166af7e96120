"""sen2ships → labels on the UTM grid → YOLO-OBB chips, on a committed 96×96 crop of the Algiers scene."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from detect.core.bands import RGB, RGBN, default_normalisation
from detect.core.rle import decode_rle
from detect.ships.dataset import (
    ChipConfig,
    _dihedral,
    chip_windows,
    cities_with_bands,
    load_scene,
    map_points,
    write_city_chips,
)
from imagery.errors import InputError, MissingBandsError

SHIPS = Path(__file__).parents[2] / "fixtures" / "ships_train"


def _encode_compressed(counts: list[int]) -> str:
    """COCO's compressed RLE text, written from the format description (independent of the decoder)."""
    out = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = not ((x == 0 and not ch & 0x10) or (x == -1 and ch & 0x10))
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


# A 3×4 mask drawn by hand; COCO runs go down the columns: col0 = 0,1,1 col1 = 0,1,1 col2 = 0,0,0 col3 = 1,0,0
HAND_MASK = np.array([[0, 0, 0, 1], [1, 1, 0, 0], [1, 1, 0, 0]], dtype=bool)
HAND_COUNTS = [1, 2, 1, 2, 3, 1, 2]


def test_rle_decodes_a_hand_made_mask_in_column_major_order() -> None:
    assert np.array_equal(decode_rle({"counts": HAND_COUNTS, "size": [3, 4]}), HAND_MASK)


def test_rle_accepts_cvat_text_counts_and_sizes() -> None:
    seg = {"counts": "[1, 2, 1, 2, 3, 1, 2]", "size": "[3, 4]"}
    assert np.array_equal(decode_rle(seg), HAND_MASK)


def test_rle_decodes_compressed_coco_strings() -> None:
    rng = np.random.default_rng(3)
    mask = np.zeros((37, 29), bool)
    mask[5:20, 3:9] = True
    mask[30:, 20:] = rng.random((7, 9)) > 0.5
    flat = mask.T.reshape(-1)
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    seg = {"counts": _encode_compressed(counts), "size": [37, 29]}
    assert np.array_equal(decode_rle(seg), mask)


def test_rle_with_wrong_total_is_refused() -> None:
    with pytest.raises(InputError, match="sum"):
        decode_rle({"counts": [1, 2], "size": [3, 4]})


@pytest.fixture(scope="module")
def scene():
    return load_scene(SHIPS, "algiers", RGBN, extra_bands=("B03", "B08"))


def test_scene_is_read_onto_the_utm_10m_grid(scene) -> None:
    assert scene.window.grid.crs == "EPSG:32631"
    assert scene.window.grid.res_m == pytest.approx(10.0)
    # 96 Web-Mercator px of 10 map-metres at 36.8° N cover ~0.8 × 960 m of ground.
    assert 70 <= scene.window.grid.width <= 84
    assert len(scene.labels) == 8


def test_mapped_labels_land_on_the_ships(scene) -> None:
    nir, green = scene.window.band("B08"), scene.window.band("B03")
    with np.errstate(invalid="ignore"):
        water = float(np.nanmedian(nir[(green - nir) / (green + nir) > 0]))  # NDWI water
    for lab in scene.labels:
        cx, cy = lab.centre_px
        r, c = int(cy), int(cx)
        # The ship is bright in NIR against dark water: the peak at the mapped centre is far above it.
        peak = float(np.nanmax(nir[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2]))
        assert peak > water + 0.04, (lab.ann_id, peak, water)
        assert 20.0 <= lab.length_m <= 450.0
        assert lab.width_m <= lab.length_m


def test_map_points_is_identity_on_the_same_grid(scene) -> None:
    g = scene.window.grid
    pts = np.array([[0.0, 0.0], [10.5, 3.25], [g.width, g.height]])
    assert np.allclose(map_points(pts, g.transform, g.crs, g), pts)


def test_missing_band_names_the_band(tmp_path: Path) -> None:
    for f in (SHIPS / "algiers").glob("*.tif"):
        if "B02" not in f.name:
            (tmp_path / "algiers").mkdir(exist_ok=True)
            (tmp_path / "algiers" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "annotations_coco.json").write_text((SHIPS / "annotations_coco.json").read_text())
    with pytest.raises(MissingBandsError, match="B02") as e:
        load_scene(tmp_path, "algiers", RGB)
    assert e.value.missing == ("B02",)
    ok, dropped = cities_with_bands(tmp_path, ["algiers"], RGBN)
    assert ok == [] and dropped == {"algiers": ["B02"]}


def test_chip_windows_cover_the_edges() -> None:
    starts = list(chip_windows((100, 70), 64, 40))
    assert (0, 0) in starts and (36, 6) in starts
    assert max(r for r, _ in starts) + 64 == 100 and max(c for _, c in starts) + 64 == 70


def test_dihedral_moves_points_with_the_pixels() -> None:
    img = np.zeros((8, 8, 1), np.uint8)
    img[1, 6] = 255  # pixel at col 6, row 1; its centre is (6.5, 1.5)
    for k in range(4):
        for flip in (False, True):
            out, (p,) = _dihedral(img, [np.array([[6.5, 1.5]])], k, flip)
            col, row = p[0]
            assert out[int(row), int(col), 0] == 255, (k, flip)


def test_chips_have_normalised_obb_labels_on_bright_pixels(scene, tmp_path: Path) -> None:
    cfg = ChipConfig(size=64, stride=32, augment=True, seed=1)
    summary = write_city_chips(scene, RGBN, default_normalisation(RGBN), tmp_path, cfg)
    assert summary["positive_chips"] >= 1 and summary["boxes"] >= 8
    assert json.loads((tmp_path / "chips.json").read_text()) == summary
    for img_path in sorted((tmp_path / "images").glob("*_pos_*.png")):
        img = cv2.imread(str(img_path), cv2.IMREAD_UNCHANGED)
        assert img.shape == (64, 64, 4) and img.dtype == np.uint8
        rows = [
            line.split() for line in (tmp_path / "labels" / f"{img_path.stem}.txt").read_text().splitlines()
        ]
        assert rows
        for parts in rows:
            assert parts[0] == "0" and len(parts) == 9
            pts = np.array(parts[1:], float).reshape(4, 2)
            assert ((pts >= 0) & (pts <= 1)).all()
            inside = np.zeros((64, 64), np.uint8)
            cv2.fillPoly(inside, [np.round(pts * 64).astype(np.int32)], 1)
            nir = img[..., 3].astype(float)
            if inside.sum() >= 4:
                # Water is the darkest thing in NIR here (the land is bright too): ships stand well above it.
                assert nir[inside > 0].mean() > np.percentile(nir[nir > 0], 25) + 20, img_path.name
    # A finished city is not redone.
    assert (
        write_city_chips(scene, RGBN, default_normalisation(RGBN), tmp_path, ChipConfig(size=128)) == summary
    )


def test_chip_augmentation_is_seeded(scene, tmp_path: Path) -> None:
    cfg = ChipConfig(size=64, stride=32, seed=7)
    a = write_city_chips(scene, RGB, default_normalisation(RGB), tmp_path / "a", cfg)
    b = write_city_chips(scene, RGB, default_normalisation(RGB), tmp_path / "b", cfg)
    assert a == b
    for f in (tmp_path / "a" / "labels").iterdir():
        assert f.read_text() == (tmp_path / "b" / "labels" / f.name).read_text()
