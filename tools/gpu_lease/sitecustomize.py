"""Let harborwatch's training import on a machine that has PyTorch but not the GIS stack (a bare CUDA image):
with this folder on PYTHONPATH, every Python process there gets stand-ins for rasterio, pyproj, shapely and
affine that import but fail when used. Training from a prepared scene cache
(``benchmarks/seg_cv_parallel.py``) never uses them; reading or scoring scenes does, and fails loudly.
Only the missing ones are stood in for (``HW_FORCE_NOGIS=1`` stands in for all four, for tests)."""

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
    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return StandIn(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []


_force = os.environ.get("HW_FORCE_NOGIS") == "1"
_missing = tuple(n for n in NAMES if _force or importlib.util.find_spec(n) is None)
if _missing:
    sys.meta_path.insert(0, Finder(_missing))
