"""benchmarks/seg_width_speed.py: one row per width, with that width's parameter count (a small, fast run)."""

from __future__ import annotations

from detect.ships.segment import UNet


def test_one_row_per_width_with_its_parameters(load_script, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    m = load_script("benchmarks/seg_width_speed.py")
    assert m.main(["--bases", "4,8", "--repeat", "1", "--threads", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "M |" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["4", "8"]
    for base, row in zip((4, 8), rows, strict=True):
        params = sum(p.numel() for p in UNet(base=base).parameters())
        assert row.split("|")[2].strip() == f"{params / 1e6:.2f} M"
        assert float(row.split("|")[4]) > 0  # torch seconds
