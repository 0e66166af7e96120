"""AIS matching on real AIS: four eotdl Sentinel-2 windows around Kiel Bay (T32UNF, 2022-08-12) with every AIS
contact of the tile at image time that lies in them (tests/fixtures/ais, made by tools/make_ais_fixtures.py;
the whole data set: benchmarks/ais_match_eotdl.py, docs/ais.md).

The matching tests run on the detections the YOLO model (the default detector then) gave on these windows
(detections.geojson), so a new detector does not move them; the last test checks YOLO still gives them.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
import rasterio
from shapely.geometry import shape

from detect.core.geometry import Detection
from detect.counting.ais import AisParams, load_ais, match_ais

FIXTURES = Path(__file__).parents[2] / "fixtures" / "ais"
#: The AIS rows are positions at image time without timestamps: a snapshot at the datatake's start.
T = datetime(2022, 8, 12, 10, 30, 31, tzinfo=timezone.utc)

#: Per window, the AIS partner of each detection (by detected length, metres rounded) and the AIS ships
#: that no detection took; checked by eye on the pixels.
EXPECTED = {
    # A cargo ship (99 m) and a pilot boat (18 m) whose box is 162 m of wake; a small boat with no AIS.
    "eotdl_275519000": ({162: 211533370, 111: 275519000, 77: None}, ()),
    # A 60 m ferry heading south, its box 230 m of hull and wake; a Class B boat (11 m) not detected.
    "eotdl_219000836": ({230: 219000836}, (211411960,)),
    # Kiel: a box at a quay with no AIS on it; the moored cruise ship (304 m) 445 m away is not detected.
    "eotdl_211848130": ({127: None}, (211240870, 211848130, 247353700, 259222000)),
    # Kiel Canal: a 142 m cargo ship whose antenna is far aft.
    "eotdl_210167000": ({156: 210167000}, ()),
}


def load_detections() -> dict[str, list[Detection]]:
    doc = json.loads((FIXTURES / "detections.geojson").read_text())
    out: dict[str, list[Detection]] = {}
    for f in doc["features"]:
        p = f["properties"]
        d = Detection(
            p["class"],
            p["score"],
            shape(f["geometry"]),
            p["lon"],
            p["lat"],
            p["length_m"],
            p["width_m"],
            p["heading_deg"],
            scene=p["scene"],
            acquired=T,
            detector=p["detector"],
        )
        out.setdefault(p["scene"], []).append(d)
    return out


def ais_in(scene: str, ais: pd.DataFrame) -> pd.DataFrame:
    with rasterio.open(FIXTURES / f"{scene}.tif") as src:
        b = src.bounds
    return ais[ais["lon"].between(b.left, b.right) & ais["lat"].between(b.bottom, b.top)]


@pytest.fixture(scope="module")
def real() -> tuple[dict[str, list[Detection]], pd.DataFrame]:
    return load_detections(), load_ais(FIXTURES / "ais.csv", when=T)


def outcome(dets: list[Detection], ais: pd.DataFrame, params: AisParams) -> tuple[dict, tuple]:
    r = match_ais(dets, ais, params)
    return {round(d.length_m): d.properties["mmsi"] for d in r.detections}, r.unmatched_mmsi


def test_the_upstream_ais_table_reads_as_a_snapshot_of_ships(real):
    _, ais = real
    assert len(ais) == 9 and (ais["timestamp"] == pd.Timestamp(T)).all()
    a = ais.set_index("mmsi")
    assert a.loc[275519000, "ship_type"] == "Cargo" and a.loc[247353700, "nav_status"] == "Moored"
    assert a.loc[210167000, "heading_deg"] == pytest.approx(50.8) and a.loc[210167000, "length_m"] == 142


@pytest.mark.parametrize("scene", sorted(EXPECTED))
def test_real_detections_pair_with_their_own_ships(real, scene):
    dets, ais = real
    assert outcome(dets[scene], ais_in(scene, ais), AisParams()) == EXPECTED[scene]


def test_the_legacy_matcher_got_three_of_the_four_windows_wrong(real):
    # Before issue 16: wake-stretched boxes failed the 60 % length tolerance (dark, their ships unmatched),
    # and a 304 m cruise ship's AIS was given to an unrelated box 445 m away.
    dets, ais = real
    legacy = {s: outcome(dets[s], ais_in(s, ais), AisParams.legacy()) for s in EXPECTED}
    assert legacy["eotdl_275519000"] == ({162: None, 111: 275519000, 77: None}, (211533370,))
    assert legacy["eotdl_219000836"] == ({230: None}, (211411960, 219000836))
    assert legacy["eotdl_211848130"][0] == {127: 247353700}
    assert legacy["eotdl_210167000"] == EXPECTED["eotdl_210167000"]


def test_the_antenna_offset_puts_the_cargo_hull_on_its_box(real):
    # The AIS position of a cargo ship is its antenna, on the bridge far aft: 37 m and 56 m behind the box
    # centre here. Placed 0.35 L ahead, the hull centre falls within 10 m of it, along and across.
    dets, ais = real
    for scene, mmsi in (("eotdl_275519000", 275519000), ("eotdl_210167000", 210167000)):
        for params, along in ((AisParams(), (0, 10)), (AisParams(aft_antenna_fraction=0.0), (30, 60))):
            m = next(m for m in match_ais(dets[scene], ais_in(scene, ais), params).matches if m.mmsi == mmsi)
            assert along[0] <= abs(m.along_m) <= along[1] and abs(m.across_m) <= 10, (scene, params)


def test_the_ferry_lies_behind_its_ais_position(real):
    # In the north of the tile the ferry's box (hull at its south end, wake north) ends 26 m short of the
    # AIS position ahead of it: the image there was taken earlier than the AIS time. The box is matched
    # because the AIS hull and the box overlap along the heading; across, they agree within 5 m.
    dets, ais = real
    m = match_ais(dets["eotdl_219000836"], ais_in("eotdl_219000836", ais)).matches[0]
    assert m.mmsi == 219000836 and m.along_m < -100 and abs(m.across_m) <= 5


def test_the_detector_that_made_them_still_finds_these_detections():
    # the YOLO model (the default until v4 of the segmentation model) made detections.geojson
    from detect.detectors import detect_paths

    stored = load_detections()
    assert {d.detector.split(":")[0] for ds in stored.values() for d in ds} == {"yolo"}
    found, _ = detect_paths(sorted(FIXTURES.glob("eotdl_*.tif")), classes=("ship",), method="yolo")
    for scene, want in stored.items():
        got = [d for d in found if d.scene == scene]
        close = [
            any(
                abs(g.length_m - w.length_m) <= 15
                and math.hypot((g.lon - w.lon) * 64_500, (g.lat - w.lat) * 110_574) <= 20
                for g in got
            )
            for w in want
        ]
        assert len(got) == len(want) and all(close), (
            f"{scene}: the detector now finds {[round(g.length_m) for g in got]} m boxes, the fixture has "
            f"{[round(w.length_m) for w in want]}; rerun tools/make_ais_fixtures.py and check EXPECTED"
        )
