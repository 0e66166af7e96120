"""AIS matching: positions brought to the image time, one-to-one pairing in the ship's frame (and the legacy
isotropic matcher), dark vessels. Real AIS: test_ais_real.py."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from pyproj import Geod
from shapely.geometry import Point, Polygon

from detect.core.geometry import Detection
from detect.counting.ais import (
    AisError,
    AisParams,
    ais_positions_at,
    load_ais,
    match_ais,
    normalise_ais,
)
from imagery.errors import InputError

T = datetime(2018, 6, 1, 9, 50, tzinfo=timezone.utc)  # an S1 pass over Longkou
LON0, LAT0 = 120.30, 37.65
GEOD = Geod(ellps="WGS84")


def offset(east_m: float, north_m: float, lon: float = LON0, lat: float = LAT0) -> tuple[float, float]:
    lon1, lat1, _ = GEOD.fwd(lon, lat, 90.0, east_m)
    lon2, lat2, _ = GEOD.fwd(lon1, lat1, 0.0, north_m)
    return lon2, lat2


def det(east_m: float, north_m: float, length_m: float = 0.0) -> Detection:
    lon, lat = offset(east_m, north_m)
    return Detection("ship", 0.9, Point(lon, lat).buffer(1e-4), lon, lat, length_m, 10.0, 0.0,
                     scene="S1A_test", acquired=T, sensor="S1", detector="cfar")


def fix(mmsi: int, minutes: float, east_m: float, north_m: float, **extra) -> dict:
    lon, lat = offset(east_m, north_m)
    return {"MMSI": mmsi, "BaseDateTime": (T + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S"),
            "LAT": lat, "LON": lon, **extra}


def scenario() -> tuple[list[Detection], pd.DataFrame, list[int | None]]:
    """Dead reckoning, track extrapolation and the Hungarian assignment at the legacy matcher's scale (500 m
    between centres, lengths within 60 %); the ship-frame matcher has its own scenes below."""
    kn = 1852 / 3600
    rows = [
        # 101: bracketing fixes 10 min apart, 10 kn east → interpolated halfway.
        fix(101, -5, 0, 0, SOG=10, COG=90, Length=180),
        fix(101, 5, 10 * kn * 600, 0, SOG=10, COG=90, Length=180),
        # 102: one fix 10 min before, 12 kn due east → dead-reckoned 3.7 km on.
        fix(102, -10, 0, 3000, SOG=12, COG=90, Length=90),
        # 103: two fixes before, no SOG/COG → extrapolated along its own track (200 m per 5 min north).
        fix(103, -10, -3000, 0), fix(103, -5, -3000, 200),
        # 104 (50 m) near two detections: the closer one is 200 m long, so the farther 55 m one is 104.
        fix(104, 0, 3000, -3000, Length=50),
        # 105 and 106, 250 m apart: nearest-first would give 105 to X and leave Y dark.
        fix(105, 0, -3000, -3000, SOG=0, COG=0), fix(106, 0, -2750, -3000, SOG=0, COG=0),
        # 107 is two hours late: never used, so the vessel under it is dark.
        fix(107, 120, 6000, 6000, SOG=0, COG=0),
    ]
    dets = [
        det(10 * kn * 300 + 40, 30, 170),  # 101 interpolated
        det(12 * kn * 600 - 60, 3000 + 50, 95),  # 102 dead-reckoned
        det(-3000 + 20, 400 - 30),  # 103 track-extrapolated (200 m per 5 min, 5 min on)
        det(3000 + 150, -3000 - 100, 200),  # too long for 104 → dark
        det(3000 + 300, -3000 + 100, 55),  # 104
        det(-2900, -3000),  # X: 100 m from 105, 150 m from 106
        det(-3300, -3000),  # Y: 300 m from 105, 550 m from 106 (out of reach)
        det(6000, 6000, 60),  # under the late fix: dark
        det(20_000, 20_000, 120),  # open sea, no AIS at all: dark
    ]
    expected = [101, 102, 103, None, 104, 106, 105, None, None]
    return dets, pd.DataFrame(rows), expected


def test_legacy_matching_gives_the_known_answer_with_dead_reckoning_and_dark_vessels():
    dets, raw, expected = scenario()
    ais = normalise_ais(raw)
    result = match_ais(dets, ais, AisParams.legacy())
    assert result.mmsi_by_detection == expected
    assert result.n_dark == 3 and result.n_matched == 6
    by_mmsi = {m.mmsi: m for m in result.matches}
    assert by_mmsi[101].method == "interpolated" and by_mmsi[101].distance_m < 80
    assert by_mmsi[102].method == "dead_reckoned" and by_mmsi[102].distance_m < 100
    assert by_mmsi[103].method == "track_extrapolated" and by_mmsi[103].distance_m < 60
    assert [d.properties["dark"] for d in result.detections] == [m is None for m in expected]
    # Inputs are not modified; outputs keep everything else.
    assert "dark" not in dets[0].properties and result.detections[0].sensor == "S1"
    assert result.unmatched_mmsi == ()  # every AIS vessel in time found its detection


def test_without_dead_reckoning_the_moving_vessel_would_be_dark():
    dets, raw, _ = scenario()
    ais = normalise_ais(raw)
    strict = AisParams.legacy(max_extrapolation_s=0.0, max_unmoved_s=0.0)
    result = match_ais(dets, ais, strict)
    assert result.mmsi_by_detection[:3] == [101, None, None]  # 102 and 103 need extrapolation


def test_positions_at_image_time_interpolate_and_dead_reckon():
    _, raw, _ = scenario()
    pos = ais_positions_at(normalise_ais(raw), T).set_index("mmsi")
    assert 107 not in pos.index  # outside the ±30 min window
    lon, lat = offset(10 * 1852 / 3600 * 300, 0)
    assert pos.loc[101, "lon"] == pytest.approx(lon, abs=2e-5)
    assert pos.loc[101, "lat"] == pytest.approx(lat, abs=2e-5)
    lon, lat = offset(12 * 1852 / 3600 * 600, 3000)
    assert pos.loc[102, "lon"] == pytest.approx(lon, abs=2e-5) and pos.loc[102, "dt_s"] == 600
    with pytest.raises(ValueError, match="timezone-aware"):
        ais_positions_at(normalise_ais(raw), T.replace(tzinfo=None))


def test_ais_loads_from_csv_and_parquet_with_common_column_names(tmp_path):
    _, raw, _ = scenario()
    csv = tmp_path / "ais.csv"
    raw.to_csv(csv, index=False)
    pq = tmp_path / "ais.parquet"
    raw.rename(columns={"MMSI": "mmsi", "BaseDateTime": "timestamp", "LAT": "latitude", "LON": "longitude",
                        "SOG": "sog", "COG": "cog", "Length": "length"}).to_parquet(pq)
    a, b = load_ais(csv), load_ais(pq)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == [
        "mmsi", "timestamp", "lat", "lon", "sog_kn", "cog_deg", "length_m", "heading_deg", "width_m",
        "to_bow_m", "to_stern_m", "to_port_m", "to_starboard_m", "ship_type", "nav_status",
    ]
    assert str(a["timestamp"].dt.tz) == "UTC" and len(a) == len(raw)


def test_bad_ais_input_is_a_clear_error(tmp_path):
    bad = tmp_path / "ais.csv"
    pd.DataFrame({"mmsi": [1], "lat": [37.6], "lon": [120.3]}).to_csv(bad, index=False)
    with pytest.raises(AisError, match=r"lacks column.*timestamp") as e:
        load_ais(bad)
    assert isinstance(e.value, InputError)
    with pytest.raises(AisError, match="no such AIS file"):
        load_ais(tmp_path / "missing.csv")
    with pytest.raises(AisError, match=r"\.csv or \.parquet"):
        (tmp_path / "ais.json").write_text("[]")
        load_ais(tmp_path / "ais.json")


def test_not_available_codes_are_dropped():
    raw = pd.DataFrame([fix(1, 0, 0, 0, SOG=102.3, COG=360.0, Length=0), fix(2, 0, 0, 0)])
    raw.loc[1, "LAT"] = 91.0
    ais = normalise_ais(raw)
    assert list(ais["mmsi"]) == [1]
    assert ais.loc[0, ["sog_kn", "cog_deg", "length_m"]].isna().all()


# --- the ship-frame matcher (default) ---------------------------------------------------------------------


def box(east_m: float, north_m: float, length_m: float, width_m: float, heading_deg: float) -> Detection:
    """A detected oriented box centred east_m/north_m from the origin, its long side along heading_deg."""
    h = math.radians(heading_deg)
    u = (math.sin(h) * length_m / 2, math.cos(h) * length_m / 2)
    w = (math.cos(h) * width_m / 2, -math.sin(h) * width_m / 2)
    corners = [offset(east_m + a * u[0] + b * w[0], north_m + a * u[1] + b * w[1]) for a, b in
               ((1, 1), (1, -1), (-1, -1), (-1, 1))]
    lon, lat = offset(east_m, north_m)
    return Detection("ship", 0.9, Polygon(corners), lon, lat, length_m, width_m, heading_deg % 180,
                     scene="S2_test", acquired=T, sensor="S2", detector="yolo")


def snapshot(*rows: dict) -> pd.DataFrame:
    """AIS positions at T (no timestamps), one dict per vessel at east/north metres from the origin."""
    out = []
    for r in rows:
        r = dict(r)
        lon, lat = offset(r.pop("east", 0.0), r.pop("north", 0.0))
        out.append({"MMSI": r.pop("mmsi"), "Latitude": lat, "Longitude": lon, **r})
    return normalise_ais(pd.DataFrame(out), when=T)


def test_the_hull_is_placed_from_the_antenna_by_a_b_c_d():
    # Heading east; antenna 80 m behind the bow and 20 m ahead of the stern: the hull centre is 30 m ahead
    # of it, and 4 m to port (C = 10, D = 2).
    det = box(30, 4, 100, 12, 90)
    ais = snapshot({"mmsi": 1, "Heading": 90, "A": 80, "B": 20, "C": 10, "D": 2, "Length": 100})
    m = match_ais([det], ais).matches[0]
    assert m.along_m == pytest.approx(0, abs=1) and m.across_m == pytest.approx(0, abs=1)
    flipped = snapshot({"mmsi": 1, "Heading": 90, "A": 20, "B": 80, "C": 2, "D": 10, "Length": 100})
    m = match_ais([det], flipped).matches[0]  # the same box, 60 m ahead of and 8 m to port of that hull
    assert m.along_m == pytest.approx(60, abs=1) and m.across_m == pytest.approx(-8, abs=1)


def test_a_cargo_ship_without_a_b_has_its_antenna_aft():
    det = box(35, 0, 100, 16, 90)  # hull centre 0.35 L ahead of the antenna
    cargo = snapshot({"mmsi": 1, "Heading": 90, "Length": 100, "Ship type": "Cargo"})
    assert match_ais([det], cargo).matches[0].along_m == pytest.approx(0, abs=1)
    other = snapshot({"mmsi": 1, "Heading": 90, "Length": 100, "Ship type": "Passenger"})
    assert match_ais([det], other).matches[0].along_m == pytest.approx(35, abs=1)
    itu = snapshot({"mmsi": 1, "Heading": 90, "Length": 100, "Ship type": 81})  # tanker, by ITU code
    assert match_ais([det], itu).matches[0].along_m == pytest.approx(0, abs=1)
    centred = AisParams(aft_antenna_fraction=0.0)
    assert match_ais([det], cargo, centred).matches[0].along_m == pytest.approx(35, abs=1)


def test_a_box_stretched_by_the_wake_is_still_its_ship_and_the_legacy_matcher_calls_it_dark():
    # A 50 m ferry heading north at speed: the box is 220 m of hull and wake, its front end at the bow.
    det = box(0, 25 - 110, 220, 20, 0)
    ais = snapshot({"mmsi": 7, "Heading": 0, "Length": 50, "Width": 12})
    assert match_ais([det], ais).mmsi_by_detection == [7]
    assert match_ais([det], ais, AisParams.legacy()).mmsi_by_detection == [None]  # 4.4 × the AIS length


def test_the_across_gate_keeps_a_ship_from_the_neighbour_beside_it():
    ais = snapshot({"mmsi": 3, "Heading": 0, "Length": 100, "Width": 16, "Navigational status": "Moored"})
    assert match_ais([box(15, 0, 100, 16, 0)], ais).mmsi_by_detection == [3]  # 15 m: within the beam + gate
    assert match_ais([box(60, 0, 100, 16, 0)], ais).mmsi_by_detection == [None]  # the next berth over
    assert match_ais([box(60, 0, 100, 16, 0)], ais, AisParams.legacy()).mmsi_by_detection == [3]


def test_the_along_gate_grows_with_speed_for_the_image_timing():
    # The box's nearest end is 70 m beyond the hull's bow: too far for a moored ship, within reach of one
    # doing 15 kn (7.7 m/s × 10 s of uncertainty in the image time, plus 30 m).
    det = box(0, 50 + 70 + 50, 100, 16, 0)
    hull = {"mmsi": 4, "Heading": 0, "A": 50, "B": 50}
    moored = snapshot({**hull, "Navigational status": "Moored"})
    moving = snapshot({**hull, "SOG": 15})
    assert match_ais([det], moored).mmsi_by_detection == [None]
    assert match_ais([det], moving).mmsi_by_detection == [4]
    assert match_ais([det], moving, AisParams(scene_time_uncertainty_s=0)).mmsi_by_detection == [None]
    unknown = snapshot(hull)  # no SOG, not moored: 12 kn assumed
    assert match_ais([det], unknown).mmsi_by_detection == [4]


def test_dead_reckoning_error_widens_both_gates():
    # One fix 10 min before at 12 kn due east: reckoned 3.7 km on; the box lies 150 m off that, across.
    kn = 1852 / 3600
    raw = pd.DataFrame([fix(9, -10, 0, 0, SOG=12, COG=90, Length=90, Heading=90)])
    det = box(12 * kn * 600, 150, 90, 14, 90)
    assert match_ais([det], normalise_ais(raw)).mmsi_by_detection == [9]  # 10 % of 3.7 km + 20 m
    near = pd.DataFrame([fix(9, 0, 12 * kn * 600, 0, SOG=12, COG=90, Length=90, Heading=90)])
    assert match_ais([det], normalise_ais(near)).mmsi_by_detection == [None]  # a fix at image time


def test_without_heading_or_course_the_detection_axis_is_the_ship_axis():
    ais = snapshot({"mmsi": 5, "Length": 40})  # a Class B contact: no heading, no SOG
    assert match_ais([box(0, 100, 200, 20, 0)], ais).mmsi_by_detection == [5]  # the AIS at the box's end
    assert match_ais([box(60, 0, 200, 20, 0)], ais).mmsi_by_detection == [None]  # 50 m beside it


def test_pairs_are_assigned_together_not_nearest_first():
    # X is nearer 105 but can also take 106; Y can only take 105.
    ais = snapshot({"mmsi": 105, "east": 0, "Navigational status": "Moored"},
                   {"mmsi": 106, "east": 25, "Navigational status": "Moored"})
    x, y = box(10, 0, 12, 6, 0), box(-22, 0, 12, 6, 0)
    assert match_ais([x, y], ais).mmsi_by_detection == [106, 105]


def test_snapshot_tables_and_danish_maritime_authority_columns():
    raw = pd.DataFrame(
        {
            "# Timestamp": ["12/08/2022 10:30:31", "12/08/2022 10:30:31", "12/08/2022 10:30:40"],
            "Type of mobile": ["Class A", "Base Station", "Class B"],
            "MMSI": [219000836, 2190075, 211411960],
            "Latitude": [55.0084, 55.03, 55.0113],
            "Longitude": [10.5078, 10.61, 10.5118],
            "Heading": [187.0, None, 511],
            "A": [40, None, 0], "B": [20, None, 0], "Length": [None, None, 11],
        }
    )
    ais = normalise_ais(raw)
    assert list(ais["mmsi"]) == [211411960, 219000836]  # the base station is not a ship
    assert ais["timestamp"].dt.month.tolist() == [8, 8]  # day first: 12 August, not 8 December
    a = ais.set_index("mmsi")
    assert a.loc[219000836, "length_m"] == 60 and np.isnan(a.loc[211411960, "heading_deg"])  # A+B; 511
    snap = normalise_ais(raw.drop(columns="# Timestamp"), when=T)
    assert (snap["timestamp"] == pd.Timestamp(T)).all()
    with pytest.raises(AisError, match="snapshot without timestamps needs the image time"):
        normalise_ais(raw.drop(columns="# Timestamp"))


def test_a_radar_detection_of_a_moving_ship_may_lie_far_along_track():
    # Sentinel-1 puts a ship moving towards the radar hundreds of metres along the satellite track from
    # where it is; a moored ship stays put.
    det = replace(box(300, 0, 100, 16, 0), sensor="S1", detector="cfar")
    moving = snapshot({"mmsi": 8, "Heading": 0, "A": 50, "B": 50, "SOG": 10})
    moored = snapshot({"mmsi": 8, "Heading": 0, "A": 50, "B": 50, "Navigational status": "Moored"})
    assert match_ais([det], moving).mmsi_by_detection == [8]
    assert match_ais([det], moored).mmsi_by_detection == [None]
    assert match_ais([replace(det, sensor="S2")], moving).mmsi_by_detection == [None]  # optical: no shift


def test_timestamps_of_mixed_precision_parse_and_bad_ones_say_so_on_one_line():
    times = ["2023-07-05T10:00:30Z", "2023-07-05T10:00:31.5Z"]
    raw = pd.DataFrame({"mmsi": [1, 2], "timestamp": times, "lat": [44.4, 44.41], "lon": [8.9, 8.91]})
    ais = normalise_ais(raw)
    assert sorted(ais["timestamp"].dt.microsecond) == [0, 500000]
    bad = raw.assign(timestamp=["2023-07-05T10:00:30Z", "not a time"])
    with pytest.raises(InputError) as e:
        normalise_ais(bad)
    assert "\n" not in str(e.value)


def test_rows_left_out_for_a_position_out_of_range_are_counted_aloud(tmp_path, caplog):
    _, raw, _ = scenario()
    raw = raw.copy()
    raw.loc[raw.index[:2], "LAT"] = [444.0, 91.0]  # a scaled column, and AIS's "not available"
    csv = tmp_path / "ais.csv"
    raw.to_csv(csv, index=False)
    with caplog.at_level("WARNING"):
        a = load_ais(csv)
    assert len(a) == len(raw) - 2
    assert f"2 of {len(raw)} AIS row(s) left out" in caplog.text


def test_a_day_first_feed_is_refused_not_read_with_each_value_in_its_own_order():
    """The mixed-precision fallback parsed each value on its own: 01/02/2018 became 2 January (month first)
    beside 13/02/2018 as 13 February (day first, since 13 is no month), and the feed was matched with
    timestamps weeks off, without a word. Times neither of one format nor ISO 8601 are refused."""
    times = ["01/02/2018 10:00:00", "13/02/2018 10:00:00"]
    raw = pd.DataFrame({"mmsi": [1, 2], "timestamp": times, "lat": [44.4, 44.41], "lon": [8.9, 8.91]})
    with pytest.raises(InputError, match="timestamps cannot be parsed"):
        normalise_ais(raw)
