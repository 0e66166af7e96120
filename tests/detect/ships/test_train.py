"""Training orchestration: city folds, a tiny end-to-end run through `harborwatch train`, resumability."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from detect.cli import main
from detect.ships.model import YoloModel
from detect.ships.train import make_folds, make_plan
from imagery.errors import InputError

SHIPS = Path(__file__).parents[2] / "fixtures" / "ships_train"
CITIES = [
    "algiers",
    "athens",
    "cartagena",
    "casablanca",
    "durban",
    "gdynia",
    "genoa",
    "hedland",
    "honolulu",
    "klang",
    "marseille",
    "valencia",
]


def test_folds_are_disjoint_cover_every_city_and_are_fixed() -> None:
    folds = make_folds(CITIES, 5)
    assert len(folds) == 5
    flat = [c for f in folds for c in f]
    assert sorted(flat) == sorted(CITIES) and len(set(flat)) == len(CITIES)
    assert sorted(len(f) for f in folds) == [2, 2, 2, 3, 3]
    assert make_folds(list(reversed(CITIES)), 5) == folds  # membership depends on the seed, not input order


def test_impossible_fold_counts_are_input_errors() -> None:
    with pytest.raises(InputError, match="folds"):
        make_folds(["a", "b"], 3)
    with pytest.raises(InputError, match="--cv"):
        make_plan(SHIPS, "unused", cv=1)
    with pytest.raises(InputError, match="multiple of 32"):
        make_plan(SHIPS, "unused", imgsz=100)


def _cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        main(args)
    return int(e.value.code)


def test_tiny_cli_run_writes_weights_and_a_spec_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [
        "train",
        "--data",
        str(SHIPS),
        "--out",
        str(tmp_path),
        "--cv",
        "0",
        "--epochs",
        "1",
        "--imgsz",
        "64",
        "--batch",
        "4",
        "--bands",
        "B04,B03,B02,B08",
        "--json",
    ]
    assert _cli(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cities"] == ["algiers"] and summary["folds"] == []
    pt = Path(summary["final"]["weights"])
    model = YoloModel.load(str(pt))
    assert model.spec.bands == ("B04", "B03", "B02", "B08")
    assert model.spec.imgsz == 64 and model.spec.metrics["training"]["chip_px"] == 64
    assert model.spec.sha256 == summary["final"]["sha256"]
    assert model.spec.metrics["training"]["train_cities"] == ["algiers"]
    # A rerun finds the finished model and does no training.
    mtime = pt.stat().st_mtime_ns
    assert _cli(args) == 0
    assert pt.stat().st_mtime_ns == mtime


def test_city_lacking_a_band_is_left_out_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    shutil.copytree(SHIPS / "algiers", data / "algiers")
    (data / "algiers" / "algiers_B02.tif").unlink()
    shutil.copy(SHIPS / "annotations_coco.json", data / "annotations_coco.json")
    code = _cli(["train", "--data", str(data), "--out", str(tmp_path / "out"), "--cv", "0", "--imgsz", "64"])
    assert code == 2
    assert "no city" in capsys.readouterr().err  # nothing left to train on: one line, exit 2


def test_init_from_continues_the_earlier_weights_and_refuses_other_folds(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["train", "--data", str(SHIPS), "--cv", "0", "--epochs", "1", "--imgsz", "64", "--batch", "4"]
    assert _cli([*base, "--out", str(tmp_path / "first"), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["final"]
    init_from = ["--init-from", str(tmp_path / "first")]
    assert _cli([*base, "--out", str(tmp_path / "more"), *init_from, "--json"]) == 0
    more = json.loads(capsys.readouterr().out)["final"]
    init = YoloModel.load(more["weights"]).spec.metrics["training"]["init"]
    assert init["sha256"] == first["sha256"] and more["sha256"] != first["sha256"]
    # Different bands: the earlier weights don't fit this run, refused before any training.
    code = _cli([*base, "--bands", "B04,B03,B02", "--out", str(tmp_path / "x"), *init_from])
    assert code == 2 and "--init-from" in capsys.readouterr().err
    assert not (tmp_path / "x" / "final").exists()
    code = _cli([*base, "--arch", "yolov8n-obb.yaml", "--out", str(tmp_path / "y"), *init_from])
    assert code == 2 and "yolo11n-obb.yaml run" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "cv.json").write_text("[]")
    code = _cli([*base, "--out", str(tmp_path / "z"), "--init-from", str(tmp_path / "broken")])
    assert code == 2 and "no readable cv.json" in capsys.readouterr().err
