"""`harborwatch aoi list|show|export` through the real entry point, `detect.cli.main`."""

from __future__ import annotations

import json

import pytest

from detect.cli import main
from imagery.aoi import aoi_from_geojson

FIVE = {"longkou-port", "longkou-anchorage", "dandong-bridges", "nampo-port", "chongjin-port"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    else:  # main always exits; keep the test honest if that changes
        code = 0
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_shows_the_five_aois_with_zones(capsys):
    code, out, _ = run(capsys, "aoi", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == FIVE
    for r in rows.values():
        assert r["zones"] and r["area_km2"] > 1 and len(r["centre"]) == 2
    assert {z["kind"] for z in rows["dandong-bridges"]["zones"]} == {"bridge_deck", "water"}
    assert {"name": "coal-berths", "kind": "berth"} in rows["longkou-port"]["zones"]
    lon, lat = rows["longkou-port"]["centre"]
    assert 120.2 < lon < 120.36 and 37.6 < lat < 37.72


def test_list_human_output_names_every_aoi(capsys):
    code, out, _ = run(capsys, "aoi", "list")
    assert code == 0
    for name in FIVE:
        assert name in out


def test_show_json_gives_zones_provenance_utm_and_grid(capsys):
    code, out, _ = run(capsys, "aoi", "show", "longkou-port", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["utm_crs"] == "EPSG:32651"
    assert info["grid"]["res_m"] == 10.0 and 500 < info["grid"]["width"] < 2500
    assert info["source"] and info["certainty"]
    for z in info["zones"]:
        assert z["kind"] and z["area_km2"] > 0 and z["source"] and z["certainty"]


def test_show_human_lists_deck_buffers(capsys):
    code, out, _ = run(capsys, "aoi", "show", "dandong-bridges")
    assert code == 0
    assert "EPSG:32651" in out and "friendship-bridge-deck (bridge_deck)" in out and "+ 25 m buffer" in out


def test_show_accepts_a_bbox_and_a_file(capsys, tmp_path):
    code, out, _ = run(capsys, "aoi", "show", "129.8,41.75,129.85,41.79", "--json")
    assert code == 0 and json.loads(out)["utm_crs"] == "EPSG:32652"
    path = tmp_path / "mine.geojson"
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [[[1, 1], [1.1, 1], [1.1, 1.1], [1, 1]]]}))
    code, out, _ = run(capsys, "aoi", "show", str(path), "--json")
    assert code == 0 and json.loads(out)["name"] == "mine"


def test_unknown_name_exits_2_with_one_line_and_no_traceback(capsys):
    code, out, err = run(capsys, "aoi", "show", "atlantis-port")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("harborwatch: error: unknown AOI 'atlantis-port'")
    assert "longkou-port" in err and "Traceback" not in err


def test_a_whole_world_aoi_exits_2_with_one_line(capsys, tmp_path):
    for argv in (
        ["aoi", "show", "--", "-180,-90,180,90"],
        ["run", "--aoi", "-180,-90,180,90", "--start", "2023-08-18", "--end", "2023-08-18", "--source",
         "samples", "--out", str(tmp_path / "run")],
    ):  # fmt: skip
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith("harborwatch: error: AOI 'bbox:-180,-90,180,90' spans 360 x 180 degrees")
    assert not (tmp_path / "run").exists()


def test_projected_geojson_exits_2_naming_the_problem(capsys, tmp_path):
    path = tmp_path / "utm.geojson"
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [
        [[600000, 4170000], [610000, 4170000], [610000, 4180000], [600000, 4170000]]]}))
    code, _, err = run(capsys, "aoi", "show", str(path))
    assert code == 2 and err.count("\n") == 1 and "RFC 7946" in err


def test_export_writes_an_editable_geojson(capsys, tmp_path):
    out_path = tmp_path / "dandong.geojson"
    code, out, _ = run(capsys, "aoi", "export", "dandong-bridges", "--out", str(out_path), "--json")
    assert code == 0
    assert json.loads(out) == {"aoi": "dandong-bridges", "path": str(out_path), "zones": 3}
    aoi = aoi_from_geojson(out_path)
    assert aoi.name == "dandong-bridges" and aoi.zone("new-yalu-bridge-deck").buffer_m == 30.0


def test_export_needs_out(capsys):
    code, _, err = run(capsys, "aoi", "export", "longkou-port")
    assert code == 2 and "--out" in err
