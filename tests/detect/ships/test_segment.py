"""The hull-segmentation ship detector (``seg``): instances from hull and core maps, the water check, band
sets it accepts and refuses, resumable training, and the shipped weights on real chips."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from detect.core.weights import resolve_weights
from detect.ships.evaluate import load_coco_truth, match_scene
from detect.ships.segment import (
    SEG_BANDS,
    Instance,
    SegModel,
    SegShipDetector,
    SegSpec,
    UNet,
    encode,
    instances,
    touches,
    usable_bands,
)
from detect.ships.segment_train import SegTrainConfig, core_target, learning_rate, prepare, train
from imagery.errors import InputError, MissingBandsError, ModelError
from imagery.read import open_raster
from imagery.types import RasterWindow

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CHIPS = FIXTURES / "chips"
SHIPPED = resolve_weights("ships-s2-seg")[0].is_file()
needs_weights = pytest.mark.skipif(not SHIPPED, reason="weights/ships-s2-seg.pt not present")


def test_usable_band_sets_are_nir_or_true_colour():
    assert (
        usable_bands(("B08",)) and usable_bands(("B02", "B03", "B04")) and usable_bands(("B02", "B08", "B11"))
    )
    assert not usable_bands(("B02", "B03", "B11")) and not usable_bands(())


def test_encoding_marks_missing_bands_absent():
    refl = np.full((len(SEG_BANDS), 4, 4), 0.04, np.float32)
    x = encode(refl, ("B08",))
    n = len(SEG_BANDS)
    assert x.shape == (2 * n, 4, 4)
    i = SEG_BANDS.index("B08")
    assert np.allclose(x[i], np.sqrt(0.04) * 3) and (x[n + i] == 1).all()
    others = [j for j in range(n) if j != i]
    assert (x[others] == 0).all() and (x[[n + j for j in others]] == 0).all()


def test_two_hulls_side_by_side_are_split_by_their_cores_and_an_orphan_hull_is_a_ship():
    prob = np.zeros((2, 20, 20), np.float32)
    prob[0, 2:12, 4:8] = 0.9  # two ships moored side by side: one hull blob ...
    prob[1, 3:11, 4] = 0.9  # ... two cores
    prob[1, 3:11, 7] = 0.9
    prob[0, 15:18, 14:18] = 0.8  # a small hull with no core
    found = instances(prob, SegSpec(name="t"))
    assert len(found) == 3
    sizes = sorted(len(i.rows) for i in found)
    assert sizes == [12, 20, 20]


def test_core_target_keeps_touching_hulls_apart():
    inst = np.zeros((12, 12), np.int32)
    inst[2:10, 2:5] = 1
    inst[2:10, 5:8] = 2
    core = core_target(inst)
    labels = inst * core
    assert set(np.unique(labels)) == {0, 1, 2}
    # no core pixel of one hull touches a core pixel of the other
    assert not ((labels[:, :-1] == 1) & (labels[:, 1:] == 2)).any()


def test_a_hull_touches_water_only_within_reach():
    water = np.zeros((20, 20), bool)
    water[:, 12:] = True
    near = Instance(np.array([5, 6, 7]), np.array([10, 10, 10]), 0.9)
    far = Instance(np.array([5, 6, 7]), np.array([3, 3, 3]), 0.9)
    assert touches(near, water, 2) and not touches(far, water, 2)


def small_model() -> SegModel:
    torch.manual_seed(0)
    return SegModel(UNet(base=4, depth=2), SegSpec(name="tiny", base=4, depth=2))


def test_a_window_without_nir_or_true_colour_is_refused_naming_what_is_needed():
    data = np.full((2, 16, 16), 0.05, np.float32)
    window = RasterWindow(
        data,
        ("B02", "B03"),
        open_raster(CHIPS / "marseille_water.tif").grid.__class__(
            "EPSG:32631", open_raster(CHIPS / "marseille_water.tif").grid.transform, 16, 16
        ),
        scene_id="x",
    )
    with pytest.raises(MissingBandsError, match="B08, or B02\\+B03\\+B04"):
        SegShipDetector(small_model()).detect(window)
    # every band listed but holding no data: the message names what has data, not what is listed
    empty = RasterWindow(np.full((4, 16, 16), np.nan, np.float32), ("B02", "B03", "B04", "B08"), window.grid)
    with pytest.raises(MissingBandsError, match=r"bands with data: none; listed: B02, B03, B04, B08\)"):
        SegShipDetector(small_model()).detect(empty)


class Killed(Exception):
    pass


def test_training_killed_midway_resumes_to_the_same_weights(tmp_path):
    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    assert cities == ["algiers"] and (cache / "algiers.npz").is_file()
    cfg = SegTrainConfig(steps=4, batch=2, crop=32, base=4, depth=2, checkpoint_every=2)
    straight = train(cache, cities, tmp_path / "straight", cfg)

    def kill_after_first_checkpoint(message: str) -> None:
        raise Killed(message)

    with pytest.raises(Killed, match="step 2/4"):
        train(cache, cities, tmp_path / "resumed", cfg, progress=kill_after_first_checkpoint)
    assert not (tmp_path / "resumed" / "model.pt").exists()
    resumed = train(cache, cities, tmp_path / "resumed", cfg)  # a rerun picks up the step-2 checkpoint
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert (tmp_path / "resumed" / "model.pt").is_file()


def test_training_progress_goes_to_the_callback_or_the_log_once(tmp_path, caplog):
    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    cfg = SegTrainConfig(steps=2, batch=2, crop=32, base=4, depth=2, checkpoint_every=2)
    seen: list[str] = []
    with caplog.at_level(logging.INFO, logger="detect.ships.segment_train"):
        train(cache, cities, tmp_path / "a", cfg, progress=seen.append)
        assert len(seen) == 1 and "step 2/2" in seen[0]
        assert "step 2/2" not in caplog.text  # the CLI passes log.info: each line would show twice
        train(cache, cities, tmp_path / "b", cfg)
    assert caplog.text.count("step 2/2") == 1


def test_bf16_training_resumes_to_the_same_weights_and_saves_plain_fp32_state(tmp_path):
    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    cfg = SegTrainConfig(steps=4, batch=2, crop=32, base=4, depth=2, checkpoint_every=2, precision="bf16")
    straight = train(cache, cities, tmp_path / "straight", cfg)

    def kill_after_first_checkpoint(message: str) -> None:
        raise Killed(message)

    with pytest.raises(Killed, match="step 2/4"):
        train(cache, cities, tmp_path / "resumed", cfg, progress=kill_after_first_checkpoint)
    resumed = train(cache, cities, tmp_path / "resumed", cfg)
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    # bf16 is only the forward pass: the weights on disk are fp32 in the default layout, and they load
    # into a plain model that gives the same outputs as the trained one
    saved = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert all(v.dtype in (torch.float32, torch.int64) and v.is_contiguous() for v in saved.values())
    plain = UNet(base=4, depth=2)
    plain.load_state_dict(saved)
    x = torch.rand(1, plain.enc[0][0].in_channels, 32, 32)
    assert torch.allclose(plain.eval()(x), resumed.eval()(x), atol=1e-5)
    # and the fp32 run with the same seed differs (the setting is not ignored) yet lands close
    fp32 = train(cache, cities, tmp_path / "fp32", SegTrainConfig(**{**cfg.__dict__, "precision": "fp32"}))
    diffs = [
        (a - b).abs().max().item()
        for a, b in zip(fp32.state_dict().values(), straight.state_dict().values(), strict=True)
        if a.is_floating_point()
    ]
    assert 0 < max(diffs) < 0.05


def test_unknown_training_precision_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="precision"):
        train(tmp_path / "scenes", ["algiers"], tmp_path / "run", SegTrainConfig(precision="fp16"))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_longer_training_with_warm_restarts_continues_a_finished_run(tmp_path):
    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    short = SegTrainConfig(steps=2, batch=2, crop=32, base=4, depth=2, checkpoint_every=2)
    longer = SegTrainConfig(steps=4, batch=2, crop=32, base=4, depth=2, checkpoint_every=2, cycle=2)
    straight = train(cache, cities, tmp_path / "straight", longer)
    train(cache, cities, tmp_path / "extended", short)  # a finished 2-step run ...
    extended = train(cache, cities, tmp_path / "extended", longer)  # ... continued for a second cycle
    for (k, a), (_, b) in zip(straight.state_dict().items(), extended.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    # the rate decays within a cycle and jumps back up at its restart
    assert learning_rate(longer, 1) < learning_rate(longer, 2) > learning_rate(longer, 3)


def test_cycle_ends_are_kept_and_averaged_into_a_model_with_batch_norm_statistics_of_its_own(
    tmp_path, monkeypatch
):
    import random

    import detect.ships.segment_train as st

    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    cfg = SegTrainConfig(steps=6, batch=2, crop=32, base=4, depth=2, checkpoint_every=2, cycle=2, average=2)
    last = train(cache, cities, tmp_path / "run", cfg)
    ends = st.cycle_weights(tmp_path / "run")
    assert [p.name for p in ends] == ["cycle-000002.pt", "cycle-000004.pt", "cycle-000006.pt"]
    six = torch.load(ends[-1], weights_only=True)
    assert all(torch.equal(v, last.state_dict()[k]) for k, v in six.items())
    four = torch.load(ends[1], weights_only=True)

    avg = st.averaged_model(cache, cities, tmp_path / "run", cfg)
    got = avg.state_dict()
    for k, v in six.items():
        if "running" in k or "num_batches" in k:
            continue
        assert torch.allclose(got[k], (v + four[k]) / 2, atol=1e-7), k  # the mean of the last two ends
    # batch norm is re-estimated on training crops: the first layer's running mean is the plain mean of
    # its convolution's output over every recalibration crop (drawn again here from the same seed)
    rng = random.Random(cfg.seed + 7919)
    scenes = st.TrainingScenes(cache, cities)
    conv = avg.enc[0][0]
    outs = []
    with torch.no_grad():
        for _ in range(st.BN_BATCHES):
            xs = [st.sample(scenes, rng, cfg.crop, p_paste=cfg.p_paste)[0] for _ in range(cfg.batch)]
            outs.append(conv(torch.from_numpy(np.stack(xs))).mean((0, 2, 3)))
    assert torch.allclose(got["enc.0.1.running_mean"], torch.stack(outs).mean(0), atol=1e-5)
    assert not torch.allclose(
        got["enc.0.1.running_mean"], (six["enc.0.1.running_mean"] + four["enc.0.1.running_mean"]) / 2
    )
    assert not avg.training
    # kept on disk and read back, not computed again
    assert len(list((tmp_path / "run").glob("model-avg2-6-*.pt"))) == 1

    other = st.averaged_model(
        cache, cities, tmp_path / "run", SegTrainConfig(**{**cfg.__dict__, "p_paste": 0.5})
    )
    assert len(list((tmp_path / "run").glob("model-avg2-6-*.pt"))) == 2  # another recipe: its own file
    assert not torch.equal(other.state_dict()["enc.0.1.running_mean"], got["enc.0.1.running_mean"])

    def no_recalibration(*a, **k):
        raise AssertionError("recalibrated again")

    monkeypatch.setattr(st, "recalibrate_bn", no_recalibration)
    again = st.averaged_model(cache, cities, tmp_path / "run", cfg)
    assert all(torch.equal(v, got[k]) for k, v in again.state_dict().items())
    # more cycles than the run has: a clear error
    with pytest.raises(st.InputError, match="3 cycle-end weights to average, 4 asked for"):
        st.averaged_model(cache, cities, tmp_path / "run", SegTrainConfig(**{**cfg.__dict__, "average": 4}))


def test_a_fold_is_scored_at_the_threshold_its_inner_cities_choose(monkeypatch):
    from shapely.geometry import box

    import detect.ships.segment_train as st
    from detect.core.geometry import Detection
    from detect.ships.evaluate import Truth

    def poly(x: float):  # a 60 m x 20 m hull at x metres east of 10 E, 54 N
        d = x / 65_000
        return box(10 + d - 0.00046, 54 - 0.00009, 10 + d + 0.00046, 54 + 0.00009)

    def ship(score: float, x: float) -> Detection:
        p = poly(x)
        return Detection("ship", score, p, p.centroid.x, p.centroid.y, 60.0, 20.0, 90.0)

    def truth(x: float) -> Truth:
        p = poly(x)
        return Truth("c", 1, p, p.centroid.x, p.centroid.y, 60.0, "box")

    # inner city: the true ship scores 0.9 and a false one 0.6, so the inner split picks a threshold above
    # 0.6; held-out city: a true ship at 0.5, found only if the threshold came from elsewhere
    canned = {
        "inner_city": ([ship(0.9, 0), ship(0.6, 500)], [truth(0)]),
        "held_city": ([ship(0.5, 0)], [truth(0)]),
    }
    calls = []

    def fake_detect(seg, data, cities, variant, truths):
        calls.append(list(cities))
        return {c: canned[c] for c in cities}

    monkeypatch.setattr(st, "detect_cities", fake_detect)
    fold = {"held_out": ["held_city"], "inner": ["inner_city"], "fit": ["x"]}
    res = st.score_fold(None, Path("."), fold, {})
    assert calls[0] == ["inner_city"] and all(c == ["held_city"] for c in calls[1:])
    assert len(calls) == 1 + len(st.VARIANTS) and set(res["variants"]) == set(st.VARIANTS)
    assert 0.6 < res["threshold"] <= 0.9 and res["inner_f1"] == 1.0
    rec = res["variants"]["default"]["held_city"]
    assert rec["n_truth"] == 1 and rec["tp"] == 0 and rec["n_pred"] == 0  # 0.5 is under the inner threshold


def test_a_run_killed_between_a_cycle_end_and_its_checkpoint_writes_that_cycle_end_again(
    tmp_path, monkeypatch
):
    import detect.ships.segment_train as st

    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    cfg = SegTrainConfig(steps=4, batch=2, crop=32, base=4, depth=2, checkpoint_every=2, cycle=2)
    train(cache, cities, tmp_path / "straight", cfg)
    real_save = torch.save
    saved = []

    def die_at_the_second_checkpoint(obj, path, *a, **k):
        # the checkpoint's temporary file (imagery.atomic.atomic_path: ".checkpoint.pt.<random>.part")
        is_checkpoint = Path(getattr(path, "name", path)).name.startswith(".checkpoint.pt.")  # a file or path
        if is_checkpoint and len([p for p in saved if "checkpoint" in p]) == 1:
            raise Killed(str(path))
        saved.append(str(path))
        real_save(obj, path, *a, **k)

    monkeypatch.setattr(st.torch, "save", die_at_the_second_checkpoint)
    with pytest.raises(Killed):
        train(cache, cities, tmp_path / "killed", cfg)
    assert (tmp_path / "killed" / "cycle-000004.pt").is_file()  # written, but the checkpoint says step 2
    monkeypatch.setattr(st.torch, "save", real_save)
    train(cache, cities, tmp_path / "killed", cfg)
    for name in ("cycle-000002.pt", "cycle-000004.pt"):
        a = torch.load(tmp_path / "straight" / name, weights_only=True)
        b = torch.load(tmp_path / "killed" / name, weights_only=True)
        assert all(torch.equal(v, b[k]) for k, v in a.items()), name


def test_a_run_resumed_with_another_network_shape_is_refused_in_one_line(tmp_path):
    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    cfg = SegTrainConfig(steps=2, batch=2, crop=32, base=4, depth=2, checkpoint_every=2)
    train(cache, cities, tmp_path / "run", cfg)
    longer = SegTrainConfig(steps=4, batch=2, crop=32, base=4, depth=3, checkpoint_every=2, cycle=2)
    with pytest.raises(InputError, match="another --base, --depth or --encoder"):
        train(cache, cities, tmp_path / "run", longer)


def test_a_soup_is_the_mean_of_branches_of_the_last_cycle_and_a_killed_one_resumes(tmp_path, monkeypatch):
    import detect.ships.segment_train as st

    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    cfg = SegTrainConfig(
        steps=8, batch=2, crop=32, base=4, depth=2, checkpoint_every=2, cycle=4, soup=2, p_hard=0.2
    )
    real_mine, mined_at = st.mine_hard_negatives, []

    def mine(model, scenes, *args, **kwargs):
        mined_at.append(sorted(scenes.cities))
        return real_mine(model, scenes, *args, **kwargs)

    monkeypatch.setattr(st, "mine_hard_negatives", mine)
    straight = st.fit_model(cache, cities, tmp_path / "straight", cfg)
    run = tmp_path / "straight"
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 4  # the stem: steps - cycle
    assert mined_at == [cities]  # once, from the stem at step 4; every branch reads those
    mined = json.loads((run / "hard_negatives.json").read_text())
    assert mined["step"] == 4
    branches = [torch.load(run / f"branch{b}" / "cycle-000008.pt", weights_only=True) for b in (0, 1)]
    for b in (0, 1):
        assert json.loads((run / f"branch{b}" / "hard_negatives.json").read_text()) == mined
    conv = "enc.0.0.weight"
    assert not torch.equal(branches[0][conv], branches[1][conv])  # their own crops
    got = straight.state_dict()
    for k, v in branches[0].items():
        if "running" not in k and v.is_floating_point():
            assert torch.allclose(got[k], (v + branches[1][k]) / 2, atol=1e-6), k
    bn = "enc.0.1.running_mean"
    assert not torch.allclose(got[bn], (branches[0][bn] + branches[1][bn]) / 2)  # re-estimated

    def kill_in_the_second_branch(message: str) -> None:
        if message.startswith("branch1: step 6/"):
            raise Killed(message)

    with pytest.raises(Killed):
        st.fit_model(cache, cities, tmp_path / "killed", cfg, progress=kill_in_the_second_branch)
    assert torch.load(tmp_path / "killed" / "branch1" / "checkpoint.pt", weights_only=False)["step"] == 6
    assert not list((tmp_path / "killed").glob("model-soup*.pt"))
    again = st.fit_model(cache, cities, tmp_path / "killed", cfg)  # branch 1 resumes at its step 6
    for k, v in got.items():
        assert torch.equal(v, again.state_dict()[k]), k

    def no_training(*args, **kwargs):
        raise AssertionError("a kept soup is read back, not trained again")

    monkeypatch.setattr(st, "train", no_training)
    kept = st.fit_model(cache, cities, tmp_path / "killed", cfg)
    assert all(torch.equal(v, kept.state_dict()[k]) for k, v in got.items())


def test_a_soup_refuses_branches_of_another_seed_or_recipe_in_its_folder(tmp_path):
    import detect.ships.segment_train as st

    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    cfg = SegTrainConfig(steps=4, batch=2, crop=32, base=4, depth=2, checkpoint_every=2, cycle=2, soup=2)
    st.fit_model(cache, cities, tmp_path / "run", cfg)
    for other in ({"seed": 1}, {"p_paste": 0.5}):
        with pytest.raises(InputError, match="branch of another step, seed or recipe"):
            st.fit_model(cache, cities, tmp_path / "run", SegTrainConfig(**{**cfg.__dict__, **other}))
    # a third branch joins the two kept ones (the branches do not depend on how many there are)
    three = st.fit_model(cache, cities, tmp_path / "run", SegTrainConfig(**{**cfg.__dict__, "soup": 3}))
    assert (tmp_path / "run" / "branch2" / "cycle-000004.pt").is_file()
    assert three is not None


def test_a_soup_refuses_a_run_past_its_branch_point_and_recipes_without_cycles(tmp_path):
    import detect.ships.segment_train as st

    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    plain = SegTrainConfig(steps=4, batch=2, crop=32, base=4, depth=2, checkpoint_every=2, cycle=2)
    train(cache, cities, tmp_path / "run", plain)
    soup = SegTrainConfig(**{**plain.__dict__, "soup": 2})
    with pytest.raises(InputError, match="past 2"):
        st.fit_model(cache, cities, tmp_path / "run", soup)
    for bad in ({"cycle": 0}, {"steps": 3}, {"steps": 2}):
        with pytest.raises(InputError, match="last learning-rate cycle"):
            st.fit_model(cache, cities, tmp_path / "other", SegTrainConfig(**{**soup.__dict__, **bad}))
    with pytest.raises(InputError, match="ask for one"):
        st.fit_model(cache, cities, tmp_path / "other", SegTrainConfig(**{**soup.__dict__, "average": 2}))
    assert not (tmp_path / "other").exists()


def test_a_fold_is_scored_again_when_its_result_is_of_another_recipe(tmp_path):
    from detect.ships.segment_train import recipe_of, scored_with

    cfg = SegTrainConfig(steps=6000, cycle=1200, p_paste=0.5)
    res = tmp_path / "result.json"
    assert scored_with(res, cfg)  # nothing scored yet: nothing to redo
    res.write_text(json.dumps({"threshold": 0.9, "recipe": recipe_of(cfg)}))
    assert scored_with(res, cfg)
    assert scored_with(res, SegTrainConfig(**{**cfg.__dict__, "precision": "bf16", "checkpoint_every": 10}))
    assert not scored_with(res, SegTrainConfig(**{**cfg.__dict__, "steps": 7200}))  # the run's next stage
    assert not scored_with(res, SegTrainConfig(**{**cfg.__dict__, "soup": 2}))
    res.write_text(json.dumps({"threshold": 0.9}))
    assert scored_with(res, SegTrainConfig(steps=1))  # written before results kept their recipe
    res.write_text("{not json")
    assert not scored_with(res, cfg)


def test_fields_added_later_leave_old_keys_alone_at_their_defaults():
    from detect.ships.segment_train import LATER_FIELDS, config_fields

    cfg = SegTrainConfig(steps=7200, cycle=1200)
    assert "soup" in LATER_FIELDS and "soup" not in config_fields(cfg)  # kept averages and soups still match
    assert config_fields(SegTrainConfig(**{**cfg.__dict__, "soup": 2}))["soup"] == 2
    assert "precision" not in config_fields(cfg) and "steps" not in config_fields(cfg, without=("steps",))


def test_a_summary_pools_only_the_folds_scored_with_the_recipe_asked_for(tmp_path):
    from detect.ships.segment_train import recipe_of, summarise

    now, before = SegTrainConfig(steps=7200, cycle=1200), SegTrainConfig(steps=6000, cycle=1200)
    plan = [{"fit": ["a"], "inner": ["b"], "held_out": [c]} for c in ("c", "d")]
    for f, cfg in enumerate((now, before)):
        rec = {"n_truth": 1, "n_pred": 1, "tp": 1, "truth_len": [100.0], "truth_matched": [True]}
        rec |= {"len_err": [0.0], "ap_scores": [0.9], "ap_hits": [True], "hits": [True]}
        res = {**plan[f], "threshold": 0.9, "variants": {"default": {plan[f]["held_out"][0]: rec}}}
        (tmp_path / f"fold{f}").mkdir()
        (tmp_path / f"fold{f}" / "result.json").write_text(json.dumps({**res, "recipe": recipe_of(cfg)}))
    assert summarise(tmp_path, plan, now)["folds_done"] == [0]
    assert summarise(tmp_path, plan)["folds_done"] == [0, 1]  # without a recipe: every finished fold


def test_averaging_refuses_weights_of_different_shapes():
    import detect.ships.segment_train as st

    a, b = UNet(base=4, depth=2).state_dict(), UNet(base=8, depth=2).state_dict()
    with pytest.raises(ValueError, match="differ in the shape"):
        st.average_states([a, b])
    with pytest.raises(ValueError, match="no weights"):
        st.average_states([])


def test_hard_negatives_are_the_models_detections_away_from_labelled_hulls(tmp_path, monkeypatch):
    from detect.ships import segment
    from detect.ships.segment_train import HARD_LABEL_REACH_PX, TrainingScenes, mine_hard_negatives

    assert HARD_LABEL_REACH_PX == 2
    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    scenes = TrainingScenes(cache, cities)
    d = scenes.s["algiers"]
    h, w = d["mask"].shape
    rows, cols = np.nonzero(d["mask"])
    r0, c0 = int(rows[len(rows) // 2]), int(cols[len(rows) // 2])  # a labelled hull pixel
    assert 1 <= r0 < h - 1 and 1 <= c0 < w - 1

    def centres_at(dist: int) -> np.ndarray:
        """Interior pixels at exactly ``dist`` (chessboard) from the nearest labelled pixel."""
        ring = (cv2_dilate(d["mask"], 2 * dist + 1) > 0) & (cv2_dilate(d["mask"], 2 * dist - 1) == 0)
        pts = np.argwhere(ring)
        return pts[(pts.min(1) >= 5) & (pts[:, 0] < h - 5) & (pts[:, 1] < w - 5)]

    touching = centres_at(3)[0]  # its 3 × 3 blob reaches 2 px from the label: that ship, or its wake
    clear = centres_at(4)  # its blob stays 3 px away
    clear = clear[np.abs(clear - touching).max(1) > 5][0]
    far = centres_at(12)
    faint = far[-1]
    inland = far[np.abs(far - faint).max(1) > 10][0]
    d["water"] = np.ones((h, w), bool)
    d["water"][inland[0] - 3 : inland[0] + 4, inland[1] - 3 : inland[1] + 4] = False  # water 3 px from it
    prob = np.zeros((2, h, w), np.float32)
    for r, c in ((r0, c0), touching, clear, inland):
        prob[:, r - 1 : r + 2, c - 1 : c + 2] = 0.99
    prob[0, faint[0] - 1 : faint[0] + 2, faint[1] - 1 : faint[1] + 2] = 0.52  # hull only: score ~0.26
    monkeypatch.setattr(segment.SegModel, "probabilities", lambda self, x, keep=None: prob.copy())
    mined = mine_hard_negatives(segment.UNet(base=4, depth=2), scenes)
    # the hull on a label and the one within 2 px of it are ships; the faint one scores under 0.5; the
    # one with no water within 2 px is dropped, as the detector drops it
    assert mined == {"algiers": [[int(clear[0]), int(clear[1])]]}
    d["water"][inland[0] - 3 : inland[0] + 4, inland[1] - 3 : inland[1] + 4] = True
    d["water"][inland[0] - 2 : inland[0] + 3, inland[1] - 2 : inland[1] + 3] = False  # water 2 px from it
    mined = mine_hard_negatives(segment.UNet(base=4, depth=2), scenes)["algiers"]
    assert [int(inland[0]), int(inland[1])] in mined
    d["present"] = ("B02", "B03", "B11")  # bands the detector refuses: not mined
    assert mine_hard_negatives(segment.UNet(base=4, depth=2), scenes) == {"algiers": []}


def cv2_dilate(mask: np.ndarray, k: int) -> np.ndarray:
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((k, k), np.uint8))


def test_hard_negative_crops_centre_on_them_and_are_mined_once_per_cycle(tmp_path, monkeypatch):
    import random

    import detect.ships.segment_train as st

    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    scenes = st.TrainingScenes(cache, cities)
    d = scenes.s["algiers"]
    h, w = d["mask"].shape
    marker = (h // 2, w - 10)
    d["img"][:] = 0.0
    d["img"][:, marker[0], marker[1]] = 1.0  # bright in every band: ≥ √0.3 × 3 after gain and 8-bit clipping
    d["hard"] = np.array([marker], np.int32)
    for seed in range(6):
        x, _ = st.sample(scenes, random.Random(seed), 32, p_ship=0.0, p_hard=1.0)
        assert x[: len(st.SEG_BANDS)].max() > 1.0, "the hard negative lies in the crop (water ~0.3)"
    calls = []

    def fake_mine(model, scenes, device="cpu"):
        calls.append(1)
        return {"algiers": [[3, 4 + len(calls)]]}

    monkeypatch.setattr(st, "mine_hard_negatives", fake_mine)
    cfg = SegTrainConfig(steps=4, batch=2, crop=32, base=4, depth=2, checkpoint_every=2, cycle=2, p_hard=0.2)

    def fresh():
        return st.TrainingScenes(cache, cities)

    a = fresh()
    st.use_hard_negatives(None, a, tmp_path, 0, cfg)  # step 0: no trained model to mine from
    assert not calls and "hard" not in a.s["algiers"] and not (tmp_path / "hard_negatives.json").exists()
    st.use_hard_negatives(None, a, tmp_path, 2, cfg)
    assert calls == [1] and a.s["algiers"]["hard"].tolist() == [[3, 5]]
    b = fresh()
    st.use_hard_negatives(None, b, tmp_path, 3, cfg)  # resumed inside the same cycle: read back
    assert calls == [1] and b.s["algiers"]["hard"].tolist() == [[3, 5]]
    st.use_hard_negatives(None, b, tmp_path, 4, cfg)  # the next cycle mines again
    assert calls == [1, 1] and b.s["algiers"]["hard"].tolist() == [[3, 6]]
    st.use_hard_negatives(None, fresh(), tmp_path, 3, cfg)  # a file from a later step is not this cycle's
    assert len(calls) == 3
    (tmp_path / "hard_negatives.json").write_text('{"step": 3, "cities": [1, 2]}')
    st.use_hard_negatives(None, fresh(), tmp_path, 3, cfg)  # malformed: mined again, not a crash
    assert len(calls) == 4


def test_continued_training_with_hard_negatives_mines_at_each_cycle(tmp_path, monkeypatch):
    import json

    import detect.ships.segment_train as st

    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    short = SegTrainConfig(steps=2, batch=2, crop=32, base=4, depth=2, checkpoint_every=2)
    longer = SegTrainConfig(
        steps=6, batch=2, crop=32, base=4, depth=2, checkpoint_every=2, cycle=2, p_hard=0.25
    )
    train(cache, cities, tmp_path / "run", short)
    assert not (tmp_path / "run" / "hard_negatives.json").exists()
    real_mine, real_sample = st.mine_hard_negatives, st.sample
    mined_with, drawn = [], []

    def mine(model, scenes, device="cpu"):
        before = model.training
        out = real_mine(model, scenes, device)
        mined_with.append((before, model.training))
        return out

    def sample(scenes, rng, crop, **kw):
        drawn.append((kw["p_hard"], "hard" in scenes.s["algiers"]))
        return real_sample(scenes, rng, crop, **kw)

    monkeypatch.setattr(st, "mine_hard_negatives", mine)
    monkeypatch.setattr(st, "sample", sample)
    model = train(cache, cities, tmp_path / "run", longer)
    # mined at steps 2 and 4, in eval mode, and training went on in train mode after each
    assert mined_with == [(True, False), (True, False)]
    assert drawn and all(d == (0.25, True) for d in drawn)
    saved = json.loads((tmp_path / "run" / "hard_negatives.json").read_text())
    assert saved["step"] == 4 and set(saved["cities"]) == {"algiers"}
    assert (tmp_path / "run" / "model.pt").is_file() and not model.training


def test_training_on_a_finer_grid_sees_the_scene_and_its_hulls_upsampled(tmp_path):
    from detect.ships.segment_train import TrainingScenes

    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    coarse = TrainingScenes(cache, cities).s["algiers"]
    fine = TrainingScenes(cache, cities, upsample=2).s["algiers"]
    assert fine["img"].shape[1:] == tuple(2 * n for n in coarse["img"].shape[1:])
    assert fine["inst"].max() == coarse["inst"].max()  # every hull kept, labels exact
    assert fine["mask"].sum() == 4 * coarse["mask"].sum()
    cfg = SegTrainConfig(steps=2, batch=2, crop=64, base=4, depth=2, checkpoint_every=2, upsample=2)
    assert cfg.gsd_m == 5.0
    train(cache, cities, tmp_path / "fine", cfg)
    assert (tmp_path / "fine" / "model.pt").is_file()


def test_haze_brightens_blue_more_than_nir_lowers_contrast_and_keeps_missing_bands_missing():
    import random

    from detect.ships.segment_train import add_haze

    img = np.full((len(SEG_BANDS), 8, 8), 0.02, np.float32)
    img[:, 3, 3] = 0.2  # a bright hull pixel on dark water
    img[SEG_BANDS.index("B11")] = 0  # a band the scene lacks
    for seed in range(20):
        out = add_haze(img, random.Random(seed))
        b02, b08 = SEG_BANDS.index("B02"), SEG_BANDS.index("B08")
        assert out[b02, 0, 0] - img[b02, 0, 0] > out[b08, 0, 0] - img[b08, 0, 0] > 0
        assert out[b08, 3, 3] - out[b08, 0, 0] < img[b08, 3, 3] - img[b08, 0, 0]
        assert (out[SEG_BANDS.index("B11")] == 0).all()


def test_wake_trails_one_end_of_the_hull_on_water_fades_and_stays_out_of_the_mask():
    import random

    from detect.ships.segment_train import add_wake

    present = SEG_BANDS
    img = np.full((len(SEG_BANDS), 64, 64), 0.02, np.float32)
    img[SEG_BANDS.index("B03")] = 0.05  # NDWI > 0: open water everywhere
    inst = np.zeros((64, 64), np.int32)
    inst[30:34, 27:37] = 1  # a hull 10 px long along x, centred at (32, 32)
    img[:, 30:34, 27:37] = 0.2
    b02, b08, b11 = (SEG_BANDS.index(b) for b in ("B02", "B08", "B11"))
    for seed in range(10):
        out = img.copy()
        add_wake(out, inst, present, (32.0, 32.0), (0.0, 1.0), 5.0, 2.0, random.Random(seed))
        d = out[b02] - img[b02]
        assert (d[inst > 0] == 0).all(), "the hull itself is not repainted"
        left, right = d[:, :27].sum(), d[:, 37:].sum()
        assert (left > 0) != (right > 0), "a trail behind one end only"
        row = d[32, :27][::-1] if left > 0 else d[32, 37:]
        near, far = row[:3].mean(), row[8:12].mean()
        assert near > far >= 0, "brightest at the stern"
        grown = (d > 0).sum()
        assert (out[b08] - img[b08]).sum() < d.sum() and (out[b11] - img[b11]).sum() < 0.3 * d.sum()
        assert grown > 0


def test_hull_colour_changes_band_ratios_inside_the_hull_only():
    import random

    from detect.ships.segment_train import hull_colour

    pp = np.full((len(SEG_BANDS), 9, 9), 0.1, np.float32)
    mm = np.zeros((9, 9), bool)
    mm[3:6, 2:7] = True
    ratios = set()
    for seed in range(10):
        out = pp.copy()
        hull_colour(out, mm, random.Random(seed))
        assert (out[:, ~mm] == 0.1).all()
        b, r = out[SEG_BANDS.index("B02")][mm][0], out[SEG_BANDS.index("B04")][mm][0]
        assert 0.1 * 0.6 <= b <= 0.1 * 1.66
        ratios.add(round(float(r / b), 3))
    assert len(ratios) > 5


def _harbour(h: int = 160, w: int = 160) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic scene: open water (NDWI > 0) with land along the top rows; (img, inst, valid)."""
    img = np.zeros((len(SEG_BANDS), h, w), np.float32)
    img[SEG_BANDS.index("B02")] = 0.04
    img[SEG_BANDS.index("B03")] = 0.05
    img[SEG_BANDS.index("B04")] = 0.03
    img[SEG_BANDS.index("B08")] = 0.02
    img[:, :20, :] = 0.25  # land: bright in every band, NDWI ~ 0
    return img, np.zeros((h, w), np.int32), np.ones((h, w), bool)


def _put(img: np.ndarray, rows: slice, cols: slice, value: float = 0.2) -> None:
    for b in ("B02", "B03", "B04", "B08"):
        img[SEG_BANDS.index(b), rows, cols] = value


class _HullBank:
    """What ``paste_hulls`` reads from ``TrainingScenes``: one labelled hull, 12 x 3 px, long along x."""

    def __init__(self) -> None:
        patch = np.zeros((len(SEG_BANDS), 5, 14), np.float32)
        mask = np.zeros((5, 14), bool)
        mask[1:4, 1:13] = True
        patch[:, mask] = 0.3
        self.hulls = [(patch, mask, SEG_BANDS)]


def _pasted(inst: np.ndarray, before: int) -> list[np.ndarray]:
    return [np.argwhere(inst == k) for k in range(before + 1, int(inst.max()) + 1)]


def test_copy_paste_sets_real_hulls_on_open_water_with_new_instances():
    import random

    from detect.ships.segment_train import paste_hulls

    n_hulls = 0
    for seed in range(20):
        img, inst, _ = _harbour()
        out, inst = paste_hulls(img.copy(), inst, SEG_BANDS, _HullBank(), random.Random(seed))
        for px in _pasted(inst, 0):
            n_hulls += 1
            assert px[:, 0].min() >= 20, "never on the land"
            assert 24 <= len(px) <= 60, "the hull's 36 px, rescaled by at most 20 %"
            vals = out[SEG_BANDS.index("B08")][px[:, 0], px[:, 1]]
            assert 0.3 * 0.6 < np.median(vals) < 0.3 * 1.4, "the hull's own brightness, ±25 %"
    assert n_hulls >= 20


def test_quay_berths_are_water_beside_real_land_with_normals_pointing_out_to_sea():
    from detect.ships.segment_train import QUAY_MIN_LAND_PX, quay_berths, water_like

    img, _, _ = _harbour()
    _put(img, slice(100, 103), slice(100, 103))  # a 9 px buoy or speck of NDWI noise: no quay
    pts, normals = quay_berths(water_like(img, SEG_BANDS), img)
    assert QUAY_MIN_LAND_PX > 9
    assert len(pts) and set(pts[:, 0].astype(int)) <= {20}, "the water row beside the land"
    away = pts[:, 1] > 10
    assert (normals[away, 0] > 0.99).all(), "pointing away from the land (down the rows)"
    assert not quay_berths(water_like(img[:, 40:, :], SEG_BANDS), img[:, 40:, :])[0].size, "no land, no berth"


def test_quay_paste_berths_hulls_alongside_the_quay_and_rafts_rows_outwards():
    import itertools
    import random

    from detect.ships.segment_train import paste_hulls

    rows_seen = n_hulls = at_quay = 0
    for seed in range(30):
        img, inst, _ = _harbour()
        _, inst = paste_hulls(img.copy(), inst, SEG_BANDS, _HullBank(), random.Random(seed), p_quay=1.0)
        hulls = _pasted(inst, 0)
        for px in hulls:
            n_hulls += 1
            w, v = np.linalg.eigh(np.cov(px.T.astype(float)))
            long_axis = v[:, int(np.argmax(w))]  # (row, col)
            assert abs(long_axis[1]) > np.cos(np.radians(15)), "long side along the quay (the x axis)"
            assert px[:, 0].min() >= 19, "on the water side, at most a mixed pixel onto the quay"
        tops = sorted(int(px[:, 0].min()) for px in hulls)
        at_quay += bool(tops) and tops[0] <= 22  # the first hull lies at the quay (0-1 px of fender)
        rows_seen += sum(1 for a, b in itertools.pairwise(tops) if 2 <= b - a <= 6)
    assert n_hulls >= 30 and at_quay >= 25
    assert rows_seen >= 3, "some rows raft side by side outwards from the quay"


def test_unlabelled_objects_are_lone_bright_things_afloat_not_quays_breakwaters_or_labelled_hulls():
    from detect.ships.segment_train import unlabelled_objects

    img, inst, valid = _harbour()
    _put(img, slice(80, 83), slice(60, 68))  # an unlabelled boat at anchor, 8 x 3 px
    _put(img, slice(100, 103), slice(100, 110))  # a labelled ship
    inst[100:103, 100:110] = 1
    _put(img, slice(20, 26), slice(30, 40))  # a hull moored at the quay: joined to land
    _put(img, slice(130, 132), slice(10, 60))  # a detached breakwater, 500 m long
    _put(img, slice(50, 52), slice(120, 122))  # a faint patch, hardly brighter than the water
    img[:, 50:52, 120:122] = img[:, 60:61, 120:121] + 0.01
    img[SEG_BANDS.index("B03"), 50:52, 120:122] = 0.0  # ... but not water-like
    for r, c in ((40, 20), (40, 24), (44, 22)):  # glint: a cluster of specks
        _put(img, slice(r, r + 2), slice(c, c + 2))
    ign = unlabelled_objects(img, SEG_BANDS, inst, valid)
    assert ign[81, 64], "the boat is left out of the loss"
    assert ign[79:84, 59:69].all(), "grown by one pixel"
    assert not ign[95:108, 95:115].any(), "labelled hulls and their edge stay supervised"
    assert not ign[:28].any(), "things joined to land stay negatives"
    assert not ign[128:134].any(), "longer than any ship: a negative"
    assert not ign[48:54, 118:124].any(), "too faint"
    assert not ign[38:48, 18:28].any(), "clustered specks are glint"
    assert ign.sum() == 10 * 5
    assert not unlabelled_objects(img, ("B02", "B04"), inst, valid).any(), "no water estimate, no ignore"


def test_unlabelled_objects_cut_by_the_edge_in_a_pond_or_in_a_crowd_stay_negatives():
    from detect.ships.segment_train import unlabelled_objects

    img, inst, valid = _harbour()
    _put(img, slice(150, 160), slice(80, 83))  # cut by the scene's edge
    img[:, 4:16, 100:140] = img[:, 60:61, 60:61]  # a pond (480 px of water) inside the land ...
    _put(img, slice(9, 11), slice(115, 120))  # ... with a bright blob in it
    _put(img, slice(60, 62), slice(40, 43))  # two blobs 5 px apart: a crowd
    _put(img, slice(60, 62), slice(48, 51))
    _put(img, slice(100, 102), slice(40, 43))  # two blobs 8 px apart: each alone
    _put(img, slice(100, 102), slice(51, 54))
    ign = unlabelled_objects(img, SEG_BANDS, inst, valid)
    assert not ign[145:].any() and not ign[:20].any() and not ign[55:67].any()
    assert ign[100, 41] and ign[100, 52]
    lone, inst0, valid0 = _harbour()
    _put(lone, slice(150, 160), slice(80, 83))  # the scene's only blob, cut by the edge: nothing, no error
    assert not unlabelled_objects(lone, SEG_BANDS, inst0, valid0).any()
    # a blob a label touches is that ship, even where it reaches past the label (a wake)
    _put(img, slice(130, 132), slice(100, 120))
    inst[130:132, 100:108] = 1
    assert not unlabelled_objects(img, SEG_BANDS, inst, valid)[125:137, 95:125].any()


def test_ignored_pixels_carry_no_loss_and_full_weights_give_the_plain_loss():
    from detect.ships.segment_train import loss_fn

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 16, 16, generator=g)
    y = (torch.rand(2, 2, 16, 16, generator=g) > 0.8).float()
    ones = torch.ones(2, 1, 16, 16)
    # the loss before weights: BCE (positive weight 3) averaged over every pixel plus soft Dice per map
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, y, pos_weight=torch.tensor([3.0, 3.0]).view(1, 2, 1, 1)
    )
    p = torch.sigmoid(logits)
    dice = ((2 * (p * y).sum((0, 2, 3)) + 1) / ((p + y).sum((0, 2, 3)) + 1)).mean()
    assert torch.allclose(loss_fn(logits, y), bce + 1 - dice)
    assert torch.allclose(loss_fn(logits, torch.cat([y, ones], 1)), loss_fn(logits, y))
    w = ones.clone()
    w[:, :, :8] = 0
    other = logits.clone()
    other[:, :, :8] = 10.0  # anything at all where the weight is 0
    a = loss_fn(logits, torch.cat([y, w], 1))
    assert torch.allclose(a, loss_fn(other, torch.cat([y, w], 1)))
    assert not torch.allclose(a, loss_fn(other, y))


def test_loss_builds_its_constants_on_the_logits_device():
    # a GPU run failed here once: the positive weight was made on the CPU. The "meta" device has the same
    # same-device rule as CUDA and needs no GPU.
    from detect.ships.segment_train import loss_fn

    logits = torch.zeros(2, 2, 8, 8, device="meta")
    y = torch.zeros(2, 3, 8, 8, device="meta")
    assert loss_fn(logits, y).device.type == "meta"


def test_training_with_ignore_unlabelled_runs_and_marks_the_targets(tmp_path, monkeypatch):
    import random

    from detect.ships.segment_train import TrainingScenes, sample

    cache = tmp_path / "scenes"
    cities = prepare(FIXTURES / "ships_train", cache)
    scenes = TrainingScenes(cache, cities, ignore_unlabelled=True)
    d = scenes.s["algiers"]
    d["ignore"] = d["mask"] == 0  # pretend every unlabelled pixel were an object afloat
    scenes.has_ignore = True
    for seed in range(4):
        _, y = sample(scenes, random.Random(seed), 32, p_ship=1.0)
        assert y.shape == (3, 32, 32)
        assert np.array_equal(y[2], y[0]), "weight 1 on hulls, 0 on the ignored rest"
    plain = TrainingScenes(cache, cities)
    assert sample(plain, random.Random(0), 32)[1].shape == (2, 32, 32)
    cfg = SegTrainConfig(
        steps=2, batch=2, crop=32, base=4, depth=2, checkpoint_every=2, ignore_unlabelled=True
    )
    import detect.ships.segment_train as st

    seen = []
    real_loss = st.loss_fn
    monkeypatch.setattr(st, "unlabelled_objects", lambda img, present, inst, valid, water=None: inst == 0)
    monkeypatch.setattr(st, "loss_fn", lambda logits, y: seen.append(y.shape[1]) or real_loss(logits, y))
    train(cache, cities, tmp_path / "ign", cfg)
    assert (tmp_path / "ign" / "model.pt").is_file()
    assert seen == [3, 3], "the weighted loss ran"


# -- the shipped weights ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> SegShipDetector:
    from detect.detectors import get_detector

    return get_detector("ship", "seg")  # type: ignore[return-value]


def honolulu_truths() -> list:
    return load_coco_truth(CHIPS / "annotations.json", CHIPS)["honolulu_chip"]


def recall(dets, truths) -> float:
    return float((match_scene(dets, truths).match >= 0).sum()) / len(truths)


@needs_weights
def test_shipped_seg_model_finds_ships_moored_side_by_side(shipped: SegShipDetector) -> None:
    # A floor on a real chip of 12 vessels moored side by side at Honolulu (a training city of the
    # shipped model, so this pins the inference path, not accuracy: see weights/ships-s2-seg.md). Scored
    # at 0.5, below the spec's threshold (0.95, chosen inside each CV fold), where model 45edcc27… (v7) finds
    # 8 of 12 (4 at its threshold; v6 4b61fe9d… 3 and 1; v5 5662fe7f… 4 and 2; v4 b1badf61… 4 and 2;
    # v3 7269d0b9… and v2 3cf418bb… 4 and 1; v1 2e85ea02… 5 and 3, though it scored lower in CV); a broken
    # path (bands, scaling, instance split) finds none.
    dets = shipped.detect(open_raster(CHIPS / "honolulu_chip.tif"), conf=0.5)
    assert recall(dets, honolulu_truths()) >= SEG_RECALL_FLOOR
    assert all(d.properties["length_source"] == "pixels" for d in dets)
    assert all(d.detector.startswith("seg:ships-s2-seg[") for d in dets)


@needs_weights
@pytest.mark.parametrize("bands", [("B08",), ("B04", "B03", "B02"), ("B02", "B08")])
def test_shipped_seg_model_runs_on_partial_band_sets(shipped: SegShipDetector, bands) -> None:
    window = open_raster(CHIPS / "honolulu_chip.tif", list(bands))
    dets = shipped.detect(window, conf=0.5)  # v7 45edcc27… finds 8, 7, 7 of 12 at 0.5 (v6: 4, 5, 5; v5: 3,
    # 5, 3; v4: 4, 6, 3); a broken band path finds none
    assert dets and recall(dets, honolulu_truths()) >= 0.25
    assert dets[0].detector == f"seg:ships-s2-seg[{'+'.join(b for b in SEG_BANDS if b in bands)}]"


@needs_weights
def test_a_scene_with_only_b02_b08_b11_works(shipped: SegShipDetector) -> None:
    window = open_raster(CHIPS / "honolulu_b02_b08_b11.tif")
    assert shipped.detect(window)  # detections at the model's threshold, not an error
    dets = shipped.detect(window, conf=0.5)  # v7 45edcc27… finds 7 of 12 at 0.5 (v6 5, v5 and v4 3, v3 4)
    assert recall(dets, honolulu_truths()) >= 0.25
    assert dets[0].properties["model_bands"] == "B02+B08+B11"


@needs_weights
def test_shipped_seg_model_stays_quiet_on_open_sea(shipped: SegShipDetector) -> None:
    assert len(shipped.detect(open_raster(CHIPS / "marseille_water.tif"))) <= 1


TC_SHIPPED = resolve_weights("ships-s2-seg-b4")[0].is_file()
needs_tc_weights = pytest.mark.skipif(not TC_SHIPPED, reason="weights/ships-s2-seg-b4.pt not present")
SEG_RECALL_FLOOR = 0.25  # the shipped model (v7) finds 8 of 12 at 0.5 (v6: 3); 2 or fewer fails

#: Rayleigh path reflectance of a sun 25° from zenith (benchmarks/seg_toa.py, aerosol-free).
RAYLEIGH = {"B02": 0.058, "B03": 0.034, "B04": 0.017, "B08": 0.007, "B11": 0.0}


def _as_l1c(window: RasterWindow, path: dict[str, float]) -> RasterWindow:
    """``window`` marked Level-1C, with ``path`` reflectance added to each band (a top-of-atmosphere look)."""
    from dataclasses import replace

    arr = np.array(window.data)
    for i, b in enumerate(window.band_names):
        arr[i] += path.get(b, 0.0)
    return replace(window, data=arr, processing_level="L1C")


@needs_weights
def test_an_l1c_window_has_its_path_light_taken_off_before_the_network(shipped: SegShipDetector) -> None:
    from detect.core.haze import dark_levels

    window = open_raster(CHIPS / "honolulu_chip.tif")
    ref = shipped.spec.dark_reference
    assert set(ref) == set(SEG_BANDS)  # the shipped spec carries its training scenes' dark levels
    l1c = _as_l1c(window, RAYLEIGH)
    run = shipped.run(l1c, conf=0.5)
    # the chip's own (L2A) dark level plus the path light added, less the reference
    own = dark_levels(window.data, window.band_names, window.valid_mask)
    want = {b: own[b] + RAYLEIGH[b] - ref[b] for b in window.band_names if own[b] + RAYLEIGH[b] > ref[b]}
    assert set(want) == {"B02", "B03", "B04", "B08"}
    assert run.haze_offsets == pytest.approx(want, abs=2e-4)
    valid = l1c.valid_mask
    for b in want:  # each band lowered by its own offset, once: back to the L2A pixels plus a constant
        got = run.reflectance[SEG_BANDS.index(b)][valid]
        assert np.allclose(got, window.band(b)[valid] + RAYLEIGH[b] - want[b], atol=3e-4)
    dets = shipped.detections(l1c, run)
    assert recall(dets, honolulu_truths()) >= SEG_RECALL_FLOOR
    assert all(d.properties["haze_offsets"] == run.haze_offsets for d in dets)
    # an L2A window is read as it is (auto), unless asked; "off" never subtracts
    assert shipped.run(window, conf=0.5).haze_offsets is None
    assert SegShipDetector(shipped.model, haze="on").run(window).haze_offsets is not None
    assert SegShipDetector(shipped.model, haze="off").run(l1c).haze_offsets is None


@needs_tc_weights
def test_an_l1c_geotiff_is_known_by_its_tag_and_detect_takes_its_path_light_off(tmp_path, capsys) -> None:
    import rasterio

    from detect.cli import main

    # the real Honolulu chip given a Rayleigh path reflectance, written as ``harborwatch fetch`` tags an L1C
    with rasterio.open(CHIPS / "honolulu_chip.tif") as src:
        dn, profile, names = src.read(), src.profile, src.descriptions
    for i, b in enumerate(names):
        dn[i] = np.where(dn[i] > 0, dn[i] + round(RAYLEIGH[b] / 1e-4), 0)
    outs = {}
    for level in ("L1C", "L2A"):
        path = tmp_path / f"chip_{level}.tif"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(dn)
            dst.descriptions = names
            dst.update_tags(REFLECTANCE_SCALE="0.0001", PROCESSING_LEVEL=level)
        outs[level] = tmp_path / f"{level}.geojson"
        with pytest.raises(SystemExit) as e:
            main(["detect", str(path), "--conf", "0.5", "--out", str(outs[level]), "--json"])
        assert e.value.code == 0, capsys.readouterr().err
    l1c = [f["properties"] for f in json.loads(outs["L1C"].read_text())["features"]]
    l2a = [f["properties"] for f in json.loads(outs["L2A"].read_text())["features"]]
    assert l1c and all(p["haze_offsets"]["B02"] > 0.04 for p in l1c)  # most of B02's 0.058 taken off
    assert {p["detector"] for p in l1c} == {"seg:ships-s2-seg-ens[B02+B03+B04+B08;haze-corrected]"}
    assert l2a and all(p["haze_offsets"] is None for p in l2a)  # the same pixels called L2A: read as they are


def test_dark_subtraction_needs_a_reference_and_a_known_mode() -> None:
    from dataclasses import replace

    from affine import Affine

    from imagery.types import Grid

    bare = SegModel(UNet(base=4).eval(), SegSpec(name="bare", base=4))  # no dark_reference
    grid = Grid("EPSG:32631", Affine(10, 0, 500000, 0, -10, 4000000), 32, 32)
    data = np.full((2, 32, 32), 0.1, np.float32)
    l1c = RasterWindow(data=data, band_names=("B03", "B08"), grid=grid, processing_level="L1C")
    assert SegShipDetector(bare, water_mask=False, haze="on").run(l1c).haze_offsets is None
    spec = replace(bare.spec, dark_reference={"B08": 0.01})
    det = SegShipDetector(SegModel(bare.net, spec), water_mask=False, conf=0.0)  # auto: runs on L1C
    ran = det.run(l1c)
    assert ran.haze_offsets == pytest.approx({"B08": 0.09})  # B03 has no reference: left alone
    clear = RasterWindow(data=data * 0.05, band_names=("B03", "B08"), grid=grid, processing_level="L1C")
    assert det.run(clear).haze_offsets == {}  # ran, took nothing off (0.005 is under the reference)
    assert all("haze-corrected" not in d.detector for d in det.detect(clear))
    with pytest.raises(ValueError, match="auto, on, off"):
        SegShipDetector(bare, haze="yes")


def test_spec_round_trips_and_refuses_other_band_orders(tmp_path):
    spec = SegSpec(
        name="x", threshold=0.7, dark_reference={"B08": 0.005}, metrics={"cv": {"pooled": {"f1": 0.5}}}
    )
    spec.write(tmp_path / "x.json")
    assert SegSpec.read(tmp_path / "x.json") == spec
    assert SegSpec.read(tmp_path / "x.json").dark_reference == {"B08": 0.005}
    d = json.loads((tmp_path / "x.json").read_text())
    d["bands"] = ["B04", "B03", "B02", "B08", "B11"]
    (tmp_path / "y.json").write_text(json.dumps(d))
    from imagery.errors import ModelError

    with pytest.raises(ModelError, match="bands"):
        SegSpec.read(tmp_path / "y.json")


@needs_weights
@pytest.mark.skipif(not resolve_weights("ships-s2-seg-b4")[0].is_file(), reason="no ships-s2-seg-b4 weights")
def test_an_8bit_true_colour_file_like_esa_tci_is_read_by_the_default_model(tmp_path, capsys) -> None:
    import rasterio

    from detect.cli import main

    chip = open_raster(CHIPS / "honolulu_chip.tif", ["B04", "B03", "B02"])
    # ESA's TCI "visual" COG: 8-bit R, G, B with no band descriptions, reflectance 0-0.2 stretched to 1-255
    tci = np.clip(np.nan_to_num(chip.data) / 0.2 * 255, 1, 255).astype(np.uint8)
    path = tmp_path / "TCI.tif"
    profile = {
        "driver": "GTiff",
        "width": chip.grid.width,
        "height": chip.grid.height,
        "count": 3,
        "dtype": "uint8",
        "crs": chip.grid.crs,
        "transform": chip.grid.transform,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(tci)
    out = tmp_path / "tci.geojson"
    with pytest.raises(SystemExit) as e:
        main(["detect", str(path), "--bands", "B04,B03,B02", "--out", str(out), "--json"])
    assert e.value.code == 0, capsys.readouterr().err
    features = json.loads(out.read_text())["features"]
    # true colour alone: auto runs the ensemble on it too (weights/ships-s2-seg-ens.md)
    labels = {f["properties"]["detector"] for f in features}
    assert features and labels == {"seg:ships-s2-seg-ens[B02+B03+B04]"}


def test_onnxruntime_runs_the_shipped_model_with_the_same_detections_as_torch(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the export goes to a fresh cache
    window = open_raster(CHIPS / "honolulu_chip.tif")
    ort_model = SegModel.load(runtime="auto")
    assert ort_model.runtime == "onnxruntime" and list(tmp_path.rglob("*-seg-*.onnx"))
    by_torch = SegShipDetector(SegModel.load(runtime="torch")).detect(window, conf=0.5)
    by_ort = SegShipDetector(ort_model).detect(window, conf=0.5)
    assert len(by_ort) == len(by_torch) >= 5
    for a, b in zip(by_torch, by_ort, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert a.length_m == pytest.approx(b.length_m)


def test_asking_for_onnx_without_onnxruntime_is_a_clear_error(hide_module):
    hide_module("onnxruntime")
    with pytest.raises(ModelError, match="onnxruntime is not installed"):
        SegModel.load(runtime="onnx")
    assert SegModel.load(runtime="auto").runtime == "torch"  # the default falls back quietly


def test_a_5m_model_sees_a_10m_scene_upsampled_and_reports_ships_in_metres(monkeypatch):
    """Lever "finer grid": a spec with gsd_m 5 runs on the scene upsampled ×2; boxes come back on the
    ground where the hull is, with its length in metres (not in model pixels)."""
    from affine import Affine

    from imagery.types import Grid

    seen = {}

    def fake_probabilities(x, keep=None, **kw):
        seen["shape"] = x.shape
        prob = np.zeros((2, *x.shape[1:]), np.float32)
        prob[0, 40:44, 20:40] = 0.95  # a 20 × 4 model-pixel hull = 100 m × 20 m at 5 m
        prob[1, 41:43, 24:36] = 0.95
        return prob

    model = SegModel(UNet(base=4, depth=2), SegSpec(name="fine", base=4, depth=2, gsd_m=5.0))
    monkeypatch.setattr(model, "probabilities", fake_probabilities)
    grid = Grid("EPSG:32631", Affine(10, 0, 500000, 0, -10, 4800000), 64, 64)
    window = RasterWindow(np.full((1, 64, 64), 0.02, np.float32), ("B08",), grid, scene_id="x")
    (det,) = SegShipDetector(model, conf=0.5, water_mask=False).detect(window)
    assert seen["shape"][1:] == (128, 128)
    assert det.length_m == pytest.approx(100, abs=10)
    cx, cy = grid.transform @ (15, 21)  # the hull's centre in 10 m scene pixels
    from pyproj import Transformer

    lon, lat = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform(cx, cy)
    assert det.lon == pytest.approx(lon, abs=2e-5) and det.lat == pytest.approx(lat, abs=2e-5)


def test_upsampling_keeps_labels_exact_and_the_ground_footprint():
    from affine import Affine

    from detect.ships.segment import upsample, upsampled_grid
    from imagery.types import Grid

    inst = np.array([[0, 7], [300, 0]], np.int32)
    up = upsample(inst, 2)
    assert up.dtype == np.int32 and set(np.unique(up)) == {0, 7, 300} and up.shape == (4, 4)
    mask = upsample(np.array([[True, False]]), 2)
    assert mask.dtype == bool and mask.sum() == 4
    g = Grid("EPSG:32631", Affine(10, 0, 500000, 0, -10, 4800000), 30, 20)
    assert upsampled_grid(g, 2).bounds == g.bounds and upsampled_grid(g, 2).res_m == 5


def test_saved_weights_are_the_same_bytes_for_the_same_tensors(tmp_path):
    # a model card's sha256 can be checked by training again: the archive torch writes is not named after
    # the random temporary file the save goes through
    import detect.ships.segment_train as st

    sd = UNet(base=4, depth=2).state_dict()
    st._save(sd, tmp_path / "a" / "w.pt")
    st._save(sd, tmp_path / "b" / "w.pt")
    assert (tmp_path / "a" / "w.pt").read_bytes() == (tmp_path / "b" / "w.pt").read_bytes()


@needs_tc_weights
@pytest.mark.parametrize(
    "bands", [("B02", "B03", "B04", "B08"), ("B08",), ("B02", "B08", "B11"), ("B04", "B03", "B02")]
)
def test_auto_runs_the_ensemble_on_every_band_set(bands) -> None:
    # since session 25 auto's PREFERENCE has one entry, the ensemble (weights/ships-s2-seg-ens.md)
    from detect.detectors import get_detector

    path = CHIPS / ("honolulu_b02_b08_b11.tif" if bands == ("B02", "B08", "B11") else "honolulu_chip.tif")
    window = open_raster(path, None if bands == ("B02", "B08", "B11") else list(bands))
    auto = get_detector("ship", "auto")
    assert auto.choose(window) == "seg-ens"
    dets = auto.detect(window, conf=0.5)
    want = "+".join(b for b in SEG_BANDS if b in bands)
    assert dets and all(d.detector == f"seg:ships-s2-seg-ens[{want}]" for d in dets)


@needs_tc_weights
def test_the_true_colour_model_finds_ships_moored_side_by_side_from_true_colour_alone() -> None:
    # A floor on the committed Honolulu chip (a training city: pins the path, not accuracy). At 0.5 the
    # shipped ships-s2-seg-b4 (v2, 6ee43973…) finds 8 of the 12 vessels from B02 B03 B04 alone (v1 3019ccd8…:
    # 5; card); a broken path none.
    from detect.detectors import get_detector

    det = get_detector("ship", "seg-b4")
    assert det.spec.encoder == "efficientnet-b4"
    dets = det.detect(open_raster(CHIPS / "honolulu_chip.tif", ["B04", "B03", "B02"]), conf=0.5)
    assert recall(dets, honolulu_truths()) >= SEG_RECALL_FLOOR
    assert len(det.detect(open_raster(CHIPS / "marseille_water.tif", ["B04", "B03", "B02"]))) <= 1


def test_autos_weights_entry_names_every_model_its_preference_may_run() -> None:
    # the fingerprint of auto's runs and the model its reports name come from DEFAULT_WEIGHTS: reverting
    # PREFERENCE alone would leave them naming the wrong weights
    from detect.core.registry import DEFAULT_WEIGHTS
    from detect.ships.auto import PREFERENCE

    entry = DEFAULT_WEIGHTS[("ship", "auto")]
    assert isinstance(entry, tuple)
    assert set(entry) == {DEFAULT_WEIGHTS[("ship", method)] for method, _ in PREFERENCE}


@needs_tc_weights
def test_auto_reads_an_all_nodata_b08_as_no_b08_and_reports_the_model_it_runs(tmp_path, capsys) -> None:
    import rasterio

    from detect.cli import main
    from detect.report.blocks import _model_text
    from detect.report.provenance import model_info

    # B08 listed but empty (an empty asset, a masked band), as a reader gives it: its "every band has data"
    # mask would blank every pixel; the file is read as true colour
    with rasterio.open(CHIPS / "honolulu_chip.tif") as src:
        dn, profile, names = src.read(), src.profile, src.descriptions
    dn[names.index("B08")] = 0
    path = tmp_path / "no_nir.tif"
    with rasterio.open(path, "w", **{**profile, "nodata": 0}) as dst:
        dst.write(dn)
        dst.descriptions = names
    out = tmp_path / "no_nir.geojson"
    with pytest.raises(SystemExit) as e:
        main(["detect", str(path), "--conf", "0.5", "--out", str(out), "--json"])
    assert e.value.code == 0, capsys.readouterr().err
    features = json.loads(out.read_text())["features"]
    assert len(features) >= 5 and {f["properties"]["detector"] for f in features} == {
        "seg:ships-s2-seg-ens[B02+B03+B04]"
    }
    # the truck model needs B08: one line that says the band is empty, exit 2 (before: 0 trucks, silently)
    with pytest.raises(SystemExit) as e:
        main(["detect", str(path), "--classes", "ship,truck", "--out", str(tmp_path / "t.geojson")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "B08" in err and "listed, but all nodata" in err and "Traceback" not in err
    auto = model_info("auto")
    assert auto.name == "ships-s2-seg-ens" and Path(auto.card).name == "ships-s2-seg-ens.md"
    assert "ships-s2-seg-ens" in _model_text(auto) and "every band set" in _model_text(auto)
    assert [Path(w).name for w in auto.weights.split(", ")] == ["ships-s2-seg-b4.pt", "ships-s2-seg.pt"]
    ens = _model_text(model_info("seg-ens"))
    assert ens.startswith(
        "Hull-segmentation (U-Net) ensemble `ships-s2-seg-ens` of `ships-s2-seg-b4` and `ships-s2-seg`"
    )
    assert _model_text(model_info("seg-b4")).startswith("Hull-segmentation (U-Net) weights `ships-s2-seg-b4`")
