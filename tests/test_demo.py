"""`harborwatch demo` and `harborwatch run` through the real CLI entry point, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detect.cli import main
from detect.core.weights import weights_dir
from imagery.samples import list_samples, sample_dir

HAVE_SHIP_WEIGHTS = (weights_dir() / "ships-s2.pt").is_file()


def harborwatch(capsys, monkeypatch, cwd: Path, *args: str) -> tuple[int, str, str]:
    """Run the CLI entry point in-process (as the `harborwatch` script does): exit code, stdout, stderr."""
    monkeypatch.chdir(cwd)
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.mark.skipif(not HAVE_SHIP_WEIGHTS, reason="ship weights (weights/ships-s2.pt) not in this checkout")
def test_demo_end_to_end(tmp_path, capsys, monkeypatch):
    code, out, err = harborwatch(capsys, monkeypatch, tmp_path, "demo", "--out", "demo", "--json")
    assert code == 0, err
    runs = json.loads(out)
    samples = list_samples()
    assert [r["aoi"] for r in runs] == [f"sample-{s.id}" for s in samples]
    for run, sample in zip(runs, samples, strict=True):
        folder = tmp_path / "demo" / sample.id
        for name in (
            "report.html",
            "report.md",
            "counts.png",
            "map.png",
            "map.html",
            "crops/crops.csv",
            "daily_counts.csv",
            "detections.parquet",
            "detections.geojson",
            "scenes.csv",
            "run.json",
        ):
            assert (folder / name).is_file(), name
        days = run["daily_counts"]
        assert len(days) == 7
        seen = [d for d in days if d["status"] != "unobserved"]
        assert [d["date"] for d in seen] == [sample.datetime.date().isoformat()]
        assert all(d["count"] is None for d in days if d["status"] == "unobserved")
        # a real detector on a real port chip: it finds ships, but not wildly more than are labelled
        assert 0.5 * sample.vessel_count <= seen[0]["count"] <= 1.5 * sample.vessel_count
        run_json = json.loads((folder / "run.json").read_text())
        assert run_json["model"]["sha256"]


def test_run_cli_json_on_a_local_folder(tmp_path, capsys, monkeypatch):
    sample = list_samples()[0]
    w, s, e, n = sample.bbox
    bbox = f"{w + 0.003},{s + 0.003},{e - 0.003},{n - 0.003}"
    day = sample.datetime.date()
    code, stdout, err = harborwatch(
        capsys,
        monkeypatch,
        tmp_path,
        "run",
        "--aoi",
        bbox,
        "--start",
        str(day),
        "--end",
        str(day),
        "--source",
        f"local:{sample_dir()}",
        "--method",
        "baseline",
        "--out",
        "run",
        "--json",
    )
    assert code == 0, err
    out = json.loads(stdout)
    assert out["scenes"] == {"total": 1, "unknown": 1}
    assert (
        out["daily_counts"][0]["status"] == "observed-unmasked"
        and out["daily_counts"][0]["count"] is not None
    )
    assert Path(out["files"]["report_html"]).is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--aoi", "atlantis", "--start", "2018-05-01", "--end", "2018-05-02"], "unknown AOI"),
        (["--aoi", "longkou-port", "--start", "2018-05-09", "--end", "2018-05-02"], "before start"),
        (
            ["--aoi", "longkou-port", "--start", "2018-05-01", "--end", "2018-05-02", "--classes", ","],
            "--classes",
        ),
    ],
)
def test_run_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, args, message):
    code, _, err = harborwatch(capsys, monkeypatch, tmp_path, "run", *args, "--out", "run")
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # bad input is refused before any work
