"""Dark-object subtraction (detect.core.haze) and the simulated top-of-atmosphere input of
benchmarks/seg_toa.py."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from detect.core.haze import dark_levels, subtract_dark
from imagery.types import Grid, RasterWindow


def _scene(offset_b02: float = 0.0) -> np.ndarray:
    """(2, 40, 40): dark water (B02 0.02, B08 0.005), a bright hull, and ``offset_b02`` of haze in B02."""
    a = np.empty((2, 40, 40), np.float32)
    a[0], a[1] = 0.02, 0.005
    a[0, 18:21, 10:25], a[1, 18:21, 10:25] = 0.15, 0.25
    a[0] += offset_b02
    return a


def test_dark_level_is_a_low_percentile_of_valid_pixels_only() -> None:
    a = _scene()
    valid = np.ones((40, 40), bool)
    a[:, :2, :] = -1.0  # off the valid mask: must not count
    valid[:2, :] = False
    lv = dark_levels(a, ("B02", "B08"), valid)
    assert lv == pytest.approx({"B02": 0.02, "B08": 0.005}, abs=1e-6)


def test_subtraction_brings_a_hazy_band_back_to_the_reference_and_never_raises_one() -> None:
    hazy = _scene(offset_b02=0.06)
    valid = np.ones((40, 40), bool)
    valid[0, 0] = False
    hazy[0, 0, 0] = 9.0  # invalid pixel: left alone
    out, offsets = subtract_dark(hazy, ("B02", "B08"), valid, {"B02": 0.02, "B08": 0.01})
    assert offsets == pytest.approx({"B02": 0.06}, abs=1e-6)  # B08 (0.005) is under its reference: untouched
    clean = _scene()
    assert np.allclose(out[0][valid], clean[0][valid], atol=1e-6)  # the hull keeps its contrast
    assert np.array_equal(out[1], hazy[1])
    assert out[0, 0, 0] == 9.0
    assert hazy[0, 1, 1] == pytest.approx(0.08)  # the input is not changed in place


def test_bands_without_a_reference_are_left_alone() -> None:
    hazy = _scene(offset_b02=0.06)
    out, offsets = subtract_dark(hazy, ("B02", "B08"), np.ones((40, 40), bool), {"B08": 0.0})
    assert set(offsets) == {"B08"}
    assert np.array_equal(out[0], hazy[0])


def _window(data: np.ndarray) -> RasterWindow:
    grid = Grid("EPSG:32631", Affine(10, 0, 500000, 0, -10, 4000000), 40, 40)
    return RasterWindow(data=data, band_names=("B02", "B08"), grid=grid, processing_level="L2A")


def test_simulated_toa_adds_more_path_light_in_the_blue_and_more_with_aerosol(load_script) -> None:
    m = load_script("benchmarks/seg_toa.py")
    p02, t02 = m.atmosphere("B02", 0.0, 25.0)
    p08, t08 = m.atmosphere("B08", 0.0, 25.0)
    assert 0.04 < p02 < 0.08 and p08 < 0.01  # Rayleigh: ~λ^-4
    assert t02 < t08 < 1.0
    assert m.atmosphere("B02", 0.5, 25.0)[0] > p02 and m.atmosphere("B02", 0.5, 25.0)[1] < t02
    w = _window(_scene())
    toa = m.simulate_toa(w, 0.5, 25.0)
    assert toa.processing_level == "L1C"
    path, t = m.atmosphere("B02", 0.5, 25.0)
    assert np.allclose(toa.data[0], path + t * w.data[0])
    assert np.array_equal(w.data, _scene())  # the L2A window is not changed


def test_dark_subtraction_undoes_the_simulated_path_light_up_to_transmittance(load_script) -> None:
    m = load_script("benchmarks/seg_toa.py")
    w = _window(_scene())
    ref = dark_levels(w.data, w.band_names, w.valid_mask)
    toa = m.simulate_toa(w, 0.5, 25.0)
    back, _ = subtract_dark(toa.data, toa.band_names, toa.valid_mask, ref)
    assert np.allclose(back[:, 0, 0], w.data[:, 0, 0], atol=1e-6)  # water at its L2A level again
    _, t = m.atmosphere("B02", 0.5, 25.0)
    hull = back[0, 19, 15] - back[0, 0, 0]
    assert hull == pytest.approx(t * (0.15 - 0.02), rel=1e-4)  # contrast stays lowered by T


def test_eotdl_chips_are_copied_with_a_simulated_toa_look_and_the_level_tag(load_script, tmp_path) -> None:
    import rasterio

    from detect.core.inputs import read_window

    m = load_script("benchmarks/eotdl_recall.py")
    toa = load_script("benchmarks/_toa.py")
    src = tmp_path / "in" / "ship_1_2022-08-12.tif"
    src.parent.mkdir()
    dn = np.full((12, 16, 16), 200, np.int16)  # reflectance 0.02 in every band, as the eotdl chips store it
    profile = {
        "driver": "GTiff",
        "dtype": "int16",
        "width": 16,
        "height": 16,
        "count": 12,
        "crs": "EPSG:4326",
    }
    profile["transform"] = Affine(1e-4, 0, 10.6, 0, -1e-4, 54.5)
    with rasterio.open(src, "w", **profile) as dst:
        dst.write(dn)
    (out,) = m.simulated_l1c([src], tmp_path / "out", 0.5, 40.0, "L1C")
    assert out.name == src.name
    with rasterio.open(out) as f:
        got, tags = f.read(), f.tags()
    assert tags["PROCESSING_LEVEL"] == "L1C"
    path, t = toa.atmosphere("B02", 0.5, 40.0)
    assert got[1, 0, 0] == round((path + t * 0.02) / 1e-4)  # B02 is the second of the 12 bands
    assert got[0, 0, 0] > got[1, 0, 0] > got[7, 0, 0]  # B01 > B02 > B08: scattering falls with wavelength
    assert read_window(out, list(m.EOTDL_BANDS)).processing_level == "L1C"


def test_eotdl_true_colour_copies_hold_b02_b03_b04_of_the_chip_and_its_tags(tmp_path, load_script):
    import rasterio
    from rasterio.transform import Affine

    m = load_script("benchmarks/eotdl_recall.py")
    src = tmp_path / "in" / "ship_1_2022-08-12.tif"
    src.parent.mkdir()
    dn = np.arange(12, dtype=np.int16)[:, None, None] * np.ones((12, 8, 8), np.int16)  # band i holds i
    profile = {"driver": "GTiff", "dtype": "int16", "width": 8, "height": 8, "count": 12, "crs": "EPSG:4326"}
    profile["transform"] = Affine(1e-4, 0, 10.6, 0, -1e-4, 54.5)
    with rasterio.open(src, "w", **profile) as dst:
        dst.write(dn)
        dst.update_tags(PROCESSING_LEVEL="L2A")
    (out,) = m.band_copies([src], tmp_path / "out", ("B02", "B03", "B04"))
    with rasterio.open(out) as f:
        got, tags, transform = f.read(), f.tags(), f.transform
    assert out.name == src.name and got.shape == (3, 8, 8) and transform == profile["transform"]
    assert [int(b[0, 0]) for b in got] == [1, 2, 3]  # B02 B03 B04: the 2nd to 4th of the 12 bands
    assert tags["PROCESSING_LEVEL"] == "L2A"
