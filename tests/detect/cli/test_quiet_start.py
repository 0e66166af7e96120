"""A first run prints harborwatch's own progress on stderr, not third-party start-up banners."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from imagery.samples import list_samples

REPO = Path(__file__).resolve().parents[3]


def test_first_run_with_fresh_config_dirs_prints_no_library_banners(tmp_path):
    """ultralytics' new-settings banner (YOLO import) and matplotlib's font-cache lines (the chart) are
    held back on a first run; the run's own progress line stays."""
    sample = next(s for s in list_samples() if s.id.startswith("genoa"))
    w, s, e, n = json.loads((sample.path.parent / "scene.json").read_text())["bbox"]
    env = {
        **os.environ,
        "YOLO_CONFIG_DIR": str(tmp_path / "yolo"),
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    day = sample.datetime.date().isoformat()
    done = subprocess.run(
        [
            sys.executable, "-m", "detect.cli", "run",
            "--source", f"local:{sample.path.parent}",
            "--aoi", f"{w + 0.005},{s + 0.005},{e - 0.005},{n - 0.005}",
            "--start", day, "--end", day,
            "--method", "yolo",
            "--out", str(tmp_path / "run"),
        ],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "yolo").is_dir() and (tmp_path / "mpl").is_dir()  # both really started fresh
    assert (tmp_path / "run" / "counts.png").is_file()
    for noise in ("Ultralytics", "yolo settings", "Matplotlib is building", "fontManager"):
        assert noise not in done.stderr, done.stderr
    assert "1 scenes over" in done.stderr  # harborwatch's own progress is kept
