"""The ultralytics adapter: the only module that imports ultralytics.

The rest of harborwatch sees a ``ModelSpec`` (bands, input size, normalisation, sha256) and a
``YoloModel`` that takes uint8 chips and returns plain float32 arrays, so the YOLO version can
change here and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detect.core.weights import ModelSpec, resolve_weights, sha256_file, weights_dir
from imagery.errors import InputError, ModelError

#: Columns of one prediction row, in chip pixels; theta in radians (0 for axis-aligned models).
PREDICTION_COLUMNS = ("cx", "cy", "w", "h", "theta_rad", "score", "class_id")

DEFAULT_MODEL = "ships-s2"


def ultralytics_env() -> Path:
    """Make ultralytics run offline; called once before its import. Returns its config dir.

    Settings go to a harborwatch cache dir (not ~/.config/Ultralytics with analytics on), nothing
    auto-installs, and the fonts it fetches when loading datasets are provided from matplotlib's.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path(tempfile.gettempdir())) / "harborwatch"
    cfg = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(cache / "ultralytics")))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("MPLCONFIGDIR", str(cache / "matplotlib"))
    # ultralytics 8.4 reads settings and fonts from the "Ultralytics" sub-folder, older versions from cfg.
    targets = [d / n for d in (cfg, cfg / "Ultralytics") for n in ("Arial.ttf", "Arial.Unicode.ttf")]
    missing = [t for t in targets if not t.exists()]
    if missing:
        import matplotlib  # font source only; imported lazily to keep start-up fast

        font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        for t in missing:
            t.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(font, t)
    return cfg


def _only_warnings(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


def _ultralytics():
    ultralytics_env()
    # Its import announces a new settings file at INFO ("Creating new Ultralytics Settings ..."): keep
    # only its warnings then. Not YOLO_VERBOSE=False, which would also hide training progress.
    noise = logging.getLogger("ultralytics")
    noise.addFilter(_only_warnings)
    # ultralytics logs to stdout, where harborwatch keeps results (``--json``): send its log to stderr.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            import ultralytics
    finally:
        noise.removeFilter(_only_warnings)
    for h in logging.getLogger("ultralytics").handlers:
        if isinstance(h, logging.StreamHandler) and h.stream is sys.stdout:
            h.setStream(sys.stderr)
    return ultralytics


def _result_rows(result: Any, task: str) -> np.ndarray:
    """One ultralytics Result → float32 (K, 7) [cx, cy, w, h, theta, score, class]."""
    if task == "obb":
        boxes = result.obb
        if boxes is None or len(boxes) == 0:
            return np.zeros((0, 7), np.float32)
        xywhr = boxes.xywhr.cpu().numpy()
    else:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return np.zeros((0, 7), np.float32)
        xywh = boxes.xywh.cpu().numpy()
        xywhr = np.concatenate([xywh, np.zeros((len(xywh), 1), xywh.dtype)], axis=1)
    conf = boxes.conf.cpu().numpy()[:, None]
    cls = boxes.cls.cpu().numpy()[:, None]
    return np.concatenate([xywhr, conf, cls], axis=1).astype(np.float32)


def as_chip_batch(chips: np.ndarray, spec: ModelSpec, *, fixed_size: bool = False) -> np.ndarray:
    """Chips as an (N, H, W, C) uint8 batch for ``spec``; one (H, W, C) chip becomes a batch of one.

    ``fixed_size`` also requires H = W = ``spec.imgsz`` (exported graphs have a fixed input).
    Raises InputError naming the expected shape or dtype.
    """
    chips = np.asarray(chips)
    if chips.ndim == 3:
        chips = chips[None]
    c, s = len(spec.bands), spec.imgsz
    bands = ",".join(spec.bands)
    if fixed_size:
        if chips.ndim != 4 or chips.shape[1:] != (s, s, c):
            raise InputError(
                f"chips must be (N, {s}, {s}, {c}) for bands {bands} "
                f"(the model's imgsz, as ShipDetector cuts them), got {chips.shape}"
            )
    elif chips.ndim != 4 or chips.shape[-1] != c:
        raise InputError(f"chips must be (N, H, W, {c}) for bands {bands}, got {chips.shape}")
    if chips.dtype != np.uint8:
        raise InputError(f"chips must be uint8 (see detect.core.bands.to_model_input), got {chips.dtype}")
    return chips


class YoloModel:
    """Trained YOLO weights plus their spec; predicts on batches of normalised uint8 chips."""

    def __init__(self, spec: ModelSpec, weights: Path, device: str = "cpu") -> None:
        self.spec = spec
        self.weights = Path(weights)
        self.device = device
        try:
            self._yolo = _ultralytics().YOLO(str(self.weights), task=spec.task)
        except Exception as e:  # a truncated or foreign file fails deep inside torch.load
            raise ModelError(f"cannot load weights {self.weights}: {type(e).__name__}: {e}") from None

    @classmethod
    def load(cls, name_or_path: str = DEFAULT_MODEL, device: str = "cpu") -> YoloModel:
        """Load named weights (from ``weights_dir()``) or a .pt path, offline; checks the spec's sha256."""
        pt, spec_path = resolve_weights(name_or_path)
        if not pt.is_file():
            raise ModelError(f"model weights {pt} not found (weights dir: {weights_dir()})")
        spec = ModelSpec.read(spec_path)
        if not spec.sha256:
            raise ModelError(f"model spec {spec_path} has no sha256 for {pt.name}")
        actual = sha256_file(pt)
        if actual != spec.sha256:
            raise ModelError(
                f"weights {pt} do not match their spec: sha256 {actual[:12]}… != {spec.sha256[:12]}… "
                "(corrupt download or mismatched files)"
            )
        return cls(spec, pt, device=device)

    def predict(
        self, chips: np.ndarray, conf: float = 0.25, iou: float = 0.5, half: bool = False
    ) -> list[np.ndarray]:
        """Detect on (N, H, W, C) uint8 chips; one float32 (K, 7) array per chip (``PREDICTION_COLUMNS``)."""
        chips = as_chip_batch(chips, self.spec)
        if len(chips) == 0:
            return []
        # Arrays go in exactly as training read its chip files back (cv2 channel order), so the
        # predictor's 3-channel BGR→RGB flip matches the one the training loader applied.
        results = self._yolo.predict(
            list(chips),
            imgsz=self.spec.imgsz,
            conf=conf,
            iou=iou,
            quantize=16 if (half and self.device != "cpu") else None,  # fp16 only where it exists
            device=self.device,
            verbose=False,
            save=False,
        )
        return [_result_rows(r, self.spec.task) for r in results]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters handed to the ultralytics trainer; augmentation fitted to 10 m imagery."""

    arch: str = "yolo11n-obb.yaml"
    epochs: int = 50
    imgsz: int = 128
    batch: int = 8  # small batches: more optimiser steps per epoch when training from scratch on ~300 chips
    device: str = "cpu"
    workers: int = 0
    seed: int = 0
    warmup_epochs: float = (
        1.0  # runs are short (tens of epochs); the default 3 would spend a tenth warming up
    )
    patience: int = 0  # 0 = never stop early: no per-epoch validation runs (it costs CPU time)
    # Geometric augmentation: flips both ways (90° rotations are applied when chips are written),
    # slight scale jitter, no shear/perspective/arbitrary rotation (grey corners don't exist in imagery).
    fliplr: float = 0.5
    flipud: float = 0.5
    degrees: float = 0.0
    scale: float = 0.15
    translate: float = 0.1
    mosaic: float = 0.0
    mixup: float = 0.0
    # Colour: HSV jitter means nothing for reflectance bands (and not at all with NIR as a 4th channel);
    # brightness/contrast/haze are applied to the chips offline by detect.ships.dataset.
    hsv_h: float = 0.0
    hsv_s: float = 0.0
    hsv_v: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    #: Weights (a checkpoint trained earlier on the SAME cities) to start from instead of random ones:
    #: continues a run without leaking held-out cities. None = from scratch.
    init: str | None = None

    def overrides(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("arch", "extra", "init")}
        d.update(self.extra)
        return d


def train_yolo(
    data_yaml: str | Path, out_dir: str | Path, cfg: TrainConfig, *, verbose: bool = False
) -> Path:
    """Train from scratch (``cfg.arch`` yaml; or from ``cfg.init``, weights trained earlier on the same
    data) and return the stripped last.pt.

    ``out_dir`` receives the ultralytics run folder ``run/``; the returned file is ``out_dir/model.pt``.
    """
    ul = _ultralytics()
    from ultralytics.utils import LOGGER

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    task = "obb" if "obb" in cfg.arch else "detect"
    yolo = ul.YOLO(cfg.arch, task=task)
    if not verbose:
        LOGGER.setLevel("WARNING")
    args = cfg.overrides()
    args.update(
        data=str(data_yaml),
        project=str(out_dir),
        name="run",
        exist_ok=True,
        pretrained=str(cfg.init) if cfg.init else False,
        amp=False if args.get("device", "cpu") == "cpu" else args.get("amp", True),
        plots=False,
        val=False,
        verbose=verbose,
        deterministic=False,
    )
    try:
        with contextlib.redirect_stdout(sys.stderr):  # progress prints, never results
            yolo.train(**args)
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        raise ModelError(f"training failed: {type(e).__name__}: {e}") from None
    last = out_dir / "run" / "weights" / "last.pt"
    if not last.is_file():
        raise ModelError(f"training wrote no weights under {last.parent}")
    final = out_dir / "model.pt"
    from ultralytics.utils.torch_utils import strip_optimizer

    strip_optimizer(last, str(final))
    return final


def write_model(pt: str | Path, spec: ModelSpec, dest_dir: str | Path) -> tuple[Path, ModelSpec]:
    """Copy weights to ``dest_dir/<spec.name>.pt`` and write the spec (with the file's sha256) beside it."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{spec.name}.pt"
    if Path(pt).resolve() != target.resolve():
        from imagery.atomic import atomic_path

        with atomic_path(target) as tmp:
            shutil.copyfile(pt, tmp)
    final = ModelSpec(**{**asdict(spec), "sha256": sha256_file(target)})
    final.write(target.with_suffix(".json"))
    for f in (target, target.with_suffix(".json")):
        f.chmod(0o644)  # temp files are created 0600; weights are meant to be shared and installed
    return target, final


def untrained_checkpoint(
    path: str | Path, channels: int, arch: str = "yolo11n-obb.yaml", nc: int = 1
) -> Path:
    """Write randomly initialised weights in the ultralytics checkpoint format (no training, no download).

    For exercising loading and prediction (shapes, channels) where a trained model is beside the point.
    """
    _ultralytics()
    import torch
    from ultralytics.nn.tasks import DetectionModel, OBBModel

    cls = OBBModel if "obb" in arch else DetectionModel
    with contextlib.redirect_stdout(sys.stderr):
        model = cls(arch, ch=channels, nc=nc, verbose=False)
    model.names = {i: n for i, n in enumerate(("ship",) * nc)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.half(), "train_args": {"task": "obb" if "obb" in arch else "detect"}}, path)
    return path


def export_onnx(
    model_name_or_path: str | Path,
    out_path: str | Path,
    *,
    imgsz: int | None = None,
    opset: int = 17,
) -> Path:
    """Export weights to ONNX at ``out_path`` (dynamic batch, no NMS in the graph), offline.

    The graph holds the decoded head output ``(N, 4 + classes + 1 angle, anchors)``; confidence
    filtering and NMS are left to the caller (``detect.ships.onnx_runtime``). ``simplify=False`` because
    onnxslim is not a dependency and ultralytics would try to install it. The spec JSON is copied
    beside the ONNX file so ``OnnxYoloModel.load`` finds it.
    """
    pt, spec_path = resolve_weights(model_name_or_path)
    if not pt.is_file():
        raise ModelError(f"model weights {pt} not found (weights dir: {weights_dir()})")
    spec = ModelSpec.read(spec_path)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ul = _ultralytics()
    # ultralytics writes the .onnx beside the .pt: export a copy in a temp dir, not into weights/.
    with tempfile.TemporaryDirectory(prefix="harborwatch-onnx-") as tmp:
        src = Path(tmp) / pt.name
        shutil.copyfile(pt, src)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                made = ul.YOLO(str(src), task=spec.task).export(
                    format="onnx",
                    imgsz=imgsz or spec.imgsz,
                    opset=opset,
                    dynamic=True,
                    simplify=False,
                    half=False,
                    nms=False,
                    device="cpu",
                    verbose=False,
                )
        except Exception as e:
            raise ModelError(f"ONNX export of {pt} failed: {type(e).__name__}: {e}") from None
        from imagery.atomic import atomic_path

        with atomic_path(out) as part:
            shutil.move(str(made), part)
    spec.write(out.with_suffix(".json"))
    return out
