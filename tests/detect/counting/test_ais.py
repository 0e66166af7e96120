"""AIS matching: positions brought to the image time, one-to-one pairing, dark vessels."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from pyproj import Geod
from shapely.geometry import Point

from detect.core.geometry import Detection
from detect.counting.ais import AisError, AisParams, ais_positions_at, load_ais, match_ais, normalise_ais
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


def test_matching_gives_the_known_answer_with_dead_reckoning_and_dark_vessels():
    dets, raw, expected = scenario()
    ais = normalise_ais(raw)
    result = match_ais(dets, ais)
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
    strict = AisParams(max_extrapolation_s=0.0, max_unmoved_s=0.0)
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
    assert list(a.columns) == ["mmsi", "timestamp", "lat", "lon", "sog_kn", "cog_deg", "length_m"]
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
