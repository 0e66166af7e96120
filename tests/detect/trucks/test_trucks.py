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
from detect.trucks.sim import (
    SimulatedTruck,
    add_haze,
    draw_roof,
    find_roads,
    inject_trucks,
    render_truck,
)
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


# --------------------------------------------------------------------------- issue 15: one detection per
# vehicle, no one-band edges, and the hand-labelled real set (tests/fixtures/trucks/real-trucks.csv)


def _blob(shape, row, col, amp, sigma=0.7):
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
    return amp * np.exp(-((rr - row) ** 2 + (cc - col) ** 2) / (2 * sigma**2))


def _scene_with(objects):
    """(4, 40, 40) flat asphalt-like reflectance plus (row, col, {band: amplitude}) blobs."""
    data = np.full((4, 40, 40), 0.08, np.float32)
    data[3] = 0.12
    for row, col, amps in objects:
        for band, amp in amps.items():
            data[TRUCK_BANDS.index(band)] += _blob(data.shape[1:], row, col, amp).astype(np.float32)
    return data


def _trucks_in_a_row(midpoints):
    """Grey trucks moving east at ~72 km/h on row 20: B02 1 px behind each midpoint, B03 on it, B04 ahead."""
    objects = []
    for m in midpoints:
        objects += [(20, m - 1, {"B02": 0.15}), (20, m, {"B03": 0.15}), (20, m + 1, {"B04": 0.15})]
    return _scene_with(objects)


@pytest.mark.parametrize(("gap_px", "expected"), [(4, 1), (6, 2)])
def test_peaks_closer_than_45_m_are_one_vehicle_and_legacy_kept_both(gap_px, expected):
    from detect.trucks.detector import GROUP_PX, candidates_from_probability

    assert GROUP_PX * 10.0 == 45.0  # a 12–18 m truck plus its 10–35 m band offset
    data = _trucks_in_a_row((16, 16 + gap_px))
    prob = np.zeros((40, 40), np.float32)
    prob[20, 16], prob[20, 16 + gap_px] = 0.99, 0.985
    assert len(candidates_from_probability(data, prob, 0.97, legacy=True)) == 2
    new = candidates_from_probability(data, prob, 0.97)
    assert len(new) == expected
    assert (new[0].row, new[0].col) == (20.0, 16.0)  # the most probable peak stands for the vehicle
    assert new[0].speed_kmh(10.0) == pytest.approx(72, abs=10) and 45 <= new[0].travel_bearing_deg <= 135


def test_a_fit_at_the_edge_of_the_offset_search_is_two_objects_not_one_truck():
    from detect.trucks.detector import MAX_TRUCK_SPEED_KMH, candidates_from_probability

    # A peak 3 px off a truck: its fit can only pair blobs of two objects, at the 125 km/h search edge.
    data = _trucks_in_a_row((20,))
    prob = np.zeros((40, 40), np.float32)
    prob[20, 20], prob[20, 17] = 0.99, 0.985
    old = candidates_from_probability(data, prob, 0.97, legacy=True)
    assert sorted(round(c.speed_kmh(10.0)) for c in old) == [72, 125]
    new = candidates_from_probability(data, prob, 0.97)
    assert [round(c.speed_kmh(10.0)) for c in new] == [72]
    assert MAX_TRUCK_SPEED_KMH < 125


def test_an_edge_bright_in_one_band_only_is_not_a_truck():
    from detect.trucks.detector import candidates_from_probability

    # A blue-only blob (a blue roof corner) next to a red-only one 2 px away: each band sees a different
    # object, so neither is "one vehicle in both bands"; the old post-processing took it for a truck.
    data = _scene_with([(20, 19, {"B02": 0.2}), (20, 21, {"B04": 0.01})])
    prob = np.zeros((40, 40), np.float32)
    prob[20, 20] = 0.99
    assert len(candidates_from_probability(data, prob, 0.97, legacy=True)) == 1
    assert candidates_from_probability(data, prob, 0.97) == []


def test_real_labels_are_points_with_pixel_and_lon_lat_and_a_confidence(fixtures_dir):
    import csv
    import json

    with open(fixtures_dir / "trucks" / "real-trucks.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["set"] for r in rows} == {"s2td", "sen2ships", "eotdl"}
    assert {r["confidence"] for r in rows} <= {"high", "medium", "low"}
    for r in rows:
        assert -180 <= float(r["lon"]) <= 180 and -90 <= float(r["lat"]) <= 90
        assert float(r["row"]) >= 0 and float(r["col"]) >= 0 and r["notes"]
    areas = json.loads((fixtures_dir / "trucks" / "real-areas.json").read_text())
    scenes = {a["scene"] for a in areas["labelled"]}
    assert {r["scene"] for r in rows} <= scenes
    assert len({s for s in scenes if not s.startswith(("eotdl:", "S2_"))}) >= 4  # four sen2ships scenes


def test_s2td_chip_one_detection_per_hand_labelled_truck(detector, fixtures_dir):
    import csv

    window = read_s2td_chip(fixtures_dir / "trucks" / "s2td-motorway.tif")
    cands = detector.candidates(window.select(TRUCK_BANDS))
    with open(fixtures_dir / "trucks" / "real-trucks.csv", newline="") as f:
        labels = [r for r in csv.DictReader(f) if r["scene"] == "S2_test_data" and r["confidence"] != "low"]
    assert len(labels) == 8
    # every hand-labelled truck is found, by exactly one detection
    for lab in labels:
        near = [c for c in cands if math.hypot(c.row - float(lab["row"]), c.col - float(lab["col"])) <= 2.5]
        assert len(near) == 1, (lab, near)
    # no vehicle split in two: detections are at least GROUP_PX apart
    from detect.trucks.detector import GROUP_PX

    for i, a in enumerate(cands):
        for b in cands[i + 1 :]:
            assert math.hypot(a.row - b.row, a.col - b.col) >= GROUP_PX
    assert len(cands) <= 18  # 29 before issue 15; 16 measured


def test_real_labels_lie_in_inspected_areas_and_each_set_has_its_trucks(fixtures_dir):
    import csv
    import json

    with open(fixtures_dir / "trucks" / "real-trucks.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    areas = json.loads((fixtures_dir / "trucks" / "real-areas.json").read_text())
    labelled = areas["labelled"]
    assert len({a["name"] for a in labelled}) == len(labelled)
    kept_back_scenes = {a["scene"] for a in labelled if a.get("kept_back")}
    # a scene is either kept back or part of the design set, never both
    assert not kept_back_scenes & {a["scene"] for a in labelled if not a.get("kept_back")}
    assert all(s.startswith("eotdl:") for s in kept_back_scenes)
    for a in labelled:
        if "window" in a:
            r0, r1, c0, c1 = a["window"]
            assert 0 <= r0 < r1 and 0 <= c0 < c1, a["name"]
    for r in rows:
        inside = [
            a
            for a in labelled
            if a["scene"] == r["scene"]
            and (
                "zone_m" in a
                or (
                    a["window"][0] <= float(r["row"]) < a["window"][1]
                    and a["window"][2] <= float(r["col"]) < a["window"][3]
                )
            )
        ]
        assert len(inside) == 1, r  # every label is in exactly one inspected area
        assert (r["set"] == "eotdl") == (r["scene"] in kept_back_scenes)
    counted = [r for r in rows if r["confidence"] != "low"]
    assert sum(r["scene"] not in kept_back_scenes for r in counted) == 9  # design set
    assert sum(r["scene"] in kept_back_scenes for r in counted) == 3  # kept back


def test_training_haze_brightens_blue_most_and_dims_a_trucks_rainbow(city):
    # One white truck on the real Marseille chip, then the same pixels through random atmospheres: the dark
    # pixels of the visible bands get brighter (path light), most in the blue (the city's NIR has no dark
    # pixels: there the loss through the air can outweigh the path light); the truck's excess over the
    # road drops (contrast through the air); a pixel with a missing band stays as it was.
    rng = np.random.default_rng(3)
    clean, trucks = inject_trucks(city.data, city.band_names, rng, 1, speed_kmh=80.0, roof_kind="white")
    clean[0, 0, 0] = np.nan
    r, c = round(trucks[0].row), round(trucks[0].col)

    def excess(a: np.ndarray) -> np.ndarray:
        return a[:, r - 2 : r + 3, c - 2 : c + 3].max(axis=(1, 2)) - np.nanmedian(a, axis=(1, 2))

    for seed in range(5):
        hazy = add_haze(clean, city.band_names, np.random.default_rng(seed))
        gain = np.nanpercentile(hazy, 1, axis=(1, 2)) - np.nanpercentile(clean, 1, axis=(1, 2))
        assert np.all(gain[:3] > 0) and gain[0] == gain.max(), gain
        assert np.all(excess(hazy)[:3] < excess(clean)[:3])
        assert np.isnan(hazy[0, 0, 0]) and np.array_equal(hazy[1:, 0, 0], clean[1:, 0, 0])


#: Rayleigh path reflectance of a sun 25° from zenith (benchmarks/_toa.py, aerosol-free).
RAYLEIGH = {"B02": 0.058, "B03": 0.034, "B04": 0.017, "B08": 0.007}


def _road_and_water(city: RasterWindow, fixtures_dir) -> tuple[np.ndarray, list]:
    """The real Marseille city chip with 20 rows of the real Marseille open-water chip along its bottom (a
    bridge AOI has its river; 16 % water) and 8 white trucks at 85 km/h on its roads."""
    water = open_raster(fixtures_dir / "trucks" / "marseille-water.tif").data
    arr = city.data.copy()
    arr[:, 108:, :96] = water[:, :20, :]
    arr[:, 108:, 96:] = water[:, 20:40, :32]
    data, trucks = inject_trucks(
        arr,
        city.band_names,
        np.random.default_rng(11),
        8,
        min_separation_px=10,
        speed_kmh=85.0,
        roof_kind="white",
    )
    assert len(trucks) == 8
    return data, trucks


def _found(dets, window: RasterWindow, trucks) -> int:
    n = 0
    for t in trucks:
        d = [math.hypot(*np.subtract(_pixel_of(window, x.lon, x.lat), (t.row, t.col))) for x in dets]
        n += int(bool(d) and min(d) <= 2.0)
    return n


def _as_l1c(window: RasterWindow, data: np.ndarray, level: str = "L1C") -> RasterWindow:
    arr = data.copy()
    for i, b in enumerate(window.band_names):
        arr[i] += RAYLEIGH[b]
    return replace(window, data=arr, processing_level=level)


def test_an_l1c_window_with_water_has_its_path_light_taken_off_and_keeps_its_trucks(
    detector, city, fixtures_dir
):
    from detect.core.haze import dark_levels

    data, trucks = _road_and_water(city, fixtures_dir)
    l2a = replace(city, data=data)
    l1c = _as_l1c(city, data)
    ref = detector.spec.dark_reference
    assert set(ref) == set(TRUCK_BANDS)  # the shipped spec carries its training scenes' dark levels
    dets = detector.detect(l1c)
    # the window's own (L2A) dark level plus the path light added, less the reference
    own = dark_levels(data, city.band_names, np.all(np.isfinite(data), axis=0))
    want = {b: own[b] + RAYLEIGH[b] - ref[b] for b in TRUCK_BANDS}
    assert all(v > 0 for v in want.values())
    assert dets and all(d.properties["haze_offsets"] == pytest.approx(want, abs=2e-4) for d in dets)
    assert {d.detector for d in dets} == {"trucks-s2-gbm[haze-corrected]"}
    as_l2a = detector.detect(l2a)
    uncorrected = TruckDetector(detector.booster, detector.spec, haze="off").detect(l1c)
    # L2A finds 5 of 8; the path light alone costs 2 of them; taken off, the L2A level is back
    assert _found(dets, l1c, trucks) >= max(_found(as_l2a, l2a, trucks), 5)
    assert _found(uncorrected, l1c, trucks) < _found(dets, l1c, trucks)
    assert all(d.properties["haze_offsets"] is None and d.detector == "trucks-s2-gbm" for d in uncorrected)
    # L2A is read as it is (auto) unless asked
    assert all(d.properties["haze_offsets"] is None for d in as_l2a)
    forced = TruckDetector(detector.booster, detector.spec, haze="on").detect(l2a)
    assert forced and all(d.properties["haze_offsets"] for d in forced)
    with pytest.raises(ValueError, match="haze must be one of"):
        TruckDetector(detector.booster, detector.spec, haze="yes")


def test_an_l1c_window_of_land_alone_is_read_as_it_is(detector, city):
    # No open water, so no dark object to measure the haze by: on simulated L1C the subtraction lost trucks
    # on such windows (benchmarks/truck_l1c_tiles.py), so the detector leaves them as they are.
    rng = np.random.default_rng(11)
    data, _ = inject_trucks(city.data, city.band_names, rng, 8, min_separation_px=10, speed_kmh=85.0)
    l1c = _as_l1c(city, data)
    dets = detector.detect(l1c)
    off = TruckDetector(detector.booster, detector.spec, haze="off").detect(l1c)
    assert dets and [d.properties for d in dets] == [d.properties for d in off]
    assert all(d.properties["haze_offsets"] is None and d.detector == "trucks-s2-gbm" for d in dets)


def test_detect_cli_takes_the_haze_off_a_file_tagged_l1c_only(tmp_path, city, fixtures_dir, capsys):
    import json

    import rasterio

    from detect.cli import main

    data, _ = _road_and_water(city, fixtures_dir)
    with rasterio.open(fixtures_dir / "trucks" / "marseille-city.tif") as src:
        profile = src.profile
    props = {}
    for level in ("L1C", "L2A"):
        path = tmp_path / f"bridge_{level}.tif"
        dn = np.round(_as_l1c(city, data).data / 1e-4).astype("uint16")  # the same pixels, two levels
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(dn)
            dst.descriptions = TRUCK_BANDS
            dst.update_tags(REFLECTANCE_SCALE="0.0001", PROCESSING_LEVEL=level)
        out = tmp_path / f"{level}.geojson"
        with pytest.raises(SystemExit) as e:
            main(["detect", str(path), "--classes", "truck", "--out", str(out), "--json"])
        assert e.value.code == 0, capsys.readouterr().err
        props[level] = [f["properties"] for f in json.loads(out.read_text())["features"]]
    assert props["L1C"] and all(p["haze_offsets"]["B02"] > 0.05 for p in props["L1C"])
    assert {p["detector"] for p in props["L1C"]} == {"trucks-s2-gbm[haze-corrected]"}
    assert props["L2A"] and all(p["haze_offsets"] is None for p in props["L2A"])


def test_water_share_counts_open_water_among_valid_pixels_only(detector, city, fixtures_dir):
    from detect.trucks.detector import MIN_WATER_SHARE, water_share

    data, _ = _road_and_water(city, fixtures_dir)
    valid = np.all(np.isfinite(data), axis=0)
    assert water_share(data, valid) == pytest.approx(20 * 128 / 128**2, abs=0.01)  # the 20 rows of sea
    holed = data.copy()
    holed[:, :64] = np.nan  # half the chip missing: the sea is a larger share of what is left
    assert water_share(holed, np.all(np.isfinite(holed), axis=0)) == pytest.approx(
        2 * 20 * 128 / 128**2, abs=0.02
    )
    assert water_share(data, np.zeros_like(valid)) == 0.0
    assert water_share(city.data, city.valid_mask) < MIN_WATER_SHARE  # the city chip alone: no water
    # an L1C window with water whose dark levels are already under the reference: ran, took nothing off
    dim = replace(city, data=data * 0.5, processing_level="L1C")
    dets = detector.detect(dim, conf=0.5)
    assert dets and all(d.properties["haze_offsets"] == {} and d.detector == "trucks-s2-gbm" for d in dets)
