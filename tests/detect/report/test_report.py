"""The run folder: every file exists and parses (GeoParquet metadata, CSV columns, PNGs, report, run.json)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely

from detect import pipeline, report
from detect.counting import aggregate as agg
from detect.report.blocks import _model_text
from imagery.aoi import aoi_from_bbox
from imagery.samples import list_samples, sample_dir
from tests.detect.pipeline.test_pipeline import LabelledVessels, labels_inside

SAMPLE = next(s for s in list_samples() if s.id.startswith("genoa"))
AOI = aoi_from_bbox(
    (SAMPLE.bbox[0] + 0.002, SAMPLE.bbox[1] + 0.002, SAMPLE.bbox[2] - 0.002, SAMPLE.bbox[3] - 0.002),
    name="genoa-test",
)
DAY = SAMPLE.datetime.date()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> tuple[pipeline.RunResult, Path]:
    out = tmp_path_factory.mktemp("run")
    claims = out / "claims.yaml"
    claims.write_text(f"""
claims:
  - {{id: busy, source: test, aoi: genoa-test, start: {DAY - timedelta(days=1)},
      end: {DAY + timedelta(days=1)}, metric: max_simultaneous, class: ship, value: 1}}
""")
    result = pipeline.run(
        AOI,
        DAY - timedelta(days=2),
        DAY + timedelta(days=2),
        out_dir=out / "run",
        source=f"local:{sample_dir()}",
        method="baseline",
        progress=False,
        claims=claims,
        command=["harborwatch", "run", "--test"],
        steps=replace(pipeline.default_steps(), detect=LabelledVessels()),
    )
    return result, out / "run"


def test_every_output_file_is_written(run_dir):
    result, out = run_dir
    for name in (
        "detections.geojson",
        "detections.parquet",
        "daily_counts.csv",
        "daily_counts.parquet",
        "scenes.csv",
        "coverage.csv",
        "stays.csv",
        "visits.json",
        "claims.json",
        "counts.png",
        "map.png",
        "report.md",
        "report.html",
        "run.json",
        "map.html",
        "claims.png",
        "crops/crops.csv",
    ):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0, name
    assert set(result.paths) >= {"report_html", "map_png", "detections_parquet", "run_json"}
    assert not list(out.glob(".*.part"))


def test_detections_geoparquet_has_geo_metadata_and_wkb(run_dir):
    result, out = run_dir
    table = pq.read_table(out / "detections.parquet")
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["version"] == "1.0.0" and geo["primary_column"] == "geometry"
    col = geo["columns"]["geometry"]
    assert col["encoding"] == "WKB" and col["geometry_types"] == ["Polygon"]
    west, south, east, north = col["bbox"]
    assert SAMPLE.bbox[0] - 0.01 < west < east < SAMPLE.bbox[2] + 0.01
    assert SAMPLE.bbox[1] - 0.01 < south < north < SAMPLE.bbox[3] + 0.01
    geoms = shapely.from_wkb(table.column("geometry").to_pylist())
    assert len(geoms) == len(result.detections) > 0
    assert {"scene", "acquired", "class", "zone", "length_m", "lon", "lat", "score"} <= set(
        table.column_names
    )
    gj = json.loads((out / "detections.geojson").read_text())
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == len(geoms)
    assert gj["features"][0]["properties"]["scene"] == SAMPLE.id


def test_daily_counts_csv_and_parquet(run_dir):
    _, out = run_dir
    csv = pd.read_csv(out / "daily_counts.csv")
    assert list(csv.columns) == list(agg.DAILY_COLUMNS)
    assert len(csv) == 5
    unobserved = csv[csv["status"] == "unobserved"]
    assert len(unobserved) == 4 and unobserved["count"].isna().all()  # empty cells, not 0
    # the sample has no cloud band: its day is counted, but marked as seen without a cloud mask
    observed = csv[csv["status"] == "observed-unmasked"].iloc[0]
    assert observed["date"] == str(DAY) and observed["count"] == labels_inside(AOI, SAMPLE) > 10
    pq_daily = pd.read_parquet(out / "daily_counts.parquet")
    assert pq_daily["count"].isna().sum() == 4
    scenes = pd.read_csv(out / "scenes.csv")
    assert {"scene", "datetime", "cloud_fraction", "valid_fraction", "status", "reason"} <= set(
        scenes.columns
    )


def test_summary_is_json_with_null_counts_on_unobserved_days(run_dir):
    result, _ = run_dir
    summary = json.loads(json.dumps(result.summary()))
    days = summary["daily_counts"]
    assert [d["count"] is None for d in days] == [d["status"] == "unobserved" for d in days]
    assert summary["claims"][0]["verdict"] == "consistent"
    assert summary["files"]["report_html"].endswith("report.html")


def test_pngs_are_images(run_dir):
    _, out = run_dir
    for name in ("counts.png", "map.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 10_000


def test_report_markdown_and_html_say_the_same(run_dir):
    result, out = run_dir
    md = (out / "report.md").read_text()
    assert "## Daily counts" in md and "| NA |" in md
    assert "busy: consistent" in md
    assert "10:30" in md and "nationality" in md
    assert "1 observed without a cloud mask" in md and "`observed-unmasked` days were seen in full" in md
    assert f"| {DAY} | all | ship | {result.daily()['count'].max()} |" in md and "| observed-unmasked |" in md

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)

    parser = Collect()
    html = (out / "report.html").read_text()
    parser.feed(html)
    # counts, map and claims charts, and a crop of each counted detection (one observed day)
    assert parser.tags.count("img") == 3 + result.daily()["count"].max() and "table" in parser.tags
    assert "busy: consistent" in html


def test_run_json_records_versions_parameters_and_command(run_dir):
    _, out = run_dir
    doc = json.loads((out / "run.json").read_text())
    assert doc["command"] == ["harborwatch", "run", "--test"]
    assert doc["parameters"]["aoi"] == "genoa-test" and doc["parameters"]["methods"] == {"ship": "baseline"}
    assert doc["versions"]["numpy"] and doc["versions"]["python"]
    assert doc["model"]["method"] == "baseline"
    assert doc["scene_ids"] == [SAMPLE.id]


def test_counts_chart_handles_a_period_with_nothing_seen(tmp_path):
    daily = pd.DataFrame(
        {
            "date": [DAY, DAY + timedelta(days=1)],
            "zone": "all",
            "class": "ship",
            "count": pd.array([pd.NA, pd.NA], dtype="Int64"),
            "status": "unobserved",
        }
    )
    path = report.plot_counts(daily, tmp_path / "c.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_model_info_reads_the_weights_spec(tmp_path, monkeypatch):
    from detect.core.weights import ModelSpec

    spec = ModelSpec(
        name="ships-s2",
        task="obb",
        bands=("B04", "B03", "B02", "B08"),
        imgsz=256,
        gsd_m=10.0,
        normalisation={"method": "test"},
        sha256="ab" * 32,
        metrics={"cv": {"f1": 0.91}, "training": {"train_seconds": 1200.0}},
    )
    spec.write(tmp_path / "ships-s2.json")
    (tmp_path / "ships-s2.pt").write_bytes(b"not used")
    monkeypatch.setenv("HARBORWATCH_WEIGHTS_DIR", str(tmp_path))
    info = report.model_info("yolo")
    assert info.sha256 == "ab" * 32 and info.metrics["cv"] == {"f1": 0.91}
    text = _model_text(info)
    assert "cv.f1 0.91" in text and "train_seconds" not in text


def test_card_section_becomes_report_blocks(tmp_path):
    card = tmp_path / "card.md"
    card.write_text(
        "# card\n\n## Cross-validation\nFive folds.\nScored on whole scenes.\n\n"
        "| detector | F1 |\n|---|---|\n| yolo | 0.81 |\n| baseline | 0.52 |\n\n## Limitations\n- none\n"
    )
    blocks = report.card_section(card, "Cross-validation")
    assert blocks[0] == ("p", "Five folds. Scored on whole scenes.")
    assert blocks[1][0] == "table" and blocks[1][1].to_dict("records") == [
        {"detector": "yolo", "F1": "0.81"},
        {"detector": "baseline", "F1": "0.52"},
    ]
    assert len(blocks) == 2
    card.write_text("## Cross-validation\nWhy:\n- **first** point,\n  continued\n- second\nAfter.\n")
    assert report.card_section(card, "Cross-validation") == [
        ("p", "Why:"),
        ("ul", ["**first** point, continued", "second"]),
        ("p", "After."),
    ]
    card.write_text("## Cross-validation\n__CV_TABLE__\n")
    assert report.card_section(card, "Cross-validation") == []  # an unfilled template is left out
    assert report.card_section(tmp_path / "missing.md", "Cross-validation") == []


@pytest.mark.parametrize("method", ["auto", "seg-ens", "seg-b4", "seg", "yolo"])
def test_every_ship_models_card_gives_reports_its_cross_validation_table(method):
    from detect.report.provenance import model_info

    card = model_info(method).card
    assert card is not None
    section = report.card_section(Path(card), "Cross-validation")
    tables = [b[1] for b in section if b[0] == "table"]
    assert tables and any("baseline" in " ".join(t.iloc[:, 0]) for t in tables)  # a reference to compare with
    assert sum(len(b[1]) if b[0] == "table" else 1 for b in section) < 40  # a summary, not the card's history


def test_the_dark_caveat_quotes_the_ais_gates_the_run_used() -> None:
    from dataclasses import asdict

    from detect.counting.ais import AisParams
    from detect.report.blocks import ais_gates_text

    default = ais_gates_text(asdict(AisParams()))
    assert "20 m across" in default and "30 m + speed × 10 s along" in default and "±30 min" in default
    assert ais_gates_text(asdict(AisParams.legacy())) == "500 m, ±30 min, similar length"


def test_the_l1c_caveat_claims_the_haze_correction_only_for_the_model_that_has_it() -> None:
    from detect.report.blocks import l1c_caveat

    for method in ("auto", "seg-ens", "seg-b4", "seg"):
        assert "haze correction" in l1c_caveat(method) and "under 80 m" in l1c_caveat(method)
    assert l1c_caveat("auto") == l1c_caveat("seg-ens")  # auto runs the ensemble
    assert len({l1c_caveat(m) for m in ("seg-ens", "seg-b4", "seg")}) == 3  # each model its own numbers
    assert "never measured on real L1C" in l1c_caveat("yolo") and "haze" not in l1c_caveat("yolo")
