"""Every `--res` option takes a finite pixel size from 1 to 1000 m; anything else is one line and exit 2."""

from __future__ import annotations

import pytest

from detect.cli import main
from imagery.samples import list_samples

SAMPLE = list_samples()[0]


def _commands(tmp_path) -> dict[str, list[str]]:
    out, day = tmp_path / "out", SAMPLE.datetime.date().isoformat()
    return {
        "aoi show": ["aoi", "show", "longkou-port"],
        "fetch": ["fetch", "--aoi", ",".join(map(str, SAMPLE.bbox)), "--start", day, "--end", day,
                  "--source", "samples", "--out", str(out)],
        "detect": ["detect", str(SAMPLE.path), "--method", "baseline", "--out", str(out / "d.geojson")],
    }  # fmt: skip


@pytest.mark.parametrize("command", ["aoi show", "fetch", "detect"])
@pytest.mark.parametrize("res", ["nan", "inf", "-inf", "1e-6", "0", "5000"])
def test_a_res_that_is_not_a_usable_pixel_size_is_one_line_and_exit_2(command, res, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([*_commands(tmp_path)[command], "--res", res])
    out, err = capsys.readouterr()
    assert e.value.code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("harborwatch: error: --res must be a pixel size from 1 to")
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_sentinel_res_is_accepted(capsys):
    with pytest.raises(SystemExit) as e:
        main(["aoi", "show", "longkou-port", "--res", "20", "--json"])
    assert e.value.code == 0 and '"res_m": 20.0' in capsys.readouterr().out
