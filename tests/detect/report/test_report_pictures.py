"""What a reader checks a count with: a crop of every counted detection (crops/, the report's contact
sheets), the interactive map page (map.html: every day, offline), the claims chart, and the period against
its baseline (files, report section, CLI and batch jobs)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from detect import report
from detect.cli import main
from detect.counting import aggregate as agg
from detect.counting.claims import claim_summary
from detect.pipeline import batch
from detect.pipeline.jobs import Job, expand_jobs
from detect.report.crops import CROP_PX
from imagery.errors import InputError
from tests.detect.report.series import AOI, BASELINE, KEEP, PERIOD, make_scenes, run_series, scene_id


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("series")
    return run_series(tmp), tmp / "run"


def _map_data(out: Path) -> dict:
    page = (out / "map.html").read_text()
    m = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


# --------------------------------------------------------------------------- crops


def test_every_counted_detection_has_a_small_crop_named_by_its_id(series):
    result, out = series
    crops = pd.read_csv(out / "crops" / "crops.csv")
    whole = result.daily()
    seen = whole[whole["status"] != "unobserved"]
    assert len(crops) == int(seen["count"].sum()) > 0
    per_day = crops.groupby("date").size()
    assert {str(d): int(c) for d, c in zip(seen["date"], seen["count"], strict=True)} == per_day.to_dict()
    gj = json.loads((out / "detections.geojson").read_text())
    ids = {f["properties"]["id"] for f in gj["features"]}
    assert set(crops["id"]) <= ids and len(ids) == len(gj["features"])  # ids are unique and in the GeoJSON
    for row in crops.itertuples(index=False):
        path = out / row.file
        assert path.parent.name == row.date and path.stem == row.id
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.size == (CROP_PX, CROP_PX)
            assert np.asarray(im).std() > 5  # imagery, not a blank tile
        # the box is drawn around the crop's centre
        xs, ys = zip(*(map(float, p.split()) for p in row.box_px.split(";")), strict=True)
        assert abs(np.mean(xs) - CROP_PX / 2) < 2 and abs(np.mean(ys) - CROP_PX / 2) < 2
    day_kb = crops.groupby("date")["file"].apply(lambda fs: sum((out / f).stat().st_size for f in fs) / 1e3)
    assert day_kb.max() < 60  # tens of KB per day


def test_low_scores_are_the_lowest_quarter_of_their_detectors_scores(series):
    result, out = series
    crops = pd.read_csv(out / "crops" / "crops.csv")
    cut = np.quantile(result.detections["score"], 0.25)
    assert (crops["low_score"] == (crops["score"] < cut)).all()
    assert 0 < crops["low_score"].sum() < len(crops)
    html = (out / "report.html").read_text()
    assert html.count('class="crop low"') == crops["low_score"].sum()
    assert html.count('<figure class="crop') == len(crops)


def test_report_shows_a_contact_sheet_per_seen_day(series):
    result, out = series
    md = (out / "report.md").read_text()
    assert "## Every counted detection" in md
    for day in (d for d, n in KEEP.items() if PERIOD[0] <= d <= PERIOD[1]):
        n = int(result.daily().set_index("date").at[day, "count"])
        assert f"### {day}: {n} ship(s), observed-unmasked, S2 (scene `{scene_id(day)}`)" in md
    assert re.search(r"\| !\[\d{8}-\d{3}\]\(crops/\d{4}-\d{2}-\d{2}/\d{8}-\d{3}\.jpg\) \|", md)

    class Images(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.src: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.src.append(dict(attrs)["src"])

    parser = Images()
    parser.feed((out / "report.html").read_text())
    assert all((out / s).is_file() for s in parser.src)
    assert {"counts.png", "map.png", "claims.png", "baseline.png"} <= set(parser.src)


def test_a_rerun_leaves_only_the_crops_it_wrote(tmp_path):
    result = run_series(tmp_path)
    stale = tmp_path / "run" / "crops" / "1999-01-01" / "19990101-001.jpg"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    again = run_series(tmp_path)
    assert not stale.exists() and not stale.parent.exists()
    pd.testing.assert_frame_equal(again.daily_counts, result.daily_counts)


def test_crops_without_an_image_still_list_every_detection(tmp_path):
    dets = report.with_ids(
        agg.detections_table(
            [
                {
                    "scene": "s",
                    "acquired": pd.Timestamp("2023-07-10T10:00Z"),
                    "date": pd.Timestamp("2023-07-10").date(),
                    "class": "ship",
                    "score": s,
                    "length_m": 100.0,
                    "width_m": 20.0,
                    "heading_deg": 0.0,
                    "lon": AOI.centre[0],
                    "lat": AOI.centre[1],
                    "detector": "d",
                    "zones": "all",
                    "geometry": AOI.geometry.centroid.buffer(0.0005, cap_style="square"),
                }
                for s in (0.3, 0.9)
            ]
        )
    )
    assert list(dets["id"]) == ["20230710-001", "20230710-002"]
    rows = report.write_crops(None, AOI.grid(10.0), dets, tmp_path / "crops", cutoffs={"d": 0.5})
    assert [r["file"] for r in rows] == ["", ""] and [r["low_score"] for r in rows] == [True, False]
    assert not list((tmp_path / "crops").rglob("*.jpg"))


# --------------------------------------------------------------------------- the map page


def test_map_page_is_standalone_and_offline(series):
    _, out = series
    page = (out / "map.html").read_text()
    assert "Leaflet 1.9.4" in page and "works offline" in page.lower()
    # nothing is fetched from elsewhere: no external script or stylesheet, no url() but data: URIs
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+stylesheet", page)
    assert [
        u for u in re.findall(r"url\(([^)]*)\)", page) if not u.strip("'\"").startswith(("data:", "#"))
    ] == []
    # the only http(s) address a browser could load is the optional OpenStreetMap layer's tiles
    loads = set(re.findall(r"https?://[^\s\"'<>]*\{z\}[^\s\"'<>]*", page))
    assert loads == {"https://tile.openstreetmap.org/{z}/{x}/{y}.png"}


def test_map_page_holds_every_day_with_its_detections_and_the_unobserved_days(series):
    result, out = series
    data = _map_data(out)
    whole = result.daily()
    assert [d["date"] for d in data["days"]] == [d.isoformat() for d in whole["date"]]
    for d, row in zip(data["days"], whole.to_dict("records"), strict=True):
        assert d["status"] == row["status"]
        if row["status"] == "unobserved":
            assert d["features"] == [] and d["image"] is None and d["classes"]["ship"]["count"] is None
        else:
            assert len(d["features"]) == row["count"] == d["classes"]["ship"]["count"]
            assert (out / d["image"]).is_file() and d["image"].startswith("map_files/")
            assert all((out / f["properties"]["crop"]).is_file() for f in d["features"])
    (south, west), (north, east) = data["image_bounds"]
    w, s, e, n = AOI.bbox
    assert west <= w + 1e-3 and east >= e - 1e-3 and south <= s + 1e-3 and north >= n - 1e-3
    assert east - west < (e - w) * 1.2
    assert [f["properties"]["name"] for f in data["zones"]["features"]][-1] == "all"
    start = data["days"][data["start"]]
    assert start["status"] != "unobserved" and start["classes"]["ship"]["count"] == whole["count"].max()


def test_overlay_is_warped_to_web_mercator_where_the_grid_lies(tmp_path):
    grid = AOI.grid(10.0)
    rgb = np.zeros((grid.height, grid.width, 3), np.uint8)
    rgb[:, : grid.width // 2] = 255  # west half white
    (south, west), (north, east) = report.write_overlay(rgb, grid, tmp_path / "o.jpg")
    w, s, e, n = AOI.bbox
    assert (west, south, east, north) == pytest.approx((w, s, e, n), abs=0.003)
    with Image.open(tmp_path / "o.jpg") as im:
        arr = np.asarray(im.convert("L"), dtype=float)
    assert arr[:, : arr.shape[1] // 3].mean() > 200 and arr[:, -arr.shape[1] // 3 :].mean() < 30


# --------------------------------------------------------------------------- claims chart


def test_claims_chart_draws_each_claim_beside_what_the_imagery_shows(series):
    result, out = series
    with Image.open(out / "claims.png") as im:
        assert im.size[1] > 400  # two panels
    for v in result.verdicts:
        s = claim_summary(v.claim, result)
        if v.claim.metric == "distinct_vessels_min":
            assert v.lower == s.distinct_min and v.verdict == "cannot tell"
        else:
            assert v.lower == s.max_simultaneous and v.verdict == "consistent"
    md = (out / "report.md").read_text()
    assert "![each claim beside what the imagery shows](claims.png)" in md


def test_claims_chart_without_a_summary_draws_the_claim_alone(tmp_path):
    from detect.counting.claims import Claim, ClaimVerdict

    claim = Claim(
        id="x", source="t", aoi="elsewhere", start=PERIOD[0], end=PERIOD[1], metric="vessel_days", value=3
    )
    verdict = ClaimVerdict(claim, "cannot tell", None, None, 0, 0, ("the run is for another AOI",))
    path = report.plot_claims([verdict], [None], tmp_path / "c.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- baseline


def test_baseline_comparison_is_written_and_explained(series):
    result, out = series
    (c,) = result.baseline
    assert (c.zone, c.class_name, c.reading) == ("all", "ship", "higher")
    seen = result.daily()["count"].dropna()
    base = result.baseline_daily[result.baseline_daily["zone"] == "all"]["count"].dropna()
    assert c.period_mean == pytest.approx(seen.mean()) and c.baseline_mean == pytest.approx(base.mean())
    assert c.ratio == pytest.approx(seen.mean() / base.mean())
    assert (c.period_seen, c.baseline_seen) == (3, 3)
    assert any("few days seen" in r for r in c.reasons)
    daily = pd.read_csv(out / "baseline_daily_counts.csv")
    assert len(daily) == (BASELINE[1] - BASELINE[0]).days + 1
    assert daily.loc[daily["status"] == "unobserved", "count"].isna().all()
    table = pd.read_csv(out / "baseline.csv")
    assert list(table["reading"]) == ["higher"] and table.at[0, "period days seen"] == "3/7"
    doc = json.loads((out / "baseline.json").read_text())
    assert doc[0]["ratio_low"] <= doc[0]["ratio"] <= doc[0]["ratio_high"]
    md = (out / "report.md").read_text()
    assert "## Period against baseline" in md and "What this comparison can and cannot show:" in md
    assert "never taken as 0" in md and "with one day it cannot be drawn at all" in md
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["parameters"]["baseline"]["start"] == BASELINE[0].isoformat()
    assert run_json["parameters"]["baseline"]["seed"] == 17
    assert result.summary()["baseline"][0]["reading"] == "higher"


def test_baseline_must_lie_apart_from_the_period(tmp_path):
    from detect import pipeline

    with pytest.raises(InputError, match="overlaps"):
        pipeline.run(AOI, *PERIOD, out_dir=tmp_path, source="local:x", baseline=(PERIOD[0], PERIOD[0]))
    with pytest.raises(InputError, match="before baseline start"):
        pipeline.run(AOI, *PERIOD, out_dir=tmp_path, source="local:x", baseline=(BASELINE[1], BASELINE[0]))


def test_cli_run_takes_a_baseline_period_and_refuses_half_of_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    w, s, e, n = AOI.bbox
    args = ["run", "--aoi", f"{w},{s},{e},{n}", "--start", str(PERIOD[0]), "--end", str(PERIOD[1])]
    args += ["--source", "local:nowhere", "--out", "o"]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--baseline-start", str(BASELINE[0])])
    assert exc.value.code == 2 and "--baseline-end" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*args, "--baseline-start", str(PERIOD[0]), "--baseline-end", str(PERIOD[1])])
    assert exc.value.code == 2 and "overlaps" in capsys.readouterr().err


def test_batch_jobs_take_a_baseline_and_write_the_map_and_crops(tmp_path):
    jobs = expand_jobs(
        [{"aoi": "x", "start": "2023-07-07", "end": "2023-07-13", "baseline": ["2023-06-07", "2023-06-13"]}]
    )
    assert jobs[0].baseline == BASELINE
    with pytest.raises(InputError, match="job 1: the baseline"):
        expand_jobs(
            [
                {
                    "aoi": "x",
                    "start": "2023-07-07",
                    "end": "2023-07-13",
                    "baseline": ["2023-07-01", "2023-07-07"],
                }
            ]
        )
    scenes = make_scenes(tmp_path / "scenes")
    w, s, e, n = AOI.bbox
    job = Job(
        aoi=f"{w},{s},{e},{n}",
        start=PERIOD[0],
        end=PERIOD[1],
        source=f"local:{scenes}",
        method="baseline",
        baseline=BASELINE,
        name="series",
    )
    result = batch.run_batch([job], tmp_path / "b", workers=1, processes=False, report=True)
    (outcome,) = result.jobs
    assert result.ok and outcome.scenes_processed == len(KEEP)  # both periods' scenes went to the workers
    run = outcome.result
    assert len(run.scenes) == 3 and run.baseline and run.baseline[0].baseline_seen == 3
    folder = tmp_path / "b" / "jobs" / "series"
    for name in ("map.html", "crops/crops.csv", "baseline.csv", "report.html"):
        assert (folder / name).is_file(), name
    assert run.daily()["count"].dropna().sum() == len(pd.read_csv(folder / "crops" / "crops.csv"))
