"""open_raster on band folders: one scale for all bands of an export, even when one band is dark."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine

from imagery.errors import MissingBandsError
from imagery.read import open_raster


def _band(path, values: np.ndarray) -> None:
    transform = Affine(10, 0, 500000, 0, -10, 4800000)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=values.shape[1],
        height=values.shape[0],
        count=1,
        dtype="uint16",
        crs="EPSG:32631",
        transform=transform,
    ) as dst:
        dst.write(values, 1)


def test_dark_band_of_a_raw_65535_export_gets_the_same_scale_as_the_bright_ones(tmp_path):
    rng = np.random.default_rng(0)
    bright = np.clip(rng.normal(0.20, 0.02, (32, 32)) * 65535, 1, 65535).astype(np.uint16)
    dark = np.clip(rng.normal(0.03, 0.005, (32, 32)) * 65535, 1, 65535).astype(np.uint16)  # water in blue
    _band(tmp_path / "port_B08.tif", bright)
    _band(tmp_path / "port_B02.tif", dark)
    window = open_raster(tmp_path, ["B02", "B08"])
    assert abs(float(np.median(window.band("B02"))) - 0.03) < 0.005  # not 0.03 × 6.55 from a × 1e-4 guess
    assert abs(float(np.median(window.band("B08"))) - 0.20) < 0.01


def test_plain_dn_folder_keeps_the_1e4_scale(tmp_path):
    dn = np.full((16, 16), 800, np.uint16)
    _band(tmp_path / "x_B04.tif", dn)
    _band(tmp_path / "x_B03.tif", dn + 200)
    window = open_raster(tmp_path, ["B03", "B04"])
    assert np.allclose(window.band("B04"), 0.08) and np.allclose(window.band("B03"), 0.10)


def test_a_window_without_its_empty_bands_gets_its_validity_back():
    from imagery.types import Grid, RasterWindow

    grid = Grid("EPSG:32631", Affine(10, 0, 500000, 0, -10, 4800000), 4, 4)
    data = np.full((4, 4, 4), 0.1, np.float32)
    data[1] = np.nan  # B08 listed, all nodata
    data[0, 0, 0] = np.nan  # one pixel without B02
    data[3] = 4.0  # SCL: vegetation, but one pixel of class 0 (no data)
    data[3, 3, 3] = 0
    names = ("B02", "B08", "B11", "SCL")
    as_read = np.all(np.isfinite(data[:3]), axis=0) & (data[3] != 0)  # the readers' "every band has data"
    read = RasterWindow(data, names, grid, valid=as_read)
    assert not read.valid_mask.any()  # nothing left
    kept = read.without_empty_bands()
    assert kept.band_names == ("B02", "B11", "SCL") and kept.data.shape == (3, 4, 4)
    assert kept.valid_mask.sum() == 14 and not kept.valid_mask[0, 0] and not kept.valid_mask[3, 3]
    with pytest.raises(MissingBandsError, match=r"B08 in .*\(B08 listed, but all nodata\)"):
        kept.select(["B02", "B08"])  # a detector that needs it is told it is empty, not absent
    with pytest.raises(MissingBandsError) as absent:
        kept.band("B04")
    assert "nodata" not in str(absent.value)
    clm = RasterWindow(data.copy(), ("B02", "B08", "B11", "CLM"), grid, valid=np.zeros((4, 4), bool))
    clm.data[3] = 0  # Sentinel Hub's cloud mask: 0 is clear, not no data
    assert clm.without_empty_bands().valid_mask.sum() == 15
    whole = RasterWindow(data[[0, 2]], ("B02", "B11"), grid)
    assert whole.without_empty_bands() is whole
    # every reflectance band empty: nothing to read, even with SCL (left for the screen to call no data)
    empty = RasterWindow(data[[1, 3]], ("B08", "SCL"), grid)
    assert empty.without_empty_bands() is empty


def test_a_local_scl_layer_of_class_0_marks_no_data_as_the_catalogue_reader_does(tmp_path):
    refl = np.full((8, 8), 800, np.uint16)
    scl = np.full((8, 8), 6, np.uint16)  # water
    scl[:2, :3] = 0  # SCL class 0: no data (a tile edge)
    _band(tmp_path / "x_B02.tif", refl)
    _band(tmp_path / "x_B08.tif", refl + 400)
    _band(tmp_path / "x_SCL.tif", scl)
    window = open_raster(tmp_path, ["B02", "B08", "SCL"])
    assert window.valid_mask.sum() == 64 - 6 and not window.valid_mask[:2, :3].any()
    assert open_raster(tmp_path, ["B02", "B08"]).valid_mask.all()  # without SCL every pixel has data


def test_a_band_named_twice_is_refused_not_silently_dropped(tmp_path):
    from imagery.errors import InputError

    path = tmp_path / "dup.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=4,
        height=4,
        count=3,
        dtype="uint16",
        crs="EPSG:32631",
        transform=Affine(10, 0, 500000, 0, -10, 4800000),
    ) as dst:
        dst.write(np.full((3, 4, 4), 800, np.uint16))
        dst.descriptions = ("B02", "B02", "B08")
    with pytest.raises(InputError, match="names a band twice"):
        open_raster(path)
    _band(tmp_path / "x_B02.tif", np.full((4, 4), 800, np.uint16))
    with pytest.raises(InputError, match="bands named twice: B02,B02"):
        open_raster(tmp_path / "x_B02.tif", ["B02", "B02"])
    folder = tmp_path / "stacks"
    folder.mkdir()
    path.rename(folder / "dup.tif")
    with pytest.raises(InputError, match=r"holds 1 raster file.*dup\.tif: pass the files themselves"):
        open_raster(folder)
