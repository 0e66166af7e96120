"""Let harborwatch's training import on a machine that has PyTorch but not the GIS stack (a bare CUDA image):
with this folder on PYTHONPATH, every Python process there gets stand-ins for rasterio, pyproj, shapely and
affine that import but fail when used. Training from a prepared scene cache
(``benchmarks/seg_cv_parallel.py``) never uses them; reading or scoring scenes does, and fails loudly.
Installed only where one of them is missing (``HW_FORCE_NOGIS=1`` installs them anyway, for tests)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

NAMES = ("rasterio", "pyproj", "shapely", "affine")


class Absent:
    """Any name taken from a stand-in: more names from it import; calling one raises."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Absent:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Absent(f"{self._name}.{attr}")

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{self._name} is not installed on this machine (tools/gpu_lease)")


class StandIn(types.ModuleType):
    def __getattr__(self, attr: str) -> Absent:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Absent(f"{self.__name__}.{attr}")


class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in NAMES:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return StandIn(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []


if os.environ.get("HW_FORCE_NOGIS") == "1" or any(importlib.util.find_spec(n) is None for n in NAMES):
    sys.meta_path.insert(0, Finder())
