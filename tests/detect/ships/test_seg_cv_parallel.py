"""benchmarks/seg_cv_parallel.py: folds of several CV arms trained side by side, one process each, in v6's
three stages, packed for scoring elsewhere."""

from __future__ import annotations

import importlib.util
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch

from detect.ships.segment import UNet
from detect.ships.segment_train import fold_plan, prepare

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"


def _module():
    path = ROOT / "benchmarks" / "seg_cv_parallel.py"
    spec = importlib.util.spec_from_file_location("seg_cv_parallel", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_arms_and_stages_follow_the_gpu_script():
    m = _module()
    assert m.parse_arm("e1:seed=1:eotdl") == {"name": "e1", "seed": 1, "eotdl": True}
    assert m.parse_arm("ctl") == {"name": "ctl", "seed": 0, "eotdl": False}
    with pytest.raises(SystemExit):
        m.parse_arm("x:seeds=2")
    assert m.stages(7200, 1200) == [2400, 6000, 7200]  # as benchmarks/seg_cv_gpu.sh
    assert m.stages(2400, 1200) == [2400]
    with pytest.raises(SystemExit):
        m.stages(1000, 300)


def test_stage_configs_add_repaint_wakes_then_hard_negatives():
    m = _module()
    a = m.argparse.Namespace(
        cycle=2, paste=0.5, hull_colour=0.5, wakes=0.5, hard_negatives=0.2, precision="fp32"
    )
    arm = {"name": "e", "seed": 3, "eotdl": True}
    cfgs = [m.stage_config(a, arm, i, [4, 6, 8]) for i in range(3)]
    assert [c.steps for c in cfgs] == [4, 6, 8]
    assert [(c.p_colour, c.p_wake, c.p_hard) for c in cfgs] == [(0, 0, 0), (0.5, 0.5, 0), (0.5, 0.5, 0.2)]
    assert all(c.p_paste == 0.5 and c.seed == 3 and c.eotdl and c.cycle == 2 for c in cfgs)


def test_a_small_run_trains_every_job_and_packs_its_last_weights(tmp_path):
    # six "cities": the fixture's Algiers window under six names (3 folds, 2 inner cities each)
    cache = tmp_path / "scenes"
    prepare(FIXTURES / "ships_train", cache)
    names = ["a1", "a2", "a3", "a4", "a5", "a6"]
    for n in names:
        shutil.copy(cache / "algiers.npz", cache / f"{n}.npz")
    (cache / "algiers.npz").unlink()
    m = _module()
    out, packed = tmp_path / "run", tmp_path / "packed"
    rc = m.main(
        ["--cache", str(cache), "--out", str(out), "--arm", "c:seed=1", "--final", "c", "--folds", "0",
         "--k", "3", "--steps", "4", "--cycle", "1", "--pack", str(packed)]
    )  # fmt: skip
    assert rc == 0
    assert set(json.loads((packed / "status.json").read_text())) == {"c/0", "c/final"}
    with tarfile.open(packed / "c.tar") as tar:
        got = set(tar.getnames())
        assert {"fold0/cycle-000004.pt", "final/cycle-000004.pt", "fold0/train.log"} <= got
        assert not any("cycle-000003" in n for n in got)  # only the latest cycle end travels
        tar.extractall(tmp_path / "unpacked", filter="data")
    net = UNet()
    net.load_state_dict(torch.load(tmp_path / "unpacked/fold0/cycle-000004.pt", weights_only=True))
    log = (out / "c" / "fold0" / "train.log").read_text()
    assert [f"stage to step {s}" in log for s in (2, 3, 4)] == [True] * 3
    # fold 0 trained on its own fit cities only: its hard negatives were mined there
    fit = fold_plan(names, 3)[0]["fit"]
    mined = json.loads((out / "c" / "fold0" / "hard_negatives.json").read_text())
    assert sorted(mined["cities"]) == sorted(fit)
    # a rerun finds every job finished and trains nothing more
    assert m.main(["--cache", str(cache), "--out", str(out), "--arm", "c:seed=1", "--folds", "0", "--k", "3",
                   "--steps", "4", "--cycle", "1"]) == 0  # fmt: skip
    assert (out / "c" / "fold0" / "train.log").read_text().count("stage to step 4") == 2


def test_refuses_an_eotdl_arm_without_the_mosaic(tmp_path):
    cache = tmp_path / "scenes"
    prepare(FIXTURES / "ships_train", cache)
    with pytest.raises(SystemExit):
        _module().main(["--cache", str(cache), "--out", str(tmp_path / "r"), "--arm", "e:eotdl", "--k", "1"])
