"""Sentinel-1 in the run pipeline: a local folder with a real Sentinel-2 chip and simulated, calibrated
Sentinel-1 scenes (gamma speckle with injected vessels of known position) on other days and on a cloudy
Sentinel-2 day. The S1 path runs the real reader and CFAR detector; S2 ships are the chip's hand labels."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from shapely.geometry import shape

from detect import pipeline
from detect.sar.s1 import margin_grid
from detect.sar.sim import inject_vessel, simulate_clutter
from imagery.errors import InputError
from tests.detect.pipeline.test_pipeline import (
    AOI,
    DAY,
    SAMPLE,
    CountingDetect,
    LabelledVessels,
    _copy_scene,
    labels_inside,
)

GRID = AOI.grid(10.0)
#: The S1 rasters reach this many pixels beyond the AOI grid; the run reads 1 km (100 px) beyond it.
RASTER_MARGIN_PX = 120
MARGIN_M = 1000.0
CLUTTER_DB = -20.0
S1_DAY1 = datetime.combine(DAY + timedelta(days=1), time(4, 30), tzinfo=timezone.utc)
S1_DAY2 = datetime.combine(DAY + timedelta(days=2), time(16, 40), tzinfo=timezone.utc)
#: Vessels (row, col on the AOI grid, length m). The last of day 1 lies off the AOI grid, in the margin.
VESSELS_DAY1 = [(60, 70, 120.0), (180, 250, 90.0), (290, 120, 150.0), (-60, 150, 140.0)]
VESSELS_DAY2 = [(100, 100, 110.0), (250, 280, 160.0)]


def _lonlat(row: float, col: float) -> tuple[float, float]:
    x, y = GRID.transform * (col + 0.5, row + 0.5)
    lon, lat = Transformer.from_crs(GRID.crs, "EPSG:4326", always_xy=True).transform(x, y)
    return float(lon), float(lat)


def _nearest(dets: pd.DataFrame, row: float, col: float, tol_deg: float = 0.0005) -> pd.Series | None:
    """The detection whose centre is nearest the grid pixel (row, col), if within ``tol_deg`` (~50 m)."""
    lon, lat = _lonlat(row, col)
    dist = np.hypot(dets["lon"] - lon, dets["lat"] - lat)
    return dets.loc[dist.idxmin()] if len(dets) and dist.min() < tol_deg else None


def _write_s1(root: Path, when: datetime, vessels, seed: int) -> str:
    """A calibrated sigma0 VV GeoTIFF (speckle at -20 dB, vessels at 15 dB SCR) with its scene.json."""
    product = f"S1A_IW_GRDH_1SDV_{when:%Y%m%dT%H%M%S}_{when:%Y%m%dT%H%M%S}_000000_000000_TEST"
    folder = root / f"s1-{when:%Y%m%d}"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    n = RASTER_MARGIN_PX
    shape_ = (GRID.height + 2 * n, GRID.width + 2 * n)
    x = simulate_clutter(shape_, CLUTTER_DB, rng=rng)
    for row, col, length in vessels:
        mean = 10 ** (CLUTTER_DB / 10)
        inject_vessel(x, row + n, col + n, length, 10.0, 15.0, mean, heading_deg=30.0, rng=rng)
    profile = dict(
        driver="GTiff",
        width=shape_[1],
        height=shape_[0],
        count=1,
        dtype="float32",
        crs=GRID.crs,
        transform=GRID.transform * Affine.translation(-n, -n),
    )
    with rasterio.open(folder / f"{product}_VV.tif", "w", **profile) as out:
        out.write(x[None])
        out.set_band_description(1, "VV")
    meta = {
        "id": product,
        "datetime": when.isoformat().replace("+00:00", "Z"),
        "platform": "sentinel-1a",
        "processing_level": "GRD",
        "sar_quantity": "sigma0",
    }
    (folder / "scene.json").write_text(json.dumps(meta))
    return product


@pytest.fixture(scope="module")
def imagery(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("s1s2")
    shutil.copytree(SAMPLE.path.parent, root / SAMPLE.id)
    _copy_scene(SAMPLE.path.parent, root, "athens-cloudy", 2)
    ids = {
        "s1_day1": _write_s1(root, S1_DAY1, VESSELS_DAY1, seed=1),
        "s1_day2": _write_s1(root, S1_DAY2, VESSELS_DAY2, seed=2),
    }
    return root, ids


def _cloudy_copy(window, area=None):
    """The copy of the chip is under cloud from edge to edge (a real mask on the window)."""
    if window.scene_id == "athens-cloudy":
        window = replace(window, cloud=np.ones(window.grid.shape, bool))
    return pipeline.screen_clouds(window, area)


@pytest.fixture(scope="module")
def ais_csv(tmp_path_factory) -> Path:
    """AIS fixes at S1 day 1's time for its first two vessels, and at the S2 time for one labelled ship."""
    label = json.loads(SAMPLE.vessels.read_text())["features"]
    inside = [f for f in label if AOI.geometry.contains(shape(f["geometry"]).centroid)]
    c = shape(inside[0]["geometry"]).centroid
    rows = [
        (
            211000001 + i,
            (S1_DAY1 + timedelta(seconds=20)).isoformat(),
            *_lonlat(r, col)[::-1],
            length,
        )
        for i, (r, col, length) in enumerate(VESSELS_DAY1[:2])
    ]
    rows.append((247000001, SAMPLE.datetime.isoformat(), c.y, c.x, None))
    path = tmp_path_factory.mktemp("ais") / "ais.csv"
    pd.DataFrame(rows, columns=["MMSI", "BaseDateTime", "LAT", "LON", "Length"]).to_csv(path, index=False)
    return path


def _run(root: Path, out: Path, steps: pipeline.Steps, **kw) -> pipeline.RunResult:
    kw.setdefault("report", False)
    return pipeline.run(
        AOI,
        DAY - timedelta(days=1),
        DAY + timedelta(days=3),
        out_dir=out,
        source=f"local:{root}",
        method="baseline",
        sensors="s2,s1",
        progress=False,
        steps=steps,
        s1_margin_m=MARGIN_M,
        **kw,
    )


def _steps():
    base = pipeline.default_steps()
    optical = CountingDetect(LabelledVessels())
    radar = CountingDetect(base.detect_sar)
    return replace(base, detect=optical, detect_sar=radar, screen=_cloudy_copy), optical, radar


@pytest.fixture(scope="module")
def mixed(imagery, ais_csv, tmp_path_factory):
    """One S2 + S1 run with AIS and the full report; the detectors count their calls."""
    steps, optical, radar = _steps()
    out = tmp_path_factory.mktemp("mixed") / "run"
    result = _run(imagery[0], out, steps, ais=ais_csv, report=True)
    return result, out, optical, radar


def test_s2_and_s1_days_in_one_daily_table(imagery, mixed):
    _, ids = imagery
    result, _, optical, radar = mixed

    scenes = result.scenes.set_index("scene")
    assert scenes.loc[ids["s1_day1"], "sensor"] == "S1" and scenes.loc[SAMPLE.id, "sensor"] == "S2"
    assert scenes.loc[ids["s1_day1"], "status"] == "clear"
    assert scenes.loc["athens-cloudy", "status"] == "cloudy"
    assert sorted(optical.calls) == [SAMPLE.id]  # the cloudy copy is not worth detecting on
    assert sorted(radar.calls) == sorted(ids.values())

    d = result.daily().set_index("date")
    # the S2 sample has no cloud band: its day is counted, marked as seen without a cloud mask
    assert list(d["status"]) == ["unobserved", "observed-unmasked", "observed", "observed", "unobserved"]
    assert list(d["sensor"]) == ["", "S2", "S1", "S1", ""]
    day0, day1, day2 = (DAY + timedelta(days=i) for i in range(3))
    assert d.loc[day0, "count"] == labels_inside(AOI)
    s1 = result.detections[result.detections["sensor"] == "S1"]
    assert set(s1["detector"]) == {"cfar"}
    s1 = s1[s1["zones"].str.contains("all")]  # centre inside the AOI polygon, not only on its grid
    day1_dets = s1[s1["scene"] == ids["s1_day1"]]
    # Every vessel on the AOI grid is found where it was put, at about its length; the one in the margin
    # is read (ghost check) but not kept. Speckle alone makes about one false alarm per scene this size at
    # the design PFA (docs/sar.md): the day's count is every detection kept, at most one more than planted.
    found = [_nearest(day1_dets, row, col) for row, col, _ in VESSELS_DAY1]
    assert all(f is not None for f in found[:3]) and found[3] is None
    for f, (_, _, length) in zip(found[:3], VESSELS_DAY1, strict=False):
        assert f["length_m"] == pytest.approx(length, rel=0.35)
    assert d.loc[day1, "count"] == len(day1_dets) and 3 <= len(day1_dets) <= 4
    assert d.loc[day1, "scene"] == ids["s1_day1"]
    day2_dets = s1[s1["scene"] == ids["s1_day2"]]
    assert all(_nearest(day2_dets, row, col) is not None for row, col, _ in VESSELS_DAY2)
    assert d.loc[day2, "count"] == len(day2_dets) and 2 <= len(day2_dets) <= 3
    assert d.loc[day2, "scenes"] == f"athens-cloudy;{ids['s1_day2']}"

    # AIS: the two transmitting vessels are matched, everything else seen that day is dark; on the S2 day
    # one labelled ship transmits; on S1 day 2 AIS has no fix within 30 min, so dark is not assessed
    # (NA, not "all dark").
    assert [f["dark"] for f in found[:3]] == [False, False, True]
    assert [f["mmsi"] for f in found[:2]] == [211000001, 211000002] and pd.isna(found[2]["mmsi"])
    assert d.loc[day1, "dark_count"] == len(day1_dets) - 2
    assert d.loc[day0, "dark_count"] == labels_inside(AOI) - 1
    assert pd.isna(d.loc[day2, "dark_count"])
    assert scenes.loc[ids["s1_day2"], "ais_fixes"] == 0
    assert result.detections.loc[result.detections["scene"] == ids["s1_day2"], "dark"].isna().all()


def test_resume_redoes_nothing_and_new_ais_redoes_no_detection(imagery, tmp_path, ais_csv):
    root, ids = imagery
    steps, optical, radar = _steps()
    first = _run(root, tmp_path / "run", steps)
    assert first.daily()["dark_count"].isna().all()  # no AIS given: dark counts are NA, never 0
    assert first.detections["dark"].isna().all()
    assert json.loads((tmp_path / "run" / "scenes" / f"{ids['s1_day1']}.json").read_text())["sensor"] == "S1"

    optical.calls.clear()
    radar.calls.clear()
    again = _run(root, tmp_path / "run", steps)
    assert optical.calls == [] and radar.calls == []
    pd.testing.assert_frame_equal(again.daily_counts, first.daily_counts)

    with_ais = _run(root, tmp_path / "run", steps, ais=ais_csv)
    assert optical.calls == [] and radar.calls == []
    assert with_ais.daily()["dark_count"].notna().sum() == 2
    pd.testing.assert_series_equal(with_ais.daily_counts["count"], first.daily_counts["count"])


def test_s2_only_default_leaves_s1_scenes_out(imagery, tmp_path):
    root, _ = imagery
    steps, _, radar = _steps()
    result = pipeline.run(
        AOI,
        DAY,
        DAY + timedelta(days=2),
        out_dir=tmp_path / "run",
        source=f"local:{root}",
        method="baseline",
        progress=False,
        report=False,
        steps=steps,
    )
    assert set(result.scenes["sensor"]) == {"S2"} and radar.calls == []
    assert list(result.daily()["status"]) == ["observed-unmasked", "unobserved", "unobserved"]


def test_sensor_choices_are_checked():
    assert pipeline.parse_sensors("s2,S1") == ("S2", "S1")
    assert pipeline.parse_sensors(None) == ("S2",)
    assert pipeline.parse_sensors(None, method="cfar") == ("S1",)
    assert pipeline.parse_sensors(None, collection="sentinel-1-grd") == ("S1",)
    with pytest.raises(InputError, match="unknown sensor S3"):
        pipeline.parse_sensors("s2,s3")
    period = (AOI, "2018-05-01", "2018-05-02")
    with pytest.raises(InputError, match=r"requester-pays.*planetary-computer"):
        pipeline.run(*period, out_dir="unused", sensors="s2,s1", source="earth-search")
    with pytest.raises(InputError, match="cfar is the Sentinel-1 detector"):
        pipeline.run(*period, out_dir="unused", sensors="s2,s1", method="cfar")
    with pytest.raises(InputError, match="Sentinel-1 counts ships only"):
        pipeline.run(*period, out_dir="unused", sensors="s2,s1", source="pc", classes=("truck",))
    cols = pipeline.sensor_collections(("S2", "S1"), "planetary-computer", DAY)
    assert cols == {"S2": "sentinel-2-l2a", "S1": "sentinel-1-grd"}
    assert pipeline.sensor_collections(("S2", "S1"), f"local:{Path('.')}", DAY) == {"S2": "any", "S1": "any"}


def test_margin_grid_contains_the_aoi_grid():
    wide, (rows, cols) = margin_grid(GRID, 6500.0)
    assert (wide.width, wide.height) == (GRID.width + 1300, GRID.height + 1300)
    assert wide.transform * (cols.start, rows.start) == pytest.approx(GRID.transform * (0, 0))


def test_local_s1_without_a_declared_quantity_fails_with_the_fix(imagery, tmp_path):
    root, _ = imagery
    folder = tmp_path / "s1only"
    shutil.copytree(root / f"s1-{S1_DAY1:%Y%m%d}", folder / "s1")
    meta = json.loads((folder / "s1" / "scene.json").read_text())
    del meta["sar_quantity"]
    (folder / "s1" / "scene.json").write_text(json.dumps(meta))
    result = pipeline.run(
        AOI,
        S1_DAY1.date(),
        S1_DAY1.date(),
        out_dir=tmp_path / "run",
        source=f"local:{folder}",
        sensors="s1",
        progress=False,
        report=False,
    )
    scene = result.scenes.iloc[0]
    assert scene["status"] == "failed" and '"sar_quantity": "sigma0"' in scene["reason"]
    assert result.daily()["status"].tolist() == ["unobserved"]


def test_report_tells_the_sensor_mix_dark_counts_and_ais_caveats(imagery, mixed):
    _, ids = imagery
    result, out, _, _ = mixed
    md = (out / "report.md").read_text()
    day1, day2 = DAY + timedelta(days=1), DAY + timedelta(days=2)
    assert "S2 (2 scene(s)), S1 (2 scene(s))" in md
    assert f"days counted from Sentinel-1 (whole AOI): 2 ({day1}, {day2})" in md
    assert "## AIS and dark vessels" in md and "not proof of wrongdoing" in md and "spoofed" in md
    assert f"`{ids['s1_day2']}`" in md  # the scene AIS did not cover is named
    assert "06:00 and 18:00" in md and "`sensor` column" in md
    assert "Sentinel-1 ships: `cfar`" in md
    row = result.daily().set_index("date").loc[day1]
    assert f"| {day1} | all | ship | {row['count']} |" in md and f"| {row['dark_count']} |" in md
    assert "dark_count" in (out / "daily_counts.csv").read_text().splitlines()[0]
    doc = json.loads((out / "run.json").read_text())
    assert doc["parameters"]["sensors"] == ["S2", "S1"] and doc["parameters"]["ais"]["fixes"] == 3
    assert doc["parameters"]["collections"] == {"S2": "any", "S1": "any"}
    summary = json.loads(json.dumps(result.summary()))
    assert summary["scenes_by_sensor"] == {"S2": 2, "S1": 2}
    # the report's "n of m ship detection(s) … dark" is in the summary too, beside every scene's total
    counted = summary["dark_in_daily_counts"]
    assert f"{counted['dark']} of {counted['of']} ship detection(s)" in md
    assert (out / "counts.png").read_bytes()[:4] == b"\x89PNG"
    assert "detections (red outlines)" in md
