"""The exported YOLO OBB model on onnxruntime: same ``spec`` and ``predict`` contract as
``detect.ships.model.YoloModel``, with the post-processing (confidence filter, rotated NMS) in numpy.

No torch or ultralytics at inference time, so a CPU worker needs only onnxruntime. The NMS is the one
ultralytics applies to OBB output (probabilistic IoU, fast-NMS), so boxes agree with the torch path;
``detect.core.slicing.merge_boxes`` (polygon IoU, seam-aware) still merges boxes across tiles afterwards.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from detect.core.weights import ModelSpec, resolve_weights, sha256_file, weights_dir
from detect.ships.model import DEFAULT_MODEL, as_chip_batch, export_onnx
from imagery.errors import ModelError

log = logging.getLogger(__name__)

#: As ultralytics' predictor: at most this many boxes per chip, and classes kept apart in NMS.
MAX_DET = 300
MAX_NMS = 30000


def onnx_cache_dir() -> Path:
    """Where ``OnnxYoloModel.load`` keeps models it exported itself (keyed by the weights' sha256)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path(tempfile.gettempdir()))
    return base / "harborwatch" / "onnx"


def probiou(a: np.ndarray, b: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """(N, M) probabilistic IoU (Bhattacharyya overlap of Gaussian boxes) of xywhr boxes, as ultralytics'
    ``batch_probiou``; float64 for stability."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)

    def cov(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        va, vb = x[:, 2] ** 2 / 12, x[:, 3] ** 2 / 12
        c, s = np.cos(x[:, 4]), np.sin(x[:, 4])
        return va * c**2 + vb * s**2, va * s**2 + vb * c**2, (va - vb) * c * s

    a1, b1, c1 = (v[:, None] for v in cov(a))
    a2, b2, c2 = (v[None, :] for v in cov(b))
    x1, y1 = a[:, 0:1], a[:, 1:2]
    x2, y2 = b[None, :, 0], b[None, :, 1]
    den = (a1 + a2) * (b1 + b2) - (c1 + c2) ** 2
    t1 = ((a1 + a2) * (y1 - y2) ** 2 + (b1 + b2) * (x1 - x2) ** 2) / (den + eps) * 0.25
    t2 = ((c1 + c2) * (x2 - x1) * (y1 - y2)) / (den + eps) * 0.5
    prod = np.clip(a1 * b1 - c1**2, 0, None) * np.clip(a2 * b2 - c2**2, 0, None)
    t3 = np.log(den / (4 * np.sqrt(prod) + eps) + eps) * 0.5
    bd = np.clip(t1 + t2 + t3, eps, 100.0)
    return 1 - np.sqrt(1.0 - np.exp(-bd) + eps)


def rotated_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by fast-NMS (a box goes when any higher-scoring box of its class overlaps it by
    more than ``iou`` probIoU), best first: the rule ultralytics applies to OBB predictions."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")
    b = boxes[order]
    overlap = np.triu(probiou(b, b), k=1)
    overlap *= classes[order][:, None] == classes[order][None, :]
    keep = (overlap > iou).sum(axis=0) == 0
    return order[keep]


def decode(output: np.ndarray, nc: int, conf: float, iou: float) -> list[np.ndarray]:
    """Raw graph output (N, 4 + nc + 1, anchors) → per chip float32 (K, 7) rows [cx, cy, w, h, theta,
    score, class]."""
    out = []
    for pred in output:
        p = pred.T  # (anchors, 4 + nc + 1)
        cls_scores = p[:, 4 : 4 + nc]
        score = cls_scores.max(axis=1)
        p, cls_scores, score = p[score > conf], cls_scores[score > conf], score[score > conf]
        if len(p) > MAX_NMS:
            top = np.argsort(-score, kind="stable")[:MAX_NMS]
            p, cls_scores, score = p[top], cls_scores[top], score[top]
        cls = cls_scores.argmax(axis=1).astype(np.float32)
        xywhr = np.concatenate([p[:, :4], p[:, -1:]], axis=1)
        keep = rotated_nms(xywhr, score, cls, iou)[:MAX_DET]
        rows = np.concatenate([xywhr[keep], score[keep, None], cls[keep, None]], axis=1)
        out.append(rows.astype(np.float32).reshape(-1, 7))
    return out


class OnnxYoloModel:
    """An exported YOLO model and its spec; ``predict`` like ``YoloModel.predict`` (uint8 NHWC chips in,
    one (K, 7) float32 array per chip out)."""

    def __init__(
        self, spec: ModelSpec, onnx_path: str | Path, device: str = "cpu", threads: int | None = None
    ) -> None:
        if spec.task != "obb":
            raise ModelError(f"the onnxruntime path decodes OBB models only, not {spec.task!r}")
        import onnxruntime as ort

        self.spec = spec
        self.path = Path(onnx_path)
        self.device = device
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            index = device.partition(":")[2] or "0"
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(index)}))
        try:
            self._session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"cannot load ONNX model {self.path}: {type(e).__name__}: {e}") from None
        self._input = self._session.get_inputs()[0].name

    @classmethod
    def load(cls, name_or_path: str | Path = DEFAULT_MODEL, device: str = "cpu") -> OnnxYoloModel:
        """An ``.onnx`` path (spec JSON beside it), a name with ``<name>.onnx`` in ``weights_dir()``, or
        named .pt weights exported once into ``onnx_cache_dir()`` (keyed by the weights' sha256)."""
        p = Path(name_or_path)
        if p.suffix == ".onnx":
            if not p.is_file():
                raise ModelError(f"ONNX model {p} not found")
            return cls(ModelSpec.read(p.with_suffix(".json")), p, device=device)
        shipped = weights_dir() / f"{p.name}.onnx"
        if p.suffix == "" and shipped.is_file():
            return cls(ModelSpec.read(shipped.with_suffix(".json")), shipped, device=device)
        pt, spec_path = resolve_weights(name_or_path)
        if not pt.is_file():
            raise ModelError(f"model weights {pt} not found (weights dir: {weights_dir()})")
        spec = ModelSpec.read(spec_path)
        digest = spec.sha256 or sha256_file(pt)
        cached = onnx_cache_dir() / f"{spec.name}-{digest[:16]}.onnx"
        if not cached.is_file():
            log.info("exporting %s to ONNX (once): %s", pt.name, cached)
            export_onnx(pt, cached)
        return cls(spec, cached, device=device)

    def predict(
        self, chips: np.ndarray, conf: float = 0.25, iou: float = 0.5, half: bool = False
    ) -> list[np.ndarray]:
        """Detect on (N, imgsz, imgsz, C) uint8 chips. ``half`` is accepted for the contract and ignored:
        the exported graph is float32."""
        chips = as_chip_batch(chips, self.spec, fixed_size=True)
        if len(chips) == 0:
            return []
        x = chips.transpose(0, 3, 1, 2)
        if chips.shape[-1] == 3:
            x = x[:, ::-1]  # ultralytics reads 3-channel arrays as BGR and flips them; do the same
        x = np.ascontiguousarray(x, dtype=np.float32) / 255.0
        (output,) = self._session.run(None, {self._input: x})
        return decode(output, len(self.spec.class_names), conf, iou)
