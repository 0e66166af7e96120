"""`harborwatch train ships|trucks`: one definition of the training options, reached three ways."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from detect.cli import main

REPO = Path(__file__).resolve().parents[3]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    return int(e.value.code), capsys.readouterr().out


def test_train_offers_the_ship_and_the_truck_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["train", "--help"], capsys)
    assert code == 0 and "ships" in out and "trucks" in out


def test_train_without_a_target_is_the_ship_model(capsys: pytest.CaptureFixture[str]) -> None:
    _, bare = run(["train", "--data", ".", "--help"], capsys)
    _, ships = run(["train", "ships", "--help"], capsys)
    assert bare == ships and "--cv" in ships and "--folds" in ships and "--cities" in ships


def test_truck_training_options_are_the_cli_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["train", "trucks", "--help"], capsys)
    assert code == 0
    for option in ("--num-rounds", "--write-fixtures", "--yolo", "--seed", "--cache", "--haze"):
        assert option in out


@pytest.mark.parametrize(
    ("module", "target"), [("detect.ships.train", "ships"), ("detect.trucks.train", "trucks")]
)
def test_python_dash_m_runs_the_same_click_command(module: str, target: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert f"Usage: harborwatch train {target}" in done.stdout


@pytest.fixture
def seg_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[list, list[str]]:
    """`train ships-seg --cv 0` with the final training replaced by a recorder: (the (config, eotdl
    folder) of each run, the command's first arguments)."""
    import detect.ships.segment_train as st

    seen: list = []

    def final(data, out, cfg, summary, name, device="cpu", progress=None, eotdl=None):
        seen.append((cfg, eotdl))
        return out / "final" / f"{name}.pt"

    monkeypatch.setattr(st, "train_final", final)
    (tmp_path / "sen2ships" / "trainval").mkdir(parents=True)
    return seen, ["train", "ships-seg", "--data", str(tmp_path / "sen2ships" / "trainval"), "--cv", "0"]


def test_seg_training_precision_reaches_the_config_and_unknown_ones_are_refused(
    capsys: pytest.CaptureFixture[str], seg_runs: tuple[list, list[str]], tmp_path: Path
) -> None:
    seen, base = seg_runs
    code, _ = run([*base, "--out", str(tmp_path / "run"), "--precision", "bf16"], capsys)
    assert code == 0 and [c.precision for c, _ in seen] == ["bf16"]
    code, _ = run([*base, "--out", str(tmp_path / "run")], capsys)
    assert code == 0 and seen[-1][0].precision == "fp32"  # the default: the measured recipe
    with pytest.raises(SystemExit) as e:
        main([*base, "--out", str(tmp_path / "run"), "--precision", "fp16"])
    assert e.value.code == 2 and "fp16" in capsys.readouterr().err


def test_seg_training_network_shape_reaches_the_config(
    capsys: pytest.CaptureFixture[str], seg_runs: tuple[list, list[str]], tmp_path: Path
) -> None:
    seen, base = seg_runs
    base = [*base, "--out", str(tmp_path / "run")]
    code, _ = run([*base, "--depth", "5", "--base", "12"], capsys)
    assert code == 0 and (seen[-1][0].depth, seen[-1][0].base) == (5, 12)
    code, _ = run(base, capsys)
    assert code == 0 and (seen[-1][0].depth, seen[-1][0].base) == (4, 16)  # the shipped network's
    for bad in ("1", "7"):
        with pytest.raises(SystemExit) as e:
            main([*base, "--depth", bad])
        assert e.value.code == 2 and "--depth" in capsys.readouterr().err
    assert len(seen) == 2


def test_seg_training_encoder_and_its_rate_reach_the_config(
    capsys: pytest.CaptureFixture[str], seg_runs: tuple[list, list[str]], tmp_path: Path
) -> None:
    seen, base = seg_runs
    base = [*base, "--out", str(tmp_path / "run")]
    code, out = run([*base, "--encoder", "efficientnet-b4", "--encoder-lr", "0.2"], capsys)
    assert code == 0 and (seen[-1][0].encoder, seen[-1][0].encoder_lr) == ("efficientnet-b4", 0.2)
    assert "ships-s2-seg-b4.pt" in out  # never the default model's name for another network
    code, out = run(base, capsys)
    assert code == 0 and (seen[-1][0].encoder, seen[-1][0].encoder_lr) == ("", 0.1)
    assert "final/ships-s2-seg.pt" in out
    for bad in (
        ["--encoder", "resnet50"],
        ["--encoder-lr", "2"],
        ["--encoder-lr", "0.2"],  # the encoder's rate, without the encoder
        ["--encoder", "efficientnet-b4", "--crop", "40"],
        ["--encoder", "efficientnet-b4", "--base", "12"],
    ):
        with pytest.raises(SystemExit) as e:
            main([*base, *bad])
        assert e.value.code == 2 and bad[0] in capsys.readouterr().err
    assert len(seen) == 2


def test_seg_training_on_the_pretrained_encoder_without_its_extra_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, hide_module
) -> None:
    hide_module("ukis_csmask")
    data = REPO / "tests" / "fixtures" / "ships_train"
    argv = ["train", "ships-seg", "--data", str(data), "--cv", "0", "--steps", "1"]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path / "run"), "--encoder", "efficientnet-b4"])
    err = capsys.readouterr().err
    assert e.value.code not in (0, None) and "Traceback" not in err
    assert 'ukis-csmask, which is not installed (pip install -e ".[pretrained]")' in err


def test_seg_training_soup_needs_a_last_cycle_to_branch_and_is_not_a_cycle_average(
    capsys: pytest.CaptureFixture[str], seg_runs: tuple[list, list[str]], tmp_path: Path
) -> None:
    seen, base = seg_runs
    base = [*base, "--out", str(tmp_path / "run")]
    code, _ = run([*base, "--steps", "7200", "--restart-every", "1200", "--soup", "2"], capsys)
    assert code == 0 and seen[-1][0].soup == 2
    code, _ = run(base, capsys)
    assert code == 0 and seen[-1][0].soup == 1  # the default: one run
    for bad in (
        ["--soup", "2"],  # no learning-rate cycles
        ["--soup", "2", "--steps", "1200", "--restart-every", "1200"],  # no stem before the last cycle
        ["--soup", "2", "--steps", "3000", "--restart-every", "1200"],  # not whole cycles
        ["--soup", "2", "--steps", "3600", "--restart-every", "1200", "--average-cycles", "2"],
    ):
        with pytest.raises(SystemExit) as e:
            main([*base, *bad])
        err = capsys.readouterr().err
        assert e.value.code == 2 and "--soup" in err, bad
    assert len(seen) == 2


def test_seg_training_averages_cycles_only_when_there_are_enough_of_them(
    capsys: pytest.CaptureFixture[str], seg_runs: tuple[list, list[str]], tmp_path: Path
) -> None:
    seen, base = seg_runs
    base = [*base, "--out", str(tmp_path / "run")]
    code, _ = run([*base, "--steps", "3600", "--restart-every", "1200", "--average-cycles", "3"], capsys)
    assert code == 0 and seen[-1][0].average == 3
    code, _ = run([*base, "--seed", "1"], capsys)
    assert code == 0 and seen[-1][0].average == 1 and seen[-1][0].seed == 1  # the default: the last weights
    for bad in (
        ["--average-cycles", "2"],
        ["--steps", "2400", "--restart-every", "1200", "--average-cycles", "3"],
    ):
        with pytest.raises(SystemExit) as e:
            main([*base, *bad])
        assert e.value.code == 2 and "--average-cycles" in capsys.readouterr().err
    assert len(seen) == 2


def test_seg_training_with_eotdl_needs_its_folder_and_names_the_option(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    seg_runs: tuple[list, list[str]],
    tmp_path: Path,
) -> None:
    seen, base = seg_runs
    monkeypatch.delenv("HARBORWATCH_DATA", raising=False)
    base = [*base, "--out", str(tmp_path / "run")]
    fixture = REPO / "tests" / "fixtures" / "eotdl"
    code, _ = run([*base, "--eotdl", "--eotdl-data", str(fixture)], capsys)
    assert code == 0 and seen[-1][0].eotdl and seen[-1][1] == fixture
    code, _ = run(base, capsys)
    assert code == 0 and not seen[-1][0].eotdl and seen[-1][1] is None  # off by default
    with pytest.raises(SystemExit) as e:
        main([*base, "--eotdl"])  # no folder given and no $HARBORWATCH_DATA
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--eotdl-data" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        main([*base, "--eotdl-data", str(fixture)])  # the folder without the option that uses it
    assert e.value.code == 2 and "--eotdl" in capsys.readouterr().err
    assert len(seen) == 2


def test_truck_training_needs_an_out_folder(capsys: pytest.CaptureFixture[str]) -> None:
    # the default was `weights`: a bare `harborwatch train trucks` in the repo replaced the shipped model
    with pytest.raises(SystemExit) as e:
        main(["train", "trucks", "--data", "."])
    assert e.value.code == 2
    assert "give --out DIR" in capsys.readouterr().err
