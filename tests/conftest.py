"""Shared test set-up: markers skipped by default, offline ultralytics, paths to committed fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]

# Tests never reach the network: keep ultralytics from writing settings or phoning home.
_yolo_dir = Path(tempfile.gettempdir()) / "harborwatch-test-yolo"
os.environ.setdefault("YOLO_CONFIG_DIR", str(_yolo_dir))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "harborwatch-test-mpl"))
os.environ.setdefault("MPLBACKEND", "Agg")

_MARKERS = {"network": "--run-network", "gpu": "--run-gpu", "slow": "--run-slow"}


def pytest_addoption(parser: pytest.Parser) -> None:
    for marker, flag in _MARKERS.items():
        parser.addoption(flag, action="store_true", default=False, help=f"run tests marked {marker}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, flag in _MARKERS.items():
        if config.getoption(flag):
            continue
        skip = pytest.mark.skip(reason=f"needs {flag}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def load_script():
    """A script of the repository (``benchmarks/x.py``, ``tools/...``) imported as a module, by its path."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]

    def load(rel: str):
        path = root / rel
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture
def hide_module(monkeypatch):
    """``hide_module("name")``: from then on in the test, ``import name`` fails as if not installed."""
    import builtins

    real_import = builtins.__import__

    def hide(module: str) -> None:
        def blocked(name, *args, **kwargs):
            if name == module:
                raise ImportError(f"No module named '{module}'")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", blocked)

    return hide
