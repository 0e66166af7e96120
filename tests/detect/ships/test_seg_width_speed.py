"""benchmarks/seg_width_speed.py: one row per width and depth, with that network's parameter count (a small,
fast run)."""

from __future__ import annotations

from detect.ships.segment import UNet


def test_one_row_per_width_and_depth_with_its_parameters(load_script, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    m = load_script("benchmarks/seg_width_speed.py")
    assert m.main(["--bases", "4,8", "--depths", "4,5", "--repeat", "1", "--threads", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "M |" in line]
    shapes = [(4, 4), (8, 4), (4, 5), (8, 5)]
    assert [(int(r.split("|")[1]), int(r.split("|")[2])) for r in rows] == shapes
    for (base, depth), row in zip(shapes, rows, strict=True):
        params = sum(p.numel() for p in UNet(base=base, depth=depth).parameters())
        assert row.split("|")[3].strip() == f"{params / 1e6:.2f} M"
        assert float(row.split("|")[5]) > 0  # torch seconds
