"""Band selection and the fixed-range gamma normalisation to model input."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from detect.core.bands import RGB, RGBN, default_normalisation, normalise, to_model_input
from detect.core.weights import ModelSpec
from imagery.errors import InputError, MissingBandsError
from imagery.types import Grid, RasterWindow


def _window(bands: tuple[str, ...], data: np.ndarray | None = None) -> RasterWindow:
    grid = Grid("EPSG:32631", Affine(10, 0, 500000, 0, -10, 4000000), 6, 5)
    if data is None:
        data = np.linspace(0.0, 0.5, len(bands) * 30, dtype=np.float32).reshape(len(bands), 5, 6)
    return RasterWindow(data=data, band_names=bands, grid=grid, scene_id="test-scene")


def _spec(bands: tuple[str, ...]) -> ModelSpec:
    return ModelSpec(
        name="t", task="obb", bands=bands, imgsz=64, gsd_m=10.0, normalisation=default_normalisation(bands)
    )


def test_model_input_is_hwc_uint8_in_spec_band_order() -> None:
    win = _window(("B08", "B02", "B03", "B04"))
    out = to_model_input(win, _spec(RGBN))
    assert out.shape == (5, 6, 4) and out.dtype == np.uint8
    expect = normalise(win.select(RGBN), default_normalisation(RGBN))
    assert np.array_equal(out, expect)
    # Channel 0 is B04 (the window's 4th band), not the window's first band.
    assert np.array_equal(out[..., 0], normalise(win.data[3:4], default_normalisation(("B04",)))[..., 0])


def test_missing_band_raises_naming_it() -> None:
    win = _window(("B02", "B03", "B04"))
    with pytest.raises(MissingBandsError, match="B08") as e:
        to_model_input(win, _spec(RGBN))
    assert e.value.missing == ("B08",)
    assert isinstance(e.value, ValueError)  # callers may catch the builtin


def test_normalisation_is_fixed_not_a_per_scene_stretch() -> None:
    norm = default_normalisation(RGB)
    ship = np.full((3, 4, 4), 0.02, np.float32)
    ship[:, 1, 1] = 0.15
    bright_land = ship.copy()
    bright_land[:, 3, :] = 0.6  # a bright roof row in the same window
    a, b = normalise(ship, norm), normalise(bright_land, norm)
    assert np.array_equal(a[1, 1], b[1, 1]) and np.array_equal(a[0, 0], b[0, 0])


def test_gamma_curve_is_monotonic_and_saturates() -> None:
    norm = default_normalisation(("B04",))
    x = np.linspace(-0.1, 1.0, 200, dtype=np.float32).reshape(1, 1, 200)
    y = normalise(x, norm)[0, :, 0].astype(int)
    assert (np.diff(y) >= 0).all()
    assert y[0] == 0 and y[-1] == 255
    # Gamma 0.5 spreads dark water: 0.02 reflectance maps to ~66, not ~17 as a linear stretch would.
    assert normalise(np.full((1, 1, 1), 0.02, np.float32), norm)[0, 0, 0] == pytest.approx(66, abs=2)


def test_nodata_becomes_zero() -> None:
    data = np.full((3, 5, 6), 0.1, np.float32)
    data[:, 0, 0] = np.nan
    out = to_model_input(_window(RGB, data), _spec(RGB))
    assert (out[0, 0] == 0).all() and (out[1, 1] > 0).all()


def test_unknown_method_or_band_is_refused() -> None:
    with pytest.raises(InputError, match="method"):
        normalise(np.zeros((1, 2, 2), np.float32), {"method": "percentile"})
    with pytest.raises(InputError, match="B99"):
        default_normalisation(("B99",))


def test_processing_level_comes_from_the_fetch_tag_or_a_sentinel_2_name(tmp_path) -> None:
    from detect.core.inputs import processing_level

    assert processing_level(tmp_path / "x.tif", {"PROCESSING_LEVEL": "l1c"}) == "L1C"
    assert processing_level(tmp_path / "x.tif", {"PROCESSING_LEVEL": "Level-2A"}) == "L2A"
    assert processing_level(tmp_path / "scene.tif", {"PROCESSING_LEVEL": "unknown"}) is None
    safe = tmp_path / "S2A_MSIL1C_20180521T024551_N0206_R132_T51SWE_20180521T061411.SAFE"
    granule = safe / "GRANULE" / "L1C_T51SWE_A015181_20180521T024549" / "IMG_DATA" / "T51SWE_B02.jp2"
    assert processing_level(granule, {}) == "L1C"
    assert processing_level(tmp_path / "S2B_MSIL2A_20240101T000000_B08.tif", {}) == "L2A"
    assert processing_level(tmp_path / "S2B_24MUV_20250731_0_L1C" / "B02.tif", {}) == "L1C"  # Earth Search id
    # the file's own name wins over its folders'; names that only contain the letters say nothing
    assert processing_level(tmp_path / "L2A" / "S2A_MSIL1C_x.tif", {}) == "L1C"
    assert processing_level(tmp_path / "compare-L1C-vs-L2A" / "scene.tif", {}) is None
    assert processing_level(tmp_path / "harbour_L2Avg" / "scene.tif", {}) is None
    # no further up than four folders
    deep = tmp_path / "S2A_MSIL1C_x.SAFE" / "a" / "b" / "c" / "d" / "B02.tif"
    assert processing_level(deep, {}) is None
