"""The moving-truck detector on small real chips (tests/fixtures/trucks, see its README for sources)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from shapely.geometry import LineString, box

from detect.trucks.detector import (
    INDEX_NOTE,
    TRUCK_BANDS,
    TruckDetector,
    count_in_zones,
    fit_signature,
    flag_on_road,
    read_s2td_chip,
)
from detect.trucks.sim import SimulatedTruck, draw_roof, find_roads, inject_trucks, render_truck
from imagery.aoi import Aoi, Zone
from imagery.errors import MissingBandsError
from imagery.read import open_raster
from imagery.types import RasterWindow


@pytest.fixture(scope="module")
def detector() -> TruckDetector:
    return TruckDetector.load()


@pytest.fixture(scope="module")
def city(fixtures_dir) -> RasterWindow:
    return open_raster(fixtures_dir / "trucks" / "marseille-city.tif")


def _with_data(window: RasterWindow, data: np.ndarray) -> RasterWindow:
    return RasterWindow(data=data, band_names=window.band_names, grid=window.grid, scene_id=window.scene_id)


def _pixel_of(window: RasterWindow, lon: float, lat: float) -> tuple[float, float]:
    from shapely.geometry import Point

    from imagery.aoi import to_crs

    p = to_crs(Point(lon, lat), window.grid.crs)
    col, row = ~window.grid.transform @ (p.x, p.y)
    return row - 0.5, col - 0.5


def test_finds_injected_trucks_at_their_positions_in_a_real_city_chip(detector, city):
    # White roofs at motorway speed: the case the detector is built for (recall by roof and speed for
    # the general case is in benchmarks/truck_eval.py).
    rng = np.random.default_rng(11)
    data, trucks = inject_trucks(
        city.data, city.band_names, rng, 8, min_separation_px=10, speed_kmh=85.0, roof_kind="white"
    )
    assert len(trucks) == 8
    dets = detector.detect(_with_data(city, data))
    found = 0
    for t in trucks:
        dists = [math.hypot(*np.subtract(_pixel_of(city, d.lon, d.lat), (t.row, t.col))) for d in dets]
        found += int(bool(dists) and min(dists) <= 2.0)
    # 5 of 8 since issue 15: one of the 8 lands on a bright roof-like "road" pixel and raises B02 by 0.03
    # at one pixel; the peak that used to count as finding it was the roof, and the blob test drops it.
    assert found >= 5, f"found {found} of 8 injected trucks"
    # The same chip without trucks: the detections above that matched nothing are few.
    assert len(dets) - found <= 4


def test_real_water_chip_gives_no_trucks(detector, fixtures_dir):
    water = open_raster(fixtures_dir / "trucks" / "marseille-water.tif")
    assert len(detector.detect(water)) <= 1


@pytest.mark.parametrize("missing", [("B02",), ("B03", "B04"), ("B02", "B03", "B04")])
def test_missing_signature_bands_raise_missing_bands_error_naming_them(detector, city, missing):
    keep = [i for i, b in enumerate(city.band_names) if b not in missing]
    window = RasterWindow(
        data=city.data[keep],
        band_names=tuple(city.band_names[i] for i in keep),
        grid=city.grid,
        scene_id="chip",
    )
    with pytest.raises(MissingBandsError) as err:
        detector.detect(window)
    assert set(err.value.missing) == set(missing)
    for band in missing:
        assert band in str(err.value)


@pytest.mark.parametrize("speed_kmh", [75.0, 90.0, 110.0])
def test_speed_and_direction_from_band_offset_of_a_simulated_truck(city, speed_kmh):
    roads = find_roads(city.data, city.band_names)
    rng = np.random.default_rng(3)
    r, c = 64, 70  # on the north-south boulevard of the chip
    assert roads.mask[r - 1 : r + 2, c - 1 : c + 2].any()
    truck = SimulatedTruck(
        row=r,
        col=c,
        travel_bearing_deg=175.0,
        speed_kmh=speed_kmh,
        length_m=16.0,
        width_m=2.5,
        psf_sigma_px=0.5,
        roof=replace(draw_roof(rng), reflectance={"B02": 0.45, "B03": 0.45, "B04": 0.45, "B08": 0.4}),
    )
    data = city.data.copy()
    render_truck(data, city.band_names, truck)
    from scipy import ndimage

    an = [data[i] - ndimage.median_filter(data[i], 7) for i in (0, 2)]
    _, _, d_row, d_col = fit_signature(an[0], an[1], r, c)
    speed = math.hypot(d_row, d_col) * 10.0 / 1.005 * 3.6
    assert speed == pytest.approx(speed_kmh, abs=20.0)
    bearing = math.degrees(math.atan2(d_col, -d_row)) % 360.0
    assert min(abs(bearing - 175.0), 360 - abs(bearing - 175.0)) < 20.0


def test_detections_follow_the_geojson_contract_with_truck_properties(detector, city):
    rng = np.random.default_rng(5)
    data, _ = inject_trucks(city.data, city.band_names, rng, 4, min_separation_px=12)
    dets = detector.detect(_with_data(city, data))
    assert dets
    props = dets[0].to_feature()["properties"]
    assert props["class"] == "truck"
    for key in ("speed_kmh", "heading_deg", "travel_bearing_deg", "index_note", "on_road", "score"):
        assert key in props
    assert props["index_note"] == INDEX_NOTE
    assert 0.0 <= props["heading_deg"] < 180.0
    assert 0.0 <= props["travel_bearing_deg"] < 360.0


def test_counts_only_inside_road_and_bridge_zones(detector, city):
    rng = np.random.default_rng(11)
    data, _ = inject_trucks(city.data, city.band_names, rng, 8, min_separation_px=10)
    dets = detector.detect(_with_data(city, data))
    assert len(dets) >= 2
    inside, outside = dets[0], dets[1:]
    deck = LineString([(inside.lon - 0.0001, inside.lat), (inside.lon + 0.0001, inside.lat)])
    west, south, east, north = (
        min(d.lon for d in dets) - 0.01,
        min(d.lat for d in dets) - 0.01,
        max(d.lon for d in dets) + 0.01,
        max(d.lat for d in dets) + 0.01,
    )
    aoi = Aoi(
        name="test-bridge",
        kind="bridge",
        geometry=box(west, south, east, north),
        zones=(
            Zone(name="deck", kind="bridge_deck", geometry=deck, buffer_m=15.0),
            Zone(name="quay", kind="berth", geometry=box(west, south, east, north)),
        ),
    )
    far = [d for d in outside if math.hypot((d.lon - inside.lon) * 68000, (d.lat - inside.lat) * 111000) > 40]
    counts = count_in_zones([inside, *far], aoi)
    assert counts == {"deck": 1}
    flagged = flag_on_road([inside, *far], aoi)
    assert flagged[0].properties["on_road"] is True
    assert flagged[0].properties["road_zone"] == "deck"
    assert all(d.properties["on_road"] is False for d in flagged[1:])


def test_s2td_chip_scale_is_handled_and_rainbows_are_found(detector, fixtures_dir):
    window = read_s2td_chip(fixtures_dir / "trucks" / "s2td-motorway.tif")
    assert window.band_names == ("B04", "B03", "B02", "B08")
    vis = window.select(("B02", "B03", "B04"))
    assert 0.0 < float(np.nanmedian(vis)) < 0.3  # reflectance-like, not 0–255
    dets = detector.detect(window)
    assert 1 <= len(dets) <= 30


def test_truck_bands_are_the_visible_three_plus_nir():
    assert TRUCK_BANDS == ("B02", "B03", "B04", "B08")


def test_detect_paths_runs_the_truck_detector_by_class_name(fixtures_dir):
    from detect.detectors import detect_paths

    dets, summaries = detect_paths([fixtures_dir / "trucks" / "marseille-water.tif"], classes=["truck"])
    assert summaries[0].counts == {"truck": len(dets)}
    assert all(d.class_name == "truck" for d in dets)


def test_unscaled_visual_chip_is_refused_with_a_clear_error(detector, fixtures_dir):
    from imagery.errors import InputError

    # The S2TD chip read with the generic DN × 1e-4 guess is far too dark to be reflectance.
    window = open_raster(fixtures_dir / "trucks" / "s2td-motorway.tif", bands=["B04", "B03", "B02", "B08"])
    with pytest.raises(InputError, match="not a 0–1 reflectance"):
        detector.detect(window)
