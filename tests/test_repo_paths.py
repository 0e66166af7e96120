"""No file in the repository (code, docs, model cards, shipped weights) names a machine's absolute path:
data sets come from ``--data`` / ``$HARBORWATCH_DATA`` (docs/data.md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Home and work folders of the machines this project was built on, and users' homes anywhere.
MACHINE_PATH = re.compile(rb"(?<![\w.])/(?:work|home|root|Users)/[\w.-]+")


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout")
    return [REPO / p for p in out.decode().split("\0") if p]


def test_no_tracked_file_names_an_absolute_machine_path() -> None:
    offenders = []
    for path in tracked_files():
        if not path.is_file() or path.stat().st_size > 50_000_000:
            continue
        m = MACHINE_PATH.search(path.read_bytes())
        if m:
            offenders.append(f"{path.relative_to(REPO)}: {m.group().decode(errors='replace')}")
    assert offenders == []
