"""Named weights: where they live (``weights_dir``), their spec (``ModelSpec``) and sha256.

No ultralytics here: the spec and the lookup are shared by every detector that loads weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imagery.atomic import atomic_write_json
from imagery.errors import InputError, ModelError

_TASKS = ("obb", "detect")


@dataclass(frozen=True)
class ModelSpec:
    """What a set of weights expects as input and how it scored; ``<name>.json`` beside ``<name>.pt``."""

    name: str
    task: str  # "obb" (oriented boxes) or "detect" (axis-aligned)
    bands: tuple[str, ...]  # Sentinel band names in channel order, e.g. ("B04", "B03", "B02", "B08")
    imgsz: int  # model input size in pixels (square chips)
    gsd_m: float  # ground sampling the model expects, metres per pixel
    normalisation: dict[str, Any] = field(hash=False)  # parameters for detect.core.bands.to_model_input
    class_names: tuple[str, ...] = ("ship",)
    sha256: str = ""  # of the .pt file
    metrics: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.task not in _TASKS:
            raise InputError(f"model task must be one of {', '.join(_TASKS)}, got {self.task!r}")
        if not self.bands:
            raise InputError("a model spec needs at least one band")
        if self.imgsz <= 0 or self.imgsz % 32:
            raise InputError(f"imgsz must be a positive multiple of 32, got {self.imgsz}")
        # JSON round-trips give lists; keep the frozen record's sequences as tuples.
        object.__setattr__(self, "bands", tuple(self.bands))
        object.__setattr__(self, "class_names", tuple(self.class_names))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"] = list(self.bands)
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelSpec:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        missing = [k for k in ("name", "task", "bands", "imgsz", "gsd_m", "normalisation") if k not in known]
        if missing:
            raise ModelError(f"model spec lacks field(s) {', '.join(missing)}")
        return cls(**known)

    def write(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_json())

    @classmethod
    def read(cls, path: str | Path) -> ModelSpec:
        path = Path(path)
        try:
            return cls.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            raise ModelError(f"model spec {path} not found (it must lie beside the .pt file)") from None
        except (json.JSONDecodeError, TypeError) as e:
            raise ModelError(f"model spec {path} is not valid: {e}") from None


def weights_dir() -> Path:
    """Where named weights live.

    $HARBORWATCH_WEIGHTS_DIR, else the repo's weights/ (editable install), else
    <sys.prefix>/share/harborwatch/weights (wheel install).
    """
    env = os.environ.get("HARBORWATCH_WEIGHTS_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2] / "weights"
    if repo.is_dir():
        return repo
    return Path(sys.prefix) / "share" / "harborwatch" / "weights"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_weights(name_or_path: str | Path) -> tuple[Path, Path]:
    """(weights .pt, spec .json) for a model name in ``weights_dir()`` or a path to a .pt / .json file."""
    p = Path(name_or_path)
    if p.suffix in (".pt", ".json") or p.exists():
        pt = p.with_suffix(".pt")
    else:
        pt = weights_dir() / f"{p.name}.pt"
    return pt, pt.with_suffix(".json")
