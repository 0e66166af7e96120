"""Water masks on real chips: labelled ships lie on water, open sea is all water, missing bands flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer

from detect.core.water import otsu_threshold, water_mask
from detect.ships.evaluate import load_coco_truth
from imagery.read import open_raster
from imagery.types import RasterWindow

CHIPS = Path(__file__).parents[2] / "fixtures" / "chips"


@pytest.fixture(scope="module")
def honolulu() -> RasterWindow:
    return open_raster(CHIPS / "honolulu_chip.tif")


def test_every_labelled_ship_centre_lies_on_the_dilated_mask(honolulu: RasterWindow) -> None:
    wm = water_mask(honolulu)
    truths = load_coco_truth(CHIPS / "annotations.json", CHIPS)["honolulu_chip"]
    tr = Transformer.from_crs("EPSG:4326", honolulu.crs, always_xy=True)
    x, y = tr.transform([t.lon for t in truths], [t.lat for t in truths])
    cols, rows = ~honolulu.transform @ (np.asarray(x), np.asarray(y))
    assert wm.available and len(truths) == 12
    assert wm.contains(cols, rows).all()
    # Harbour chip: a real share of land stays masked out, even after dilation.
    assert 0.4 < wm.water_fraction < 0.85
    assert wm.core is not None and wm.core.mean() < wm.water_fraction


def test_open_sea_chip_is_all_water() -> None:
    wm = water_mask(open_raster(CHIPS / "marseille_water.tif"))
    assert wm.available and wm.water_fraction == 1.0


def test_missing_nir_gives_no_mask_and_says_why(honolulu: RasterWindow) -> None:
    rgb = RasterWindow(data=honolulu.data[:3], band_names=honolulu.band_names[:3], grid=honolulu.grid)
    wm = water_mask(rgb)
    assert not wm.available and wm.mask.all() and "B08" in wm.reason


def test_points_off_the_grid_are_not_on_water(honolulu: RasterWindow) -> None:
    wm = water_mask(honolulu)
    assert not wm.contains(np.array([-1.0, 1e6]), np.array([5.0, 5.0])).any()


def test_otsu_splits_a_bimodal_index() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-0.4, 0.05, 5000), rng.normal(0.3, 0.05, 3000)])
    assert -0.25 < otsu_threshold(values) < 0.15
