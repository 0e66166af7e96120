"""benchmarks/seg_cv_parallel.py: folds of several CV arms trained side by side, one process each, in v6's
three stages, packed for scoring elsewhere."""

from __future__ import annotations

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


def test_arms_and_stages_follow_the_gpu_script(load_script):
    m = load_script("benchmarks/seg_cv_parallel.py")
    plain = {"eotdl": False, "quay": 0.0, "haze": 0.0, "hard": None, "base": 16, "depth": 4, "from": None}
    assert m.parse_arm("e1:seed=1:eotdl") == {**plain, "name": "e1", "seed": 1, "eotdl": True}
    assert m.parse_arm("ctl") == {**plain, "name": "ctl", "seed": 0}
    assert m.parse_arm("q2:seed=2:quay=0.5")["quay"] == 0.5
    assert m.parse_arm("h1:haze=0.3:seed=1") == {**plain, "name": "h1", "seed": 1, "haze": 0.3}
    assert m.parse_arm("w:base=24:seed=1") == {**plain, "name": "w", "seed": 1, "base": 24}
    assert m.parse_arm("h:from=s0:haze=0.3") == {**plain, "name": "h", "seed": 0, "haze": 0.3, "from": "s0"}
    assert m.parse_arm("d:depth=5") == {**plain, "name": "d", "seed": 0, "depth": 5}
    for bad in ("base=2", "base=w", "base=99", "depth=1", "depth=7", "depth=five"):
        with pytest.raises(SystemExit, match="unknown arm option"):
            m.parse_arm(f"x:{bad}")
    with pytest.raises(SystemExit):
        m.parse_arm("x:seeds=2")
    with pytest.raises(SystemExit, match="unknown arm option"):
        m.parse_arm("x:seed=two")
    for bad in ("1.5", "half", "-0.1"):
        for key in ("quay", "haze", "hard"):
            with pytest.raises(SystemExit, match="share from 0 to 1"):
                m.parse_arm(f"x:{key}={bad}")
    with pytest.raises(SystemExit, match="unknown arm option"):
        m.parse_arm("x:haze")
    assert m.stages(7200, 1200) == [2400, 6000, 7200]  # as benchmarks/seg_cv_gpu.sh
    assert m.stages(2400, 1200) == [2400]
    with pytest.raises(SystemExit):
        m.stages(1000, 300)
    with pytest.raises(SystemExit, match="at least 1"):
        m.stages(7200, 0)
    assert m.stop_at([2400, 6000, 7200], 6000) == [2400, 6000]
    assert m.stop_at([2400, 6000, 7200], None) == [2400, 6000, 7200]
    with pytest.raises(SystemExit, match="not a stage end"):
        m.stop_at([2400, 6000, 7200], 5000)


def test_stage_configs_add_repaint_wakes_then_hard_negatives(load_script):
    m = load_script("benchmarks/seg_cv_parallel.py")
    a = m.argparse.Namespace(
        cycle=2, paste=0.5, hull_colour=0.5, wakes=0.5, hard_negatives=0.2, precision="fp32", encoder="",
        encoder_lr=0.1,
    )  # fmt: skip
    arm = {"name": "e", "seed": 3, "eotdl": True}
    cfgs = [m.stage_config(a, arm, i, [4, 6, 8]) for i in range(3)]
    assert [c.steps for c in cfgs] == [4, 6, 8]
    assert [(c.p_colour, c.p_wake, c.p_hard) for c in cfgs] == [(0, 0, 0), (0.5, 0.5, 0), (0.5, 0.5, 0.2)]
    assert all(c.p_paste == 0.5 and c.seed == 3 and c.eotdl and c.cycle == 2 for c in cfgs)
    assert all(c.p_quay == 0 and c.p_haze == 0 for c in cfgs)
    assert [m.stage_config(a, m.parse_arm("h:haze=0.3"), i, [4, 6, 8]).p_haze for i in range(3)] == [0.3] * 3
    more = m.parse_arm("n:hard=0.4")  # the hard-negative share of the last stage, instead of --hard-negatives
    assert [m.stage_config(a, more, i, [4, 6, 8]).p_hard for i in range(3)] == [0, 0, 0.4]
    assert m.stage_config(a, m.parse_arm("n:hard=0"), 2, [4, 6, 8]).p_hard == 0
    quay = m.parse_arm("q:quay=0.5")
    assert [m.stage_config(a, quay, i, [4, 6, 8]).p_quay for i in range(3)] == [0.5, 0.5, 0.5]
    assert all(c.base == 16 for c in cfgs)
    assert m.stage_config(a, m.parse_arm("w:base=24"), 0, [4, 6, 8]).base == 24


NAMES = ["a1", "a2", "a3", "a4", "a5", "a6"]


def _six_cities(tmp_path: Path) -> Path:
    """Six "cities": the fixture's Algiers window under six names (3 folds, 2 inner cities each)."""
    cache = tmp_path / "scenes"
    prepare(FIXTURES / "ships_train", cache)
    for n in NAMES:
        shutil.copy(cache / "algiers.npz", cache / f"{n}.npz")
    (cache / "algiers.npz").unlink()
    return cache


def test_a_small_run_trains_every_job_and_packs_its_last_weights(tmp_path, load_script):
    cache = _six_cities(tmp_path)
    m = load_script("benchmarks/seg_cv_parallel.py")
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
    fit = fold_plan(NAMES, 3)[0]["fit"]
    mined = json.loads((out / "c" / "fold0" / "hard_negatives.json").read_text())
    assert sorted(mined["cities"]) == sorted(fit)
    # a rerun finds every job finished and trains nothing more
    assert m.main(["--cache", str(cache), "--out", str(out), "--arm", "c:seed=1", "--folds", "0", "--k", "3",
                   "--steps", "4", "--cycle", "1"]) == 0  # fmt: skip
    log = (out / "c" / "fold0" / "train.log").read_text()
    assert log.count("fold0: step 4/4 loss") == 1 and log.count("c 0: done") == 2


def test_refuses_an_eotdl_arm_without_the_mosaic_and_folds_beyond_k(tmp_path, load_script, capsys):
    cache = _six_cities(tmp_path)
    m = load_script("benchmarks/seg_cv_parallel.py")
    with pytest.raises(SystemExit):
        m.main(
            [
                "--cache",
                str(cache),
                "--out",
                str(tmp_path / "r"),
                "--arm",
                "e:eotdl",
                "--k",
                "3",
                "--folds",
                "0",
            ]
        )
    assert "eotdl.npz is not there" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        m.main(["--cache", str(cache), "--out", str(tmp_path / "r"), "--arm", "c", "--k", "3"])  # folds 0-4
    assert "fold numbers are 0 to 2" in capsys.readouterr().err


def test_a_deadline_stops_the_workers_and_still_packs(tmp_path, load_script):
    cache = _six_cities(tmp_path)
    m = load_script("benchmarks/seg_cv_parallel.py")
    packed = tmp_path / "packed"
    args = ["--cache", str(cache), "--out", str(tmp_path / "run"), "--arm", "c", "--folds", "0", "--k", "3"]
    rc = m.main([*args, "--steps", "4000", "--cycle", "1000", "--deadline", "1", "--pack", str(packed)])
    assert rc == 1
    assert json.loads((packed / "status.json").read_text())["c/0"]["rc"] == "stopped"
    assert (packed / "c.tar").is_file()


def test_the_pretrained_encoder_network_trains_every_arm_and_packs_in_half_precision(
    tmp_path, load_script, capsys
):
    m = load_script("benchmarks/seg_cv_parallel.py")
    a = m.argparse.Namespace(
        cycle=2, paste=0.5, hull_colour=0.5, wakes=0.5, hard_negatives=0.2, precision="bf16",
        encoder="efficientnet-b4", encoder_lr=0.2,
    )  # fmt: skip
    cfg = m.stage_config(a, m.parse_arm("b:seed=1"), 1, [4, 6, 8])
    assert (cfg.encoder, cfg.encoder_lr, cfg.seed, cfg.p_colour) == ("efficientnet-b4", 0.2, 1, 0.5)
    cache = _six_cities(tmp_path)
    with pytest.raises(SystemExit):  # the encoder network has its own shape: no base=
        m.main(["--cache", str(cache), "--out", str(tmp_path / "r"), "--arm", "w:base=24", "--k", "3",
                "--folds", "0", "--steps", "4", "--cycle", "1", "--encoder", "efficientnet-b4"])  # fmt: skip
    assert "has its own shape" in capsys.readouterr().err
    assert not (tmp_path / "r" / "w").exists()  # refused before any job started
    # --pack-half: the latest cycle end in float16 under its own name; a float32 network loads it
    net = UNet()
    job = tmp_path / "run" / "h" / "fold0"
    job.mkdir(parents=True)
    torch.save(net.state_dict(), job / "cycle-000004.pt")
    into = tmp_path / "packed"
    m.pack(m.argparse.Namespace(out=tmp_path / "run", pack_half=True), [m.parse_arm("h")], into)
    with tarfile.open(into / "h.tar") as tar:
        assert tar.getnames() == ["fold0/cycle-000004.pt"]
        tar.extractall(tmp_path / "unpacked", filter="data")
    half = torch.load(tmp_path / "unpacked/fold0/cycle-000004.pt", weights_only=True)
    conv = next(k for k, v in half.items() if v.ndim == 4)
    assert half[conv].dtype == torch.float16
    back = UNet()
    back.load_state_dict(half)
    for k, v in net.state_dict().items():
        got = back.state_dict()[k]
        assert got.dtype == v.dtype
        assert torch.allclose(got.float(), v.float(), rtol=1e-3, atol=1e-4)
    small = (tmp_path / "unpacked/fold0/cycle-000004.pt").stat().st_size
    assert small < 0.6 * (job / "cycle-000004.pt").stat().st_size


def test_packing_splits_an_arm_whose_tar_would_pass_the_limit(tmp_path, load_script):
    m = load_script("benchmarks/seg_cv_parallel.py")
    out = tmp_path / "run"
    for job, size in (("fold0", 3000), ("fold1", 3000), ("fold2", 3000), ("final", 500)):
        d = out / "w" / job
        d.mkdir(parents=True)
        (d / "cycle-000004.pt").write_bytes(b"x" * size)
        (d / "cycle-000002.pt").write_bytes(b"old")  # not the latest: stays behind
        (d / "train.log").write_text("log")
    into = tmp_path / "packed"
    into.mkdir()
    (into / "w.3.tar").write_bytes(b"stale")  # an earlier, larger split is cleared
    a = m.argparse.Namespace(out=out)
    m.pack(a, [m.parse_arm("w")], into, max_bytes=11000)
    tars = sorted(p.name for p in into.glob("*.tar"))
    assert tars == ["w.1.tar", "w.tar"]
    names = []
    for t in tars:
        with tarfile.open(into / t) as tar:
            names.append(sorted(tar.getnames()))

    # counted with 1 KiB per file for its header: final and fold0 (the sorted job folders) fit the first
    # tar, fold1 would take it past 11,000 bytes
    def files(*jobs: str) -> list[str]:
        return [f"{j}/{f}" for j in jobs for f in ("cycle-000004.pt", "train.log")]

    assert names[1] == files("final", "fold0")
    assert names[0] == files("fold1", "fold2")


def test_paired_arms_start_from_the_stem_and_train_only_what_is_left(tmp_path, load_script, capsys):
    cache = _six_cities(tmp_path)
    m = load_script("benchmarks/seg_cv_parallel.py")
    out = tmp_path / "run"
    common = [
        "--cache",
        str(cache),
        "--out",
        str(out),
        "--folds",
        "0",
        "--k",
        "3",
        "--steps",
        "4",
        "--cycle",
        "1",
    ]
    with pytest.raises(SystemExit):  # a branch needs its stem first
        m.main([*common, "--arm", "c:from=s"])
    assert "names no earlier arm" in capsys.readouterr().err
    assert m.main([*common, "--arm", "s", "--stop-at", "3"]) == 0  # stages end at 2, 3, 4: stop after 3
    stem = out / "s" / "fold0"
    assert torch.load(stem / "checkpoint.pt", weights_only=False)["step"] == 3
    assert not (stem / "cycle-000004.pt").exists() and not (stem / "hard_negatives.json").exists()
    arms = ["c:from=s", "d:from=s", "e:seed=1:from=s", "h:haze=0.5:from=s"]
    assert m.main([*common, *(x for arm in arms for x in ("--arm", arm))]) == 0
    mined = json.loads((stem / "hard_negatives.json").read_text())  # mined once, into the stem's folder
    assert mined["step"] == 3
    weights = {}
    for arm in ("c", "d", "e", "h"):
        d = out / arm / "fold0"
        for kept in ("cycle-000002.pt", "cycle-000003.pt"):  # the stem's, copied as they were
            assert (d / kept).read_bytes() == (stem / kept).read_bytes()
        log = (d / "train.log").read_text()
        assert "fold0: step 4/4 loss" in log and "step 3/" not in log  # only the last stage trained
        assert json.loads((d / "hard_negatives.json").read_text()) == mined
        weights[arm] = torch.load(d / "cycle-000004.pt", weights_only=True)
    assert torch.load(stem / "checkpoint.pt", weights_only=False)["step"] == 3  # the stem trains no further

    def same(x: str, y: str) -> bool:
        return all(torch.equal(weights[x][k], weights[y][k]) for k in weights[x])

    assert same("c", "d")  # one seed: the same crops from the branch point, so the same weights
    assert not same("c", "e")  # another seed: other crops
    assert not same("c", "h")  # the lever
    # a rerun resumes each branch from its own checkpoint, not from the stem's
    assert m.main([*common, "--arm", "c:from=s"]) == 0
    assert (out / "c" / "fold0" / "train.log").read_text().count("fold0: step 4/4 loss") == 1
