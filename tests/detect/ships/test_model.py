"""The ultralytics adapter: offline loading with sha256 checks, and predict's documented shapes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from detect.core.bands import RGB, RGBN, default_normalisation
from detect.core.weights import ModelSpec, resolve_weights, sha256_file, weights_dir
from detect.ships.model import PREDICTION_COLUMNS, YoloModel, untrained_checkpoint, write_model
from imagery.errors import InputError, ModelError

SHIPS = Path(__file__).parents[2] / "fixtures" / "ships_train"
SHIPPED = "ships-s2"


@pytest.fixture(scope="module")
def shipped() -> YoloModel:
    return YoloModel.load(SHIPPED)


@pytest.fixture(scope="module")
def other_model(shipped: YoloModel, tmp_path_factory: pytest.TempPathFactory) -> YoloModel:
    """Untrained weights with the band count the shipped model does not use (predict's shapes only)."""
    bands = RGB if len(shipped.spec.bands) == 4 else RGBN
    out = tmp_path_factory.mktemp("untrained")
    pt = untrained_checkpoint(out / "raw.pt", channels=len(bands))
    spec = ModelSpec(
        name="tiny", task="obb", bands=bands, imgsz=64, gsd_m=10.0, normalisation=default_normalisation(bands)
    )
    pt, _ = write_model(pt, spec, out)
    return YoloModel.load(str(pt))


def test_shipped_weights_load_offline_and_match_their_spec(shipped: YoloModel) -> None:
    spec = shipped.spec
    assert spec.name == SHIPPED and spec.task == "obb"
    assert spec.bands in (RGB, RGBN) and spec.gsd_m == 10.0 and spec.imgsz % 32 == 0
    assert len(spec.sha256) == 64
    assert (weights_dir() / f"{SHIPPED}.pt").stat().st_size < 20 * 2**20


@pytest.mark.parametrize("which", ["shipped", "other"])
def test_predict_returns_one_k_by_7_float32_array_per_chip(which: str, shipped, other_model) -> None:
    model = shipped if which == "shipped" else other_model
    c, s = len(model.spec.bands), model.spec.imgsz
    chips = np.random.default_rng(0).integers(0, 256, (3, s, s, c), dtype=np.uint8)
    out = model.predict(chips, conf=0.0)
    assert len(out) == 3
    for rows in out:
        assert rows.dtype == np.float32 and rows.ndim == 2 and rows.shape[1] == len(PREDICTION_COLUMNS)
        if len(rows):
            assert ((rows[:, 5] >= 0) & (rows[:, 5] <= 1)).all()
            assert (rows[:, 6] == 0).all()
    assert model.predict(chips[:0]) == []


def test_predict_refuses_wrong_channels_or_dtype(shipped: YoloModel) -> None:
    c, s = len(shipped.spec.bands), shipped.spec.imgsz
    with pytest.raises(InputError, match=f"(N, H, W, {c})"):
        shipped.predict(np.zeros((1, s, s, c + 1), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        shipped.predict(np.zeros((1, s, s, c), np.float32))


def _copy_shipped(dest: Path) -> Path:
    pt, spec = resolve_weights(SHIPPED)
    shutil.copy(pt, dest / "m.pt")
    shutil.copy(spec, dest / "m.json")
    return dest / "m.pt"


def test_sha256_mismatch_is_a_model_error(tmp_path: Path) -> None:
    pt = _copy_shipped(tmp_path)
    spec = json.loads(pt.with_suffix(".json").read_text())
    spec["sha256"] = "0" * 64
    pt.with_suffix(".json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="sha256"):
        YoloModel.load(str(pt))


def test_truncated_weights_are_a_model_error(tmp_path: Path) -> None:
    pt = _copy_shipped(tmp_path)
    pt.write_bytes(pt.read_bytes()[:1000])
    spec = json.loads(pt.with_suffix(".json").read_text())
    spec["sha256"] = sha256_file(pt)  # the spec agrees, so the failure comes from reading the file itself
    pt.with_suffix(".json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="cannot load"):
        YoloModel.load(str(pt))


def test_missing_weights_or_spec_are_model_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _copy_shipped(tmp_path).with_suffix(".json").unlink()
    monkeypatch.setenv("HARBORWATCH_WEIGHTS_DIR", str(tmp_path))
    assert weights_dir() == tmp_path
    with pytest.raises(ModelError, match="not found"):
        YoloModel.load("no-such-model")
    with pytest.raises(ModelError, match="spec"):
        YoloModel.load("m")


def test_spec_round_trips_through_json(shipped: YoloModel, tmp_path: Path) -> None:
    path = shipped.spec.write(tmp_path / "s.json")
    again = ModelSpec.read(path)
    assert again == shipped.spec and isinstance(again.bands, tuple)
