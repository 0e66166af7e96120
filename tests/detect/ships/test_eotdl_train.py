"""The eye-checked eotdl chips as training data: only chips whose label passed the check train, their hulls
become instances, and unlabelled objects afloat (and label parts seen to be small craft) carry no loss."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from detect.ships.eotdl_train import (
    EOTDL_SCENE,
    EYE_CHECK,
    IGNORED_PARTS,
    checked_chips,
    prepare_eotdl,
    read_chip,
)
from detect.ships.segment_train import SegTrainConfig, TrainingScenes, extra_scenes, sample
from imagery.errors import InputError

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "eotdl"


def test_only_chips_whose_label_passed_the_eye_check_train():
    assert EYE_CHECK[211215730] == "no hull" and EYE_CHECK[275519000] == "hull"
    assert [p.name for p in checked_chips(FIXTURE)] == ["ship_275519000_2022-08-12.tif"]
    assert set(IGNORED_PARTS) <= {m for m, v in EYE_CHECK.items() if v == "hull"}


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory) -> dict:
    cache = tmp_path_factory.mktemp("scenes")
    assert prepare_eotdl(FIXTURE, cache) == EOTDL_SCENE
    z = np.load(cache / f"{EOTDL_SCENE}.npz")
    return {"cache": cache, **{k: z[k] for k in z.files}}


def test_the_cargo_ship_is_a_hull_and_the_pilot_boats_spray_is_left_out(mosaic):
    inst, ignore, valid = mosaic["inst"], mosaic["ignore"], mosaic["valid"]
    assert [str(a) for a in mosaic["ann_ids"]] == ["275519000:1"]  # part 0 (the pilot boat) is no instance
    hull = inst == 1
    ys, xs = np.nonzero(hull)
    extent = 10 * np.hypot(np.ptp(ys) + 1, np.ptp(xs) + 1)
    assert 80 <= extent <= 140  # AIS: 99 m; 10 m grid
    # the pilot boat (west of the cargo ship) and the other bright specks afloat carry no loss
    _, parts, ok = read_chip(FIXTURE / "chips" / "ship_275519000_2022-08-12.tif")
    pilot = np.zeros_like(ignore)
    pilot[: ok.shape[0], : ok.shape[1]] = parts[0]  # the one chip sits in the mosaic's first slot
    assert pilot.any() and ignore[pilot].all()  # the spray part of the label is left out, all of it
    assert not (inst[pilot] > 0).any()
    _, n = ndimage.label(ignore & valid)
    assert n >= 2  # and other bright objects afloat
    assert not (ignore & ndimage.binary_dilation(hull)).any()  # the hull and its rim keep their loss
    assert valid.any() and not valid.all()  # the gutter around the chip is no data ...
    assert ignore[~valid].all() and not (hull & ~valid).any()  # ... and carries no loss


def test_training_crops_give_no_weight_to_left_out_objects(mosaic):
    scenes = TrainingScenes(mosaic["cache"], [EOTDL_SCENE])
    assert scenes.has_ignore and len(scenes.hulls) == 1
    d = scenes.s[EOTDL_SCENE]
    assert d["ignore"].sum() == mosaic["ignore"].sum()
    rng = random.Random(0)
    weights = []
    for _ in range(12):
        _, y = sample(scenes, rng, 48)
        assert y.shape[0] == 3
        weights.append(y[2])
        assert ((y[0] > 0) <= (y[2] > 0)).all()  # every hull pixel keeps its weight
    assert min(w.min() for w in weights) == 0 and max(w.max() for w in weights) == 1


def test_eotdl_training_needs_the_folder_and_is_off_by_default(tmp_path):
    assert extra_scenes(SegTrainConfig(), None, tmp_path) == []
    with pytest.raises(InputError, match="eotdl"):
        extra_scenes(SegTrainConfig(eotdl=True), None, tmp_path)
    with pytest.raises(InputError, match="no eotdl chips"):
        extra_scenes(SegTrainConfig(eotdl=True), tmp_path, tmp_path / "scenes")
    assert extra_scenes(SegTrainConfig(eotdl=True), FIXTURE, tmp_path / "scenes") == [EOTDL_SCENE]


def test_a_folder_whose_chips_all_failed_the_check_is_an_error_not_a_silent_no_op(tmp_path):
    (tmp_path / "chips").mkdir()
    for f in (FIXTURE / "chips").glob("ship_211215730_*"):  # "no hull": its label lies on a pier
        (tmp_path / "chips" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(InputError, match="none of the 1 chips"):
        prepare_eotdl(tmp_path, tmp_path / "scenes")
    (tmp_path / "chips" / "ship_x_y.tif").write_bytes(b"")
    with pytest.raises(InputError, match="not named"):
        checked_chips(tmp_path)


def test_a_mosaic_made_from_other_chips_is_made_again(tmp_path, monkeypatch):
    import detect.ships.eotdl_train as et

    cache = tmp_path / "scenes"
    prepare_eotdl(FIXTURE, cache)
    first = (cache / "eotdl.npz").stat().st_mtime_ns
    prepare_eotdl(FIXTURE, cache)  # the same chips and check: kept
    assert (cache / "eotdl.npz").stat().st_mtime_ns == first
    monkeypatch.setitem(et.IGNORED_PARTS, 275519000, ())  # another eye check: made again
    prepare_eotdl(FIXTURE, cache)
    with np.load(cache / "eotdl.npz") as z:
        assert [str(a) for a in z["ann_ids"]] == ["275519000:0", "275519000:1"]
