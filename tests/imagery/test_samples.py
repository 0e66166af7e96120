"""The bundled sample chips: real, small, georeferenced, labelled, attributed, shipped with the package."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from shapely.geometry import box, shape

from imagery.samples import get_sample, list_samples, open_sample, sample_dir, sample_scene

REPO = Path(__file__).resolve().parents[2]


def test_samples_are_listed_with_their_metadata():
    samples = list_samples()
    assert len(samples) >= 2
    for s in samples:
        assert s.path.is_file() and s.vessels.is_file()
        assert s.datetime.tzinfo is not None and s.bands == ("B02", "B03", "B04", "B08")
        assert s.crs.startswith("EPSG:32") and s.vessel_count >= 10
        west, south, east, north = s.bbox
        assert -180 <= west < east <= 180 and -90 <= south < north <= 90
    assert get_sample(samples[0].id) == samples[0]


def test_sample_files_are_small_4_band_utm_cogs_with_a_reflectance_scale():
    total = 0
    for s in list_samples():
        total += s.path.stat().st_size
        assert s.path.stat().st_size < 1_300_000
        with rasterio.open(s.path) as src:
            assert src.count == 4 and src.descriptions == s.bands and src.dtypes[0] == "uint16"
            assert src.res == (10.0, 10.0) and src.crs.to_string() == s.crs
            assert src.tags()["REFLECTANCE_SCALE"] == "0.0001"
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.nodata == 0
    assert total < 3_000_000


def test_sample_pixels_are_plausible_surface_reflectance():
    for s in list_samples():
        window = open_sample(s.id)
        assert window.grid.res_m == 10.0 and window.valid_fraction > 0.99
        medians = np.nanmedian(window.data, axis=(1, 2))
        # every band on the same 0–1 scale: a ×65535 band read as ×1e-4 would be ~6.5× too bright
        assert np.all((medians > 0.01) & (medians < 0.3)), (s.id, medians)
        assert window.acquired == s.datetime and window.scene_id == s.id


def test_vessels_lie_inside_their_chip_with_ship_sized_lengths():
    for s in list_samples():
        fc = json.loads(s.vessels.read_text())
        assert len(fc["features"]) == s.vessel_count
        chip = box(*s.bbox)
        to_utm = Transformer.from_crs("EPSG:4326", s.crs, always_xy=True)
        for f in fc["features"]:
            geom = shape(f["geometry"])
            assert chip.contains(geom.centroid)
            assert 15 <= f["properties"]["length_m"] <= 500
            assert f["properties"]["width_m"] <= f["properties"]["length_m"]
            # the stated length matches the polygon's longest side in metres
            xs, ys = to_utm.transform(*np.asarray(geom.exterior.coords).T)
            sides = np.hypot(np.diff(xs), np.diff(ys))
            assert abs(sides.max() - f["properties"]["length_m"]) < 0.05 * f["properties"]["length_m"] + 1


def test_scene_json_marks_the_time_approximate_and_names_the_source():
    for s in list_samples():
        meta = json.loads((s.path.parent / "scene.json").read_text())
        assert meta["platform"] == "sentinel-2" and meta["processing_level"] == "L2A"
        assert meta["cloud_cover"] is None and "approximate" in meta["datetime_note"]
        assert "sen2ships" in meta["source"]


def test_notice_carries_mit_licence_and_copernicus_attribution():
    notice = (sample_dir() / "NOTICE").read_text()
    assert "MIT License" in notice and "Copyright (c) 2023 ShipDetectionExperts" in notice
    assert "Contains modified Copernicus Sentinel data 2023, processed by Sentinel Hub" in notice


def test_package_data_ships_the_samples():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"samples/*"' in pyproject and '"samples/**/*"' in pyproject


def test_sample_scene_reads_through_read_window_on_its_own_grid():
    from imagery.read import read_window

    s = list_samples()[0]
    window = open_sample(s.id)
    again = read_window(sample_scene(s.id), window.grid, s.bands)
    np.testing.assert_array_equal(again.data, window.data)
