"""`harborwatch run`'s human summary through the real entry point, `detect.cli.main`."""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from pyproj import Transformer

from detect.cli import main
from tests.detect.pipeline.test_pipeline import DAY, SAMPLE, _copy_scene


def test_the_summary_gives_every_class_its_count_and_its_own_status(tmp_path, capsys):
    # the sample, and a copy a day later whose B08 holds no data: ships are counted there, trucks are not
    scenes = tmp_path / "scenes"
    shutil.copytree(SAMPLE.path.parent, scenes / SAMPLE.id)
    _copy_scene(SAMPLE.path.parent, scenes, "athens-no-b08", 1, empty=("B08",))
    west, south, east, north = SAMPLE.bbox
    aoi = f"{west + 0.002},{south + 0.002},{east - 0.002},{north - 0.002}"
    period = ["--start", str(DAY), "--end", str(DAY + timedelta(days=2))]
    with pytest.raises(SystemExit) as e:
        main(["-q", "run", "--aoi", aoi, *period, "--source", f"local:{scenes}", "--classes", "ship,truck",
              "--out", str(tmp_path / "run")])  # fmt: skip
    assert e.value.code == 0
    days = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  20")}
    assert re.fullmatch(r"  \S+  observed-unmasked  ships: \d+, trucks: \d+", days[str(DAY)])
    later = days[str(DAY + timedelta(days=1))]
    assert re.fullmatch(r"  \S+  observed-unmasked  ships: \d+, trucks: NA \(unobserved\)", later)
    assert days[str(DAY + timedelta(days=2))].endswith("  unobserved         ships: NA, trucks: NA")


def test_a_sensor_without_any_scene_in_the_period_is_said_aloud(tmp_path, capsys):
    # the bundled samples hold no Sentinel-1: an all-unobserved run must not look like a quiet port
    west, south, east, north = SAMPLE.bbox
    aoi = f"{west + 0.002},{south + 0.002},{east - 0.002},{north - 0.002}"
    period = ["--start", str(DAY), "--end", str(DAY + timedelta(days=1))]
    with pytest.raises(SystemExit) as e:
        main(["-q", "run", "--aoi", aoi, *period, "--sensors", "s1", "--source", "samples",
              "--out", str(tmp_path / "s1")])  # fmt: skip
    assert e.value.code == 0
    err = capsys.readouterr().err
    assert re.search(
        rf"no S1 scenes from samples \(sentinel-1-grd\) over bbox:\S+, {DAY} – {DAY + timedelta(days=1)}", err
    )
    assert "every day is unobserved" in err
    # with Sentinel-2 scenes found, the missing radar is still named, without the all-unobserved claim
    with pytest.raises(SystemExit) as e:
        main(["-q", "run", "--aoi", aoi, *period, "--sensors", "s2,s1", "--source", "samples",
              "--out", str(tmp_path / "both")])  # fmt: skip
    assert e.value.code == 0
    err = capsys.readouterr().err
    assert "no S1 scenes from samples" in err and "every day is unobserved" not in err
    assert "no S2 scenes" not in err


def test_a_run_that_fails_before_any_scene_leaves_no_empty_folder(tmp_path, capsys):
    period = ["--start", str(DAY), "--end", str(DAY + timedelta(days=1))]
    out = tmp_path / "new" / "run"
    with pytest.raises(SystemExit) as e:
        main(["run", "--aoi", "8.88,44.39,8.92,44.42", *period, "--source", "bogus", "--out", str(out)])
    assert e.value.code == 2 and "unknown source 'bogus'" in capsys.readouterr().err
    assert not out.exists() and (tmp_path / "new").is_dir()  # only what the run made goes
    kept = tmp_path / "kept"
    (kept / "notes").mkdir(parents=True)
    with pytest.raises(SystemExit):
        main(["run", "--aoi", "8.88,44.39,8.92,44.42", *period, "--source", "bogus", "--out", str(kept)])
    assert (kept / "notes").is_dir()  # a folder that was there stays, with what it held


def test_a_zone_reaching_beyond_the_aoi_is_observed_over_all_of_it(tmp_path, capsys):
    # the AOI is the sample chip; zone "edge" lies mostly beyond it, where no imagery is: it was counted 0,
    # "observed", from the few pixels inside the AOI's grid; now its observed fraction is over its whole area
    west, south, east, north = SAMPLE.bbox
    dx, dy = (east - west) * 0.9, (north - south) * 0.9

    def box(w: float, s: float, e: float, n: float) -> dict:
        return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}

    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"name": "chip"}, "geometry": box(west, south, east, north)},
            {
                "type": "Feature",
                "properties": {"zone": "edge", "kind": "berth"},
                "geometry": box(west + dx, south + dy, east + dx, north + dy),
            },
        ],
    }
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as e:
        main(["-q", "run", "--aoi", str(aoi), "--start", str(DAY), "--end", str(DAY), "--source", "samples",
              "--out", str(tmp_path / "run")])  # fmt: skip
    assert e.value.code == 0
    daily = pd.read_csv(tmp_path / "run" / "daily_counts.csv").set_index("zone")
    assert daily.loc["edge", "observed_fraction"] < 0.05 and daily.loc["edge", "status"] == "unobserved"
    assert pd.isna(daily.loc["edge", "count"])
    assert daily.loc["all", "status"].startswith("observed") and daily.loc["all", "count"] > 0


def _with_scl(
    root: Path, name: str, day_offset: int, cloud_cols: int, spots: list[tuple[int, int]] = ()
) -> None:
    """The sample as a scene with an SCL layer: water (6), its first ``cloud_cols`` columns cloud (9), and a
    ship-sized 9 × 9 px patch of cloud at each (row, col) of ``spots`` (as Sen2Cor may call a bright hull)."""
    folder = root / name
    folder.mkdir(parents=True)
    with rasterio.open(SAMPLE.path) as src:
        profile, data, desc, tags = src.profile, src.read(), src.descriptions, src.tags()
    scl = np.full(data.shape[1:], 6, np.uint16)
    scl[:, :cloud_cols] = 9
    for row, col in spots:
        scl[max(0, row - 4) : row + 5, max(0, col - 4) : col + 5] = 9
    profile.update(count=data.shape[0] + 1)
    with rasterio.open(folder / f"{name}.tif", "w", **profile) as dst:
        dst.write(np.concatenate([data, scl[None]]))
        for i, b in enumerate([*desc, "SCL"], 1):
            dst.set_band_description(i, b)
        dst.update_tags(**tags)
    when = (SAMPLE.datetime + timedelta(days=day_offset)).isoformat().replace("+00:00", "Z")
    meta = {"id": name, "datetime": when, "processing_level": "L2A", "bands": [*desc, "SCL"]}
    (folder / "scene.json").write_text(json.dumps(meta))


def test_ships_under_cloud_are_not_counted_on_a_partial_day(tmp_path, capsys):
    # the same scene twice: clear, then with its western 60 % under cloud (SCL 9). The cloudy day counted
    # every ship the clear day did, those under the cloud included; now only what was seen
    scenes = tmp_path / "scenes"
    _with_scl(scenes, "clear", 0, 0)
    _with_scl(scenes, "cloudy", 1, 240)
    west, south, east, north = SAMPLE.bbox
    aoi = f"{west + 0.002},{south + 0.002},{east - 0.002},{north - 0.002}"
    with pytest.raises(SystemExit) as e:
        main(["-q", "run", "--aoi", aoi, "--start", str(DAY), "--end", str(DAY + timedelta(days=1)),
              "--source", f"local:{scenes}", "--out", str(tmp_path / "run")])  # fmt: skip
    assert e.value.code == 0
    run = tmp_path / "run"
    rec = pd.read_csv(run / "scenes.csv").set_index("scene")
    assert rec.loc["cloudy", "status"] == "cloudy" and rec.loc["clear", "status"] == "clear"
    hidden = int(re.search(r"(\d+) detection\(s\) under cloud", rec.loc["cloudy", "reason"]).group(1))
    assert hidden > 0 and rec.loc["cloudy", "n_detections"] == rec.loc["clear", "n_detections"] - hidden
    # every counted ship of the cloudy day lies east of the cloud
    dets = json.loads((run / "scenes" / "cloudy.geojson").read_text())["features"]
    with rasterio.open(SAMPLE.path) as src:
        cloud_edge_x = (src.transform * (240, 0))[0]
        to_utm = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True)
    xs = [to_utm.transform(f["properties"]["lon"], f["properties"]["lat"])[0] for f in dets]
    assert xs and min(xs) >= cloud_edge_x
    daily = pd.read_csv(run / "daily_counts.csv").set_index("date")
    assert daily.loc[str(DAY + timedelta(days=1)), "count"] == rec.loc["cloudy", "n_detections"]


def test_a_run_whose_every_scene_failed_exits_1_with_its_outputs_written(tmp_path, capsys):
    # a truncated GeoTIFF: the scene is found (by its sidecar) and fails to read; the run wrote its outputs,
    # all days unobserved, and said exit 0, which read like a quiet port
    scenes = tmp_path / "scenes" / "cut"
    scenes.mkdir(parents=True)
    data = SAMPLE.path.read_bytes()
    (scenes / "cut.tif").write_bytes(data[: len(data) // 3])
    shutil.copy(SAMPLE.path.parent / "scene.json", scenes / "scene.json")
    west, south, east, north = SAMPLE.bbox
    aoi = f"{west + 0.002},{south + 0.002},{east - 0.002},{north - 0.002}"
    with pytest.raises(SystemExit) as e:
        main(["-q", "run", "--aoi", aoi, "--start", str(DAY), "--end", str(DAY), "--source",
              f"local:{tmp_path / 'scenes'}", "--out", str(tmp_path / "run")])  # fmt: skip
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "error: all 1 scene(s) of" in err and "a rerun retries them" in err
    assert (tmp_path / "run" / "report.html").is_file()
    assert pd.read_csv(tmp_path / "run" / "scenes.csv")["status"].tolist() == ["failed"]


def test_a_claim_about_a_zone_the_aoi_lacks_is_refused_before_any_work(tmp_path, capsys):
    west, south, east, north = SAMPLE.bbox
    aoi = f"{west + 0.002:.4f},{south + 0.002:.4f},{east - 0.002:.4f},{north - 0.002:.4f}"
    name = f"bbox:{aoi}"
    claims = tmp_path / "claims.yaml"
    claims.write_text(
        f"- {{id: c, source: s, aoi: '{name}', zone: berths, start: {DAY}, end: {DAY}, "
        "metric: max_simultaneous, value: 3, comparison: '>='}\n"
    )
    with pytest.raises(SystemExit) as e:
        main(["-q", "run", "--aoi", aoi, "--start", str(DAY), "--end", str(DAY), "--source", "samples",
              "--claims", str(claims), "--out", str(tmp_path / "run")])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "claim 'c' is about zone 'berths'" in err and "has zones: all" in err
    assert not (tmp_path / "run").exists()


def test_a_ship_sized_cloud_patch_hides_no_ship(tmp_path, capsys):
    # Sen2Cor can call a bright hull cloud: a patch of SCL 9 the size of a ship over each detection of the
    # clear scene must not drop them (only cloud patches of 0.1 km² and more hide what is under them)
    clear = tmp_path / "clear"
    _with_scl(clear, "clear", 0, 0)
    west, south, east, north = SAMPLE.bbox
    aoi = f"{west + 0.002},{south + 0.002},{east - 0.002},{north - 0.002}"
    day = ["--start", str(DAY), "--end", str(DAY)]
    with pytest.raises(SystemExit):
        main(["-q", "run", "--aoi", aoi, *day, "--source", f"local:{clear}", "--out", str(tmp_path / "a")])
    dets = json.loads((tmp_path / "a" / "scenes" / "clear.geojson").read_text())["features"]
    with rasterio.open(SAMPLE.path) as src:
        to_utm = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True)
        spots = []
        for f in dets:
            x, y = to_utm.transform(f["properties"]["lon"], f["properties"]["lat"])
            row, col = src.index(x, y)
            spots.append((row, col))
    spotted = tmp_path / "spotted"
    _with_scl(spotted, "clear", 0, 0, spots)
    with pytest.raises(SystemExit):
        main(["-q", "run", "--aoi", aoi, *day, "--source", f"local:{spotted}", "--out", str(tmp_path / "b")])
    rec = pd.read_csv(tmp_path / "b" / "scenes.csv").iloc[0]
    assert rec["n_detections"] == len(dets) > 0
    assert "under cloud" not in str(rec["reason"])


def test_a_claim_may_name_its_aoi_by_the_geojson_file_the_run_reads(tmp_path, capsys, monkeypatch):
    # the claim said aoi: aoi.geojson (as --aoi did); it was matched by the AOI's name only, so it was
    # "cannot tell: the run is for AOI 'chip'" and its unknown zone went unnoticed
    west, south, east, north = SAMPLE.bbox
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    feature = {
        "type": "Feature",
        "properties": {"name": "chip"},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aoi.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    (tmp_path / "claims.yaml").write_text(
        f"- {{id: c, source: s, aoi: aoi.geojson, zone: berths, start: {DAY}, end: {DAY}, "
        "metric: max_simultaneous, value: 3, comparison: '>='}\n"
    )
    with pytest.raises(SystemExit) as e:
        main(["-q", "run", "--aoi", "aoi.geojson", "--start", str(DAY), "--end", str(DAY), "--source",
              "samples", "--claims", "claims.yaml", "--out", "run"])  # fmt: skip
    assert (
        e.value.code == 2
        and "claim 'c' is about zone 'berths'; AOI chip has zones: all" in capsys.readouterr().err
    )
