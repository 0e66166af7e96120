"""A bad environment (a path that is a file, no GPU, no permission, a full disk) gets one line and exit 1 or 2
from the CLI, never a traceback; finished work is not lost."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from detect.cli import main

SAMPLE = (
    Path(__file__).resolve().parents[3] / "imagery" / "samples" / "genoa-2023-07-10" / "genoa-2023-07-10.tif"
)


def run(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    return int(e.value.code or 0), err


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("harborwatch: error")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_detect_out_under_a_file_is_one_line_exit_2(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    rc, err = run(
        ["detect", str(SAMPLE), "--method", "baseline", "--out", str(blocker / "x.geojson")], capsys
    )
    assert rc == 2 and "a file stands where a folder is needed" in one_line(err)


def test_run_out_under_a_file_is_one_line_exit_2(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    rc, err = run(
        [
            "run",
            "--aoi",
            "longkou-port",
            "--start",
            "2023-08-18",
            "--end",
            "2023-08-18",
            "--source",
            "samples",
            "--method",
            "baseline",
            "--out",
            str(blocker / "run"),
        ],
        capsys,
    )
    assert rc == 2 and "afile" in one_line(err)


def test_a_gpu_this_machine_lacks_is_one_line_exit_2(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    rc, err = run(["detect", str(SAMPLE), "--device", "cuda:0", "--out", str(tmp_path / "x.geojson")], capsys)
    assert rc == 2 and "no CUDA GPU" in one_line(err)
    rc, err = run(["detect", str(SAMPLE), "--device", "tpu", "--out", str(tmp_path / "x.geojson")], capsys)
    assert rc == 2 and "unknown device" in one_line(err)


@pytest.mark.parametrize(
    ("error", "code", "words"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), 1, "no space left"),
        (PermissionError(errno.EACCES, "Permission denied"), 2, "permission denied"),
        (OSError(errno.EROFS, "Read-only file system"), 2, "read-only"),
    ],
)
def test_a_write_the_system_refuses_is_one_line(error, code, words, tmp_path, capsys, monkeypatch):
    # root ignores permissions and the test disk is not full, so the system call is made to fail
    import imagery.atomic

    def refuse(src, dst):
        error.filename = str(dst)
        raise error

    monkeypatch.setattr(imagery.atomic.os, "replace", refuse)
    out = tmp_path / "x.geojson"
    rc, err = run(["detect", str(SAMPLE), "--method", "baseline", "--out", str(out)], capsys)
    assert rc == code and words in one_line(err) and str(out) in err
    assert not out.exists() and not list(tmp_path.glob(".*.part"))  # nothing half-written left behind


@pytest.mark.parametrize("name", ["", "ships.gpkg", "ships.txt", "dir/"])
def test_detect_refuses_an_output_that_is_not_a_geojson_file_before_any_work(tmp_path, capsys, name) -> None:
    # GeoJSON is what detect writes: "" used to fail at the end with "Device or resource busy", a .gpkg got
    # GeoJSON under its name
    out = str(tmp_path / name) if name else ""
    rc, err = run(["detect", str(SAMPLE), "--method", "baseline", "--out", out], capsys)
    assert rc == 2 and "name a GeoJSON file" in one_line(err)
    assert not list(tmp_path.iterdir())


def test_gdal_warnings_about_a_files_internals_show_only_with_verbose(capsys) -> None:
    # the eotdl chips print eight "CPLE_AppDefined in …: TIFFReadDirectory: …" lines per command otherwise
    import logging

    from detect.cli.app import _setup_logging

    for verbose, shown in ((0, False), (1, True)):
        _setup_logging(verbose, quiet=False)
        logging.getLogger("rasterio._env").warning("CPLE_AppDefined in x.tif: TIFFReadDirectory: odd samples")
        assert ("CPLE_AppDefined" in capsys.readouterr().err) is shown
    _setup_logging(0, quiet=False)


def test_batch_refuses_a_device_this_machine_lacks_before_any_work(tmp_path, capsys) -> None:
    # the workers failed every scene on it and the batch ended with exit 0, job "ok"
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        'jobs:\n  - {aoi: "23.5644,37.9325,23.6074,37.9666", start: 2023-08-17, end: 2023-08-19,\n'
        "     source: samples}\n"
    )
    rc, err = run(["batch", str(jobs), "--out", str(tmp_path / "b"), "--device", "cuda"], capsys)
    assert rc == 2 and "cuda" in one_line(err)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("name", ["", "area.gpkg"])
def test_aoi_export_refuses_an_output_that_is_not_a_geojson_file(tmp_path, capsys, name) -> None:
    out = str(tmp_path / name) if name else ""
    rc, err = run(["aoi", "export", "longkou-port", "--out", out], capsys)
    assert rc == 2 and "name a GeoJSON file" in one_line(err)
    assert not list(tmp_path.iterdir())
