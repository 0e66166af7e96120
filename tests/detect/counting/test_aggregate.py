"""Daily counts from hand-made detections and scenes: NA on unobserved days, partial days, overlapping
tiles on one day, length classes, zones."""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, box

from detect.core.geometry import Detection
from detect.counting import aggregate as agg
from imagery.aoi import Aoi, Zone

AOI = Aoi(
    "testport",
    "port",
    box(120.0, 37.0, 120.1, 37.1),
    zones=(
        Zone("berth", "berth", box(120.0, 37.0, 120.05, 37.05)),
        Zone("pier", "bridge_deck", LineString([(120.07, 37.02), (120.07, 37.08)]), buffer_m=200.0),
    ),
)


def det(scene: str, day: int, lon: float, lat: float, length_m: float, cls: str = "ship") -> Detection:
    return Detection(
        class_name=cls,
        score=0.9,
        polygon=Point(lon, lat).buffer(0.0004),
        lon=lon,
        lat=lat,
        length_m=length_m,
        width_m=length_m / 6,
        heading_deg=0.0,
        scene=scene,
        acquired=datetime(2018, 5, day, 2, 40, tzinfo=timezone.utc),
    )


def scene(
    sid: str, day: int, status: str = "clear", cloud: float = 0.0, valid: float = 1.0, minute: int = 40
):
    return dict(
        scene=sid,
        datetime=datetime(2018, 5, day, 2, minute, tzinfo=timezone.utc),
        status=status,
        cloud_fraction=cloud,
        valid_fraction=valid,
        source="test",
        collection="test",
    )


@pytest.fixture()
def tables():
    dets = [
        det("A", 1, 120.01, 37.01, 100.0),  # berth
        det("A", 1, 120.08, 37.09, 200.0),  # AOI only
        det("A", 1, 120.07, 37.05, 30.0),  # on the pier line (buffered)
        det("B", 1, 120.01, 37.01, 101.0),  # the same ship seen on the overlapping tile B
        det("B", 1, 120.02, 37.02, 120.0),  # only on B
        det("P", 2, 120.01, 37.01, 150.0),  # partial day
        det("C", 3, 120.09, 37.02, 45.0),
        det("C", 3, 120.5, 37.5, 80.0),  # outside the AOI: in no zone
        det("C", 3, 120.03, 37.03, 12.0, cls="truck"),
    ]
    detections = agg.detections_table(agg.detection_rows(dets, AOI))
    scenes = agg.scenes_table(
        [
            scene("A", 1),
            scene("B", 1, valid=0.6, minute=41),
            scene("P", 2, status="partial", cloud=0.5),
            scene("C", 3),
            scene("X", 4, status="cloudy", cloud=0.97),
            scene("F", 5, status="failed", cloud=np.nan, valid=np.nan),
        ]
    )
    return detections, scenes


def daily(tables, coverage=None, classes=("ship",)):
    detections, scenes = tables
    return agg.daily_counts(
        detections,
        scenes,
        coverage,
        aoi=AOI.name,
        zones=agg.zone_names(AOI),
        start=date(2018, 4, 30),
        end=date(2018, 5, 6),
        classes=classes,
    )


def row(d: pd.DataFrame, day: int, zone: str = "all", cls: str = "ship", month: int = 5) -> pd.Series:
    sel = d[(d["date"] == date(2018, month, day)) & (d["zone"] == zone) & (d["class"] == cls)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_every_day_of_the_period_appears_for_every_zone_and_class(tables):
    d = daily(tables, classes=("ship", "truck"))
    assert len(d) == 7 * 3 * 2
    assert list(d.columns) == list(agg.DAILY_COLUMNS)
    assert sorted(set(d["date"])) == [date(2018, 4, 30)] + [date(2018, 5, i) for i in range(1, 7)]


def test_days_without_a_clear_view_are_unobserved_with_na_never_zero(tables):
    d = daily(tables)
    for day, month in ((30, 4), (4, 5), (5, 5), (6, 5)):  # no scene, cloudy, failed, no scene
        r = row(d, day, month=month)
        assert r["status"] == "unobserved"
        assert pd.isna(r["count"]) and pd.isna(r["count_50_150m"])
    assert d["count"].dtype == "Int64"
    assert row(d, 4)["scene"] == "X" and row(d, 5)["scene"] == ""  # the failed scene gave no view


def test_two_scenes_on_one_day_count_once_from_the_best_seen(tables):
    r = row(daily(tables), 1)
    assert r["scene"] == "A" and r["scenes"] == "A;B" and r["n_scenes"] == 2
    assert r["count"] == 3  # A's three ships inside the AOI, not A + B = 5
    assert r["status"] == "observed"


def test_zone_coverage_picks_the_scene_that_saw_the_zone(tables):
    # Tile A has the berth under cloud, tile B sees it: the berth's count comes from B.
    cov = agg.coverage_table(
        [
            dict(scene="A", zone="berth", valid_fraction=1.0, cloud_fraction=0.9, observed_fraction=0.1),
            dict(scene="B", zone="berth", valid_fraction=1.0, cloud_fraction=0.0, observed_fraction=1.0),
        ]
    )
    d = daily(tables, coverage=cov)
    assert row(d, 1, "berth")["scene"] == "B"
    assert row(d, 1, "berth")["count"] == 2
    assert row(d, 1, "all")["scene"] == "A"  # no coverage row for "all": scene-level fractions


def test_partial_day_counts_what_was_seen(tables):
    r = row(daily(tables), 2)
    assert r["status"] == "partial"
    assert r["observed_fraction"] == pytest.approx(0.5)
    assert r["count"] == 1


def test_a_day_seen_without_a_cloud_mask_is_observed_unmasked_not_observed(tables):
    detections, scenes = tables
    unmasked = agg.scenes_table([scene("C", 3, status="unknown", cloud=np.nan)])
    scenes = pd.concat([scenes[scenes["scene"] != "C"], unmasked], ignore_index=True)
    d = daily((detections, scenes))
    r = row(d, 3)
    assert r["status"] == agg.OBSERVED_UNMASKED == "observed-unmasked"
    assert r["count"] == 1 and r["scene"] == "C"  # counted all the same
    assert row(d, 1)["status"] == "observed" and set(d["status"]) <= set(agg.DAY_STATUSES)


def test_a_tie_of_whole_views_goes_to_the_scene_whose_clouds_were_screened(tables):
    # A (no cloud mask, earlier) and B (screened clear) both see the whole AOI: the earlier one was counted,
    # and the day said observed-unmasked though a screened view was there
    detections, _ = tables
    scenes = agg.scenes_table([scene("A", 1, status="unknown", cloud=np.nan), scene("B", 1, minute=41)])
    r = row(daily((detections, scenes)), 1)
    assert (r["scene"], r["status"], r["count"]) == ("B", "observed", 2)


def test_length_classes_split_at_50_and_150_m(tables):
    d = daily(tables)
    r1 = row(d, 1)
    assert (r1["count_lt50m"], r1["count_50_150m"], r1["count_gt150m"]) == (1, 1, 1)
    assert row(d, 2)["count_50_150m"] == 1  # exactly 150 m is in the middle class
    r3 = row(d, 3)
    assert (r3["count"], r3["count_lt50m"], r3["count_50_150m"]) == (1, 1, 0)  # 80 m ship is outside the AOI


def test_zones_use_centres_and_buffered_lines(tables):
    detections, _ = tables
    assert list(detections["zones"][:4]) == ["berth;all", "all", "pier;all", "berth;all"]
    assert detections["zone"][2] == "pier"
    assert detections["zones"][7] == ""
    d = daily(tables, classes=("ship", "truck"))
    assert row(d, 1, "pier")["count"] == 1
    assert row(d, 3, "berth", "truck")["count"] == 1
    assert pd.isna(row(d, 3, "berth", "truck")["count_lt50m"])  # length classes are for ships
    assert row(d, 3, "berth", "ship")["count"] == 0  # observed and empty: a real zero


def test_zone_coverage_from_masks():
    masks = {"all": np.ones((4, 4), bool), "z": np.zeros((4, 4), bool)}
    masks["z"][:2, :2] = True
    valid = np.ones((4, 4), bool)
    valid[0, 0] = False
    cloud = np.zeros((4, 4), bool)
    cloud[1, 1] = True
    rows = {r["zone"]: r for r in agg.zone_coverage("s", masks, valid, cloud)}
    assert rows["z"]["valid_fraction"] == pytest.approx(0.75)
    assert rows["z"]["cloud_fraction"] == pytest.approx(1 / 3)
    assert rows["z"]["observed_fraction"] == pytest.approx(0.5)
    no_mask = {r["zone"]: r for r in agg.zone_coverage("s", masks, valid, None)}
    assert np.isnan(no_mask["z"]["cloud_fraction"]) and no_mask["z"]["observed_fraction"] == pytest.approx(
        0.75
    )


def test_zone_masks_rasterise_every_zone():
    grid = AOI.grid(10.0)
    masks = agg.zone_masks(AOI, grid)
    assert set(masks) == {"all", "berth", "pier"}
    assert masks["all"].mean() > 0.9
    assert 0.2 < masks["berth"].sum() / masks["all"].sum() < 0.3
    assert masks["pier"].sum() * 100 == pytest.approx(400 * 6700, rel=0.15)  # 400 m wide, ~6.7 km long


def test_features_round_trip_keeps_every_column(tables):
    detections, _ = tables
    back = agg.detections_table(agg.rows_from_features(agg.features_from_rows(detections)))
    assert list(back.columns) == list(agg.DETECTION_COLUMNS)
    pd.testing.assert_series_equal(back["length_m"], detections["length_m"])
    assert list(back["date"]) == list(detections["date"])
    assert back["acquired"].iloc[0] == detections["acquired"].iloc[0]
    assert back["geometry"].iloc[0].equals_exact(detections["geometry"].iloc[0], 1e-6)


def test_status_thresholds_are_checked():
    with pytest.raises(ValueError, match="partial_min"):
        agg.AggregateParams(observed_min=0.5, partial_min=0.8)
    p = agg.AggregateParams()
    assert [p.status(x) for x in (None, float("nan"), 0.1, 0.5, 0.95)] == [
        "unobserved",
        "unobserved",
        "unobserved",
        "partial",
        "observed",
    ]


def test_no_scenes_at_all_gives_a_full_period_of_unobserved_days():
    d = agg.daily_counts(
        agg.detections_table([]),
        agg.scenes_table([]),
        None,
        aoi=AOI.name,
        zones=agg.zone_names(AOI),
        start=date(2018, 5, 1),
        end=date(2018, 6, 30),
        classes=("ship",),
    )
    assert len(d) == 61 * 3
    assert (d["status"] == "unobserved").all() and d["count"].isna().all()


def test_clear_s2_counts_first_and_s1_fills_the_days_s2_did_not_see():
    dets = [
        det("A", 1, 120.01, 37.01, 100.0),
        det("R1", 1, 120.01, 37.01, 110.0),
        det("R1", 1, 120.02, 37.02, 30.0),
        det("P", 2, 120.01, 37.01, 100.0),
        det("R2", 2, 120.01, 37.01, 120.0),
        det("R2", 2, 120.02, 37.02, 60.0),
        det("R2", 2, 120.03, 37.03, 15.0),
        det("P", 2, 120.03, 37.03, 12.0, cls="truck"),
    ]
    detections = agg.detections_table(agg.detection_rows(dets, AOI))
    detections.loc[detections["scene"] == "R2", "dark"] = [False, True, True]

    def radar(sid, day, fixes=None, **kw):
        return dict(scene(sid, day, minute=10), processing_level="GRD", ais_fixes=fixes, **kw)

    scenes = agg.scenes_table(
        [
            scene("A", 1, valid=0.95),  # clear enough: S2 wins over the radar's full view
            radar("R1", 1),
            scene("P", 2, status="partial", cloud=0.5),  # half under cloud: the radar fills the day
            radar("R2", 2, fixes=12),
            scene("X", 3, status="cloudy", cloud=0.97),
        ]
    )
    # sorted by time (radar at :10); R1 says no sensor, but a GRD scene is Sentinel-1
    assert list(scenes["sensor"]) == ["S1", "S2", "S1", "S2", "S2"]
    d = agg.daily_counts(
        detections,
        scenes,
        None,
        aoi=AOI.name,
        zones=agg.zone_names(AOI),
        start=date(2018, 5, 1),
        end=date(2018, 5, 3),
        classes=("ship", "truck"),
    )
    r1, r2 = row(d, 1), row(d, 2)
    assert (r1["scene"], r1["sensor"], r1["count"], r1["n_scenes"]) == ("A", "S2", 1, 2)
    assert (r2["scene"], r2["sensor"], r2["count"], r2["status"]) == ("R2", "S1", 3, "observed")
    assert (r2["count_lt50m"], r2["count_50_150m"]) == (1, 2)
    assert r2["dark_count"] == 2  # AIS covered R2: two of its three ships had no partner
    assert pd.isna(r1["dark_count"])  # A had no AIS data: not assessed, not 0
    # Radar cannot count trucks: the truck day is the partial S2 view, and only S2 scenes are listed.
    t2 = row(d, 2, cls="truck")
    assert (t2["scene"], t2["sensor"], t2["status"], t2["count"]) == ("P", "S2", "partial", 1)
    assert t2["scenes"] == "P" and row(d, 2)["scenes"] == "R2;P"
    assert pd.isna(t2["dark_count"])  # AIS says nothing about trucks
    r3 = row(d, 3)
    assert (r3["status"], r3["sensor"]) == ("unobserved", "S2") and pd.isna(r3["count"])


def test_dark_and_mmsi_survive_the_geojson_round_trip():
    d = det("A", 1, 120.01, 37.01, 100.0)
    rows = agg.detection_rows([d.with_properties(dark=False, mmsi=412345678), d], AOI)
    table = agg.detections_table(rows)
    assert str(table["dark"].dtype) == "boolean" and str(table["mmsi"].dtype) == "Int64"
    back = agg.detections_table(agg.rows_from_features(agg.features_from_rows(table)))
    assert back["dark"].tolist()[0] is False and pd.isna(back["dark"].iloc[1])
    assert back["mmsi"].iloc[0] == 412345678 and pd.isna(back["mmsi"].iloc[1])


def test_truck_days_carry_the_measured_count_uncertainty_and_ships_none(tables):
    d = daily(tables, classes=("ship", "truck"))
    t = row(d, 3, "berth", "truck")
    assert t["count"] == 1
    assert t["count_uncertainty"] == pytest.approx(round(1 * agg.COUNT_REL_ERROR["truck"], 1))
    assert pd.isna(row(d, 3, "berth", "ship")["count_uncertainty"])  # no hand-count error measured for ships
    assert pd.isna(row(d, 4, "berth", "truck")["count_uncertainty"])  # unobserved: no count, no ±


def test_truck_count_uncertainty_is_the_error_recorded_on_the_truck_model():
    import json

    from detect.core.weights import weights_dir

    spec = json.loads((weights_dir() / "trucks-s2.json").read_text())
    measured = abs(spec["metrics"]["real"]["count_error"])
    assert agg.COUNT_REL_ERROR["truck"] == pytest.approx(measured, abs=0.005)


def test_a_class_a_scene_could_not_search_is_unobserved_or_counted_from_another_scene():
    # day 1: tile A (best view) had no truck input (B08 empty), tile B saw trucks; day 3: only C, no trucks
    dets = [
        det("A", 1, 120.01, 37.01, 100.0),
        det("B", 1, 120.02, 37.02, 12.0, cls="truck"),
        det("C", 3, 120.03, 37.03, 90.0),
    ]
    detections = agg.detections_table(agg.detection_rows(dets, AOI))
    scenes = agg.scenes_table(
        [
            {**scene("A", 1), "unobserved_classes": "truck"},
            scene("B", 1, valid=0.95, minute=41),
            {**scene("C", 3), "unobserved_classes": "truck"},
        ]
    )
    d = daily((detections, scenes), classes=("ship", "truck"))
    assert row(d, 1)["scene"] == "A" and row(d, 1)["count"] == 1 and row(d, 1)["scenes"] == "A;B"
    t1 = row(d, 1, cls="truck")
    assert t1["scene"] == "B" and t1["scenes"] == "B" and t1["count"] == 1 and t1["status"] == "observed"
    assert row(d, 3)["count"] == 1 and row(d, 3)["status"] == "observed"
    t3 = row(d, 3, cls="truck")
    assert t3["status"] == "unobserved" and pd.isna(t3["count"]) and t3["scene"] == ""


def test_scene_and_detection_times_mixing_whole_and_fractional_seconds_parse():
    """Records store ``datetime.isoformat()``, which drops ".000000": one scene's time may carry fractional
    seconds and the next none. The tables used to infer one format from the first value and raise on the
    other, so the run crashed at aggregation on every rerun."""
    scenes = agg.scenes_table(
        [
            {**scene("A", 1), "datetime": "2018-05-01T02:40:00+00:00"},
            {**scene("B", 2), "datetime": "2018-05-02T02:40:00.900000+00:00"},
        ]
    )
    assert list(scenes["datetime"].dt.microsecond) == [0, 900000]
    rows = agg.detection_rows([det("A", 1, 120.01, 37.01, 100.0), det("B", 2, 120.01, 37.01, 100.0)], AOI)
    rows[0]["acquired"], rows[1]["acquired"] = "2018-05-01T02:40:00+00:00", "2018-05-02T02:40:00.5+00:00"
    table = agg.detections_table(rows)
    assert list(table["acquired"].dt.microsecond) == [0, 500000]
