"""What produced a run: the model (spec and card, never loaded), package versions, run.json."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from imagery.atomic import atomic_write_json

VERSION_PACKAGES = (
    "harborwatch",
    "numpy",
    "pandas",
    "pyarrow",
    "shapely",
    "pyproj",
    "rasterio",
    "matplotlib",
    "ultralytics-opencv-headless",
    "torch",
    "opencv-python-headless",
    "pystac-client",
    "sentinelhub",
    "s2cloudless",
)


@dataclass(frozen=True)
class ModelInfo:
    """What the report says about the detector: name, weights hash and measured accuracy."""

    name: str
    method: str
    weights: str | None
    sha256: str | None
    bands: tuple[str, ...]
    metrics: dict[str, Any]
    card: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "weights": self.weights,
            "sha256": self.sha256,
            "bands": list(self.bands),
            "metrics": self.metrics,
            "card": self.card,
        }


def model_info(method: str, name: str | None = None) -> ModelInfo:
    """Read the weights' spec (``<name>.json``) and card for the report; never loads the model. ``name``
    defaults to the weights the method loads (``detect.core.registry.DEFAULT_WEIGHTS``)."""
    from detect.core.registry import DEFAULT_WEIGHTS
    from detect.core.weights import resolve_weights

    names = name or DEFAULT_WEIGHTS.get(("ship", method))
    if isinstance(names, tuple) and len(names) == 1:  # a per-scene choice among one model: read as that model
        names = names[0]
    if isinstance(names, tuple):  # a method that picks a model per scene: every model it may load
        parts = [model_info(method, n) for n in names]
        return ModelInfo(
            name=" + ".join(p.name for p in parts),
            method=method,
            weights=", ".join(p.weights or "(missing)" for p in parts),
            sha256="+".join(p.sha256 or "?" for p in parts),
            bands=tuple(dict.fromkeys(b for p in parts for b in p.bands)),
            metrics={p.name: p.metrics for p in parts},
            card=parts[0].card,  # the first: the default model's (the others' cards are named in it)
        )
    name = names
    if name is None:
        return ModelInfo(
            name=method, method=method, weights=None, sha256=None, bands=(), metrics={}, card=None
        )
    pt, spec_path = resolve_weights(name)
    card = pt.with_suffix(".md")
    try:
        spec = json.loads(spec_path.read_text())
        if not isinstance(spec, dict):
            raise ValueError("not an object")
    except (OSError, ValueError):  # a missing or unreadable spec is reported as such, not fatal
        return ModelInfo(
            name=name,
            method=method,
            weights=str(pt) if pt.exists() else None,
            sha256=None,
            bands=(),
            metrics={},
            card=str(card) if card.exists() else None,
        )
    members = spec.get("members") if isinstance(spec.get("members"), dict) else {}
    return ModelInfo(
        name=str(spec.get("name") or name),
        method=method,
        # an ensemble has no weights file of its own: its members' files
        weights=", ".join(str(pt.with_name(f"{m}.pt")) for m in members) if members else str(pt),
        sha256=spec.get("sha256") or None,
        bands=tuple(spec.get("bands") or ()),
        metrics=dict(spec.get("metrics") or {}),
        card=str(card) if card.exists() else None,
    )


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_run_json(
    path: Path,
    *,
    parameters: dict[str, Any],
    model: ModelInfo,
    command: Sequence[str] | None,
    started: datetime,
    extra: dict[str, Any] | None = None,
) -> Path:
    doc = {
        "harborwatch_run": 1,
        "command": list(command) if command is not None else None,
        "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        "parameters": parameters,
        "model": model.to_dict(),
        "versions": package_versions(),
        "platform": {
            "system": platform.system(),
            "machine": platform.machine(),
            "executable": sys.executable,
        },
        **(extra or {}),
    }
    return atomic_write_json(path, doc)
