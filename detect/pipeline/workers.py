"""The worker side of a batch: one scene per task through ``process_scene``, each model loaded once per
process (behind a ``BatchingPredictor`` on CUDA), zone masks cached per AOI grid."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from detect.core.registry import DEFAULT_SHIP_METHOD
from detect.counting import aggregate as agg
from detect.pipeline.records import aoi_fingerprint
from detect.pipeline.scene import process_scene, scene_cache
from detect.pipeline.steps import Steps, default_steps
from imagery.aoi import Aoi
from imagery.errors import HarborwatchError
from imagery.types import Grid, Scene


class BatchTaskError(HarborwatchError, RuntimeError):
    """A scene whose task kept failing on the workers (its reason says why, and after how many tries)."""

    exit_code = 1


_DETECTORS: dict[tuple[str, str, str], Any] = {}


_DETECTOR_LOCKS: dict[int, threading.Lock] = {}


_MASKS: dict[tuple[str, str], dict[str, np.ndarray]] = {}


_LOCK = threading.Lock()


def worker_detector(class_name: str, method: str, device: str) -> Any:
    """This process's detector for (class, method, device), built once. On CUDA the YOLO ship model sits
    behind a ``BatchingPredictor``, so a worker's threads share GPU batches (fp16) across scenes."""
    key = (class_name, method, device)
    with _LOCK:
        if key not in _DETECTORS:
            yolo_methods = ("yolo", "yolo-tta", "yolo-onnx")
            if class_name == "ship" and method in yolo_methods and device.startswith("cuda"):
                from detect.pipeline.gpu import BatchingPredictor
                from detect.ships.yolo import ShipDetector

                if method in ("yolo", "yolo-tta"):
                    from detect.ships.model import DEFAULT_MODEL, YoloModel

                    model: Any = YoloModel.load(DEFAULT_MODEL, device=device)
                else:
                    from detect.ships.onnx_runtime import OnnxYoloModel

                    model = OnnxYoloModel.load(device=device)
                _DETECTORS[key] = ShipDetector(
                    BatchingPredictor(model), batch_size=64, device=device, tta=method == "yolo-tta"
                )
            else:
                from detect.detectors import get_detector

                _DETECTORS[key] = get_detector(class_name, method, device)
            _DETECTOR_LOCKS[id(_DETECTORS[key])] = threading.Lock()
        return _DETECTORS[key]


def worker_detect(
    window: Any,
    classes: Sequence[str] = ("ship",),
    method: str = DEFAULT_SHIP_METHOD,
    conf: float | None = None,
    device: str = "cpu",
) -> list[Any]:
    """``Steps.detect`` on a worker: the worker's cached detectors. CPU detectors run one at a time per
    process (torch already uses every core; its predictor is not thread-safe); batching ones run
    concurrently and meet in the ``BatchingPredictor``."""
    from detect.pipeline.gpu import BatchingPredictor

    out: list[Any] = []
    for c in classes:
        det = worker_detector(c, method, device)
        if isinstance(getattr(det, "model", None), BatchingPredictor):
            out.extend(det.detect(window, conf=conf))
        else:
            with _DETECTOR_LOCKS[id(det)]:
                out.extend(det.detect(window, conf=conf))
    return out


def worker_steps(device: str) -> Steps:
    """The pipeline's default steps with detection (and band lookup) through the worker's detector cache."""
    return replace(
        default_steps(),
        detect=worker_detect,
        required_bands=lambda methods: worker_bands(methods, device),
    )


def worker_bands(methods: Mapping[str, str], device: str) -> tuple[str, ...]:
    out: list[str] = []
    for c, m in methods.items():
        d = worker_detector(c, m, device)
        for b in (*d.required_bands, *getattr(d, "optional_bands", ())):
            if b not in out:
                out.append(b)
    return tuple(out)


def _zone_masks(aoi: Aoi, grid: Grid) -> dict[str, np.ndarray]:
    key = (aoi_fingerprint(aoi), repr(grid.key()))
    with _LOCK:
        if key not in _MASKS:
            _MASKS[key] = agg.zone_masks(aoi, grid)
        return _MASKS[key]


@dataclass(frozen=True)
class SceneTask:
    """Everything a worker needs for one scene (small: the zone masks are rebuilt and cached there)."""

    scene: Scene
    aoi: Aoi
    grid: Grid
    methods: dict[str, str]
    conf: float | None
    device: str
    cache_dir: str | None
    source: str
    params: agg.AggregateParams
    key: dict[str, Any]
    scenes_dir: str
    sensor: str = "S2"
    steps: Steps | None = None


def run_scene(task: SceneTask) -> dict[str, Any]:
    """Process one scene on a worker; raise ``BatchTaskError`` if it failed, so dask retries it."""
    steps = task.steps or worker_steps(task.device)
    bands = steps.required_bands(task.methods) if task.sensor == "S2" else ()
    rec = process_scene(
        task.scene,
        aoi=task.aoi,
        grid=task.grid,
        masks=_zone_masks(task.aoi, task.grid),
        steps=steps,
        bands=bands,
        methods=task.methods,
        conf=task.conf,
        device=task.device,
        cache=scene_cache(task.cache_dir, task.source),
        params=task.params,
        key=task.key,
        scenes_dir=Path(task.scenes_dir),
        sensor=task.sensor,
    )
    if rec["status"] == "failed":
        raise BatchTaskError(rec["reason"] or "failed")
    return rec
