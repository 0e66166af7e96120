"""Training the Sentinel-2 vessel model: chips per city, leave-cities-out cross-validation, final model.

Every step is resumable: a city whose chips exist, or a fold whose weights exist, is not redone.
Run as ``harborwatch train ships`` (or ``python -m detect.ships.train``, the same command).
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from detect.core.bands import RGBN, default_normalisation
from detect.core.weights import ModelSpec, sha256_file
from detect.ships.dataset import (
    CLASS_NAMES,
    ChipConfig,
    band_key,
    build_chips,
    cities_with_bands,
    coco_cities,
    load_coco,
    write_data_yaml,
)
from detect.ships.model import TrainConfig, YoloModel, train_yolo, write_model
from imagery.atomic import atomic_write_json
from imagery.errors import InputError
from imagery.read import normalise_band_name

log = logging.getLogger(__name__)

DEFAULT_NAME = "ships-s2"
FOLD_SEED = 20231216  # fixed: fold membership must not change between runs


@dataclass(frozen=True)
class TrainPlan:
    """Everything that defines a training run (written to ``plan.json`` in the output folder)."""

    data: str
    out: str
    bands: tuple[str, ...] = RGBN
    cv: int = 5
    name: str = DEFAULT_NAME
    gamma: float = 0.5
    chips: ChipConfig = field(default_factory=ChipConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    final: bool = True  # also train the final model on every city
    cities: tuple[str, ...] = ()  # restrict to these cities (default: every city in the COCO file)
    only_folds: tuple[int, ...] = ()  # run just these folds (default: all); fold membership is unchanged
    #: Tile size written to the spec for inference. The network is fully convolutional and objects keep
    #: their pixel scale (gsd_m), so it may exceed the training chip size (fewer, larger tiles predict
    #: faster); on fold 0, 128 px tiles scored better than 256 px for a model trained on 128 px chips.
    infer_imgsz: int = 128
    #: A finished run (output folder of an earlier ``detect.ships.train`` with the same bands and folds) whose
    #: fold and final weights this run starts from: more epochs without redoing the first ones. Each
    #: fold starts from the weights that saw the same training cities, so no held-out city leaks in.
    init_from: str = ""

    def __post_init__(self) -> None:
        if self.cv == 1 or self.cv < 0:
            raise InputError(f"--cv must be 0 (no cross-validation) or at least 2, got {self.cv}")
        if self.chips.size != self.train.imgsz:
            raise InputError(f"chip size {self.chips.size} must equal imgsz {self.train.imgsz}")

    @property
    def chip_dir(self) -> Path:
        return Path(self.out) / "chips" / f"{band_key(self.bands)}-{self.chips.size}"


def make_folds(cities: Sequence[str], k: int, seed: int = FOLD_SEED) -> list[list[str]]:
    """Cities shuffled with a fixed seed and dealt round-robin into ``k`` folds (sorted within a fold)."""
    if k < 2 or k > len(cities):
        raise InputError(f"cannot make {k} folds from {len(cities)} cities")
    order = sorted(cities)
    random.Random(seed).shuffle(order)
    return [sorted(order[i::k]) for i in range(k)]


def _spec(plan: TrainPlan, name: str, metrics: dict[str, Any] | None = None) -> ModelSpec:
    return ModelSpec(
        name=name,
        task="obb" if "obb" in plan.train.arch else "detect",
        bands=tuple(plan.bands),
        imgsz=plan.infer_imgsz,
        gsd_m=10.0,
        normalisation=default_normalisation(plan.bands, plan.gamma),
        class_names=CLASS_NAMES,
        metrics=metrics or {},
    )


def init_weights(plan: TrainPlan, folds: Sequence[Sequence[str]], fold: int | None) -> Path | None:
    """The weights fold ``fold`` (None: the final model) starts from, under ``plan.init_from``.

    Refuses a run whose fold membership differs from this one's (its fold weights would have been
    trained on cities this fold holds out), or whose bands, normalisation or architecture differ (the
    weights would not fit, or would load only in part).
    """
    if not plan.init_from:
        return None
    src = Path(plan.init_from)
    try:
        prior = json.loads((src / "cv.json").read_text())
        bands = tuple(prior["bands"])
        held = [sorted(f["held_out"]) for f in prior["folds"]]
        prior_train = dict(prior.get("train") or {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(f"--init-from {src}: no readable cv.json of a training run ({e})") from None
    if bands != tuple(plan.bands):
        raise InputError(f"--init-from {src} was trained on {list(bands)}, not {list(plan.bands)}")
    # Another architecture would load only the layers that happen to match: effectively from scratch.
    if prior_train.get("arch", plan.train.arch) != plan.train.arch:
        raise InputError(f"--init-from {src} is a {prior_train['arch']} run, this one {plan.train.arch}")
    plan_json = src / "plan.json"
    if plan_json.is_file():
        try:
            gamma = json.loads(plan_json.read_text()).get("gamma")
        except (OSError, ValueError, AttributeError):
            gamma = None
        if gamma is not None and float(gamma) != plan.gamma:
            raise InputError(f"--init-from {src} normalised with gamma {gamma}, this run {plan.gamma}")
    if fold is not None and held != [sorted(f) for f in folds]:
        raise InputError(f"--init-from {src} has different folds; its weights saw this run's held-out cities")
    if fold is None:
        pt = src / "final" / f"{plan.name}.pt"
    else:
        pt = src / f"fold{fold}" / f"{plan.name}-fold{fold}.pt"
    if not pt.is_file():
        raise InputError(f"--init-from {src}: {pt} not found")
    return pt


def train_on(
    plan: TrainPlan,
    train_cities: Sequence[str],
    val_cities: Sequence[str],
    run_dir: Path,
    name: str,
    extra: dict[str, Any] | None = None,
    init: Path | None = None,
) -> tuple[Path, ModelSpec]:
    """Train one model on ``train_cities``'s chips; writes ``run_dir/<name>.pt`` + spec. Skips if present."""
    pt, spec_path = run_dir / f"{name}.pt", run_dir / f"{name}.json"
    if pt.is_file() and spec_path.is_file():
        log.info("%s exists, skipping", pt)
        if init is not None:
            log.warning("%s was already trained: --init-from does not apply to it", pt)
        model = YoloModel.load(str(pt))
        return pt, model.spec
    chip_dir = plan.chip_dir
    yaml_path = write_data_yaml(
        run_dir / "data.yaml",
        [chip_dir / c for c in train_cities],
        [chip_dir / c for c in (val_cities or train_cities[:1])],
        channels=len(plan.bands),
    )
    t0 = time.monotonic()
    cfg = replace(plan.train, init=str(init)) if init else plan.train
    trained = train_yolo(yaml_path, run_dir, cfg)
    seconds = time.monotonic() - t0
    info = {
        "train_cities": list(train_cities),
        "val_cities": list(val_cities),
        "epochs": plan.train.epochs,
        "chip_px": plan.train.imgsz,
        "train_seconds": round(seconds, 1),
        "device": plan.train.device,
        **({"init": {"weights": str(init), "sha256": sha256_file(init)}} if init else {}),
        **(extra or {}),
    }
    return write_model(trained, _spec(plan, name, {"training": info}), run_dir)


def run(plan: TrainPlan) -> dict[str, Any]:
    """Build chips, run the leave-cities-out folds and the final model; returns (and writes) ``cv.json``."""
    out = Path(plan.out)
    out.mkdir(parents=True, exist_ok=True)
    coco = load_coco(Path(plan.data) / "annotations_coco.json")
    all_cities = list(plan.cities) or sorted(coco_cities(coco))
    cities, dropped = cities_with_bands(plan.data, all_cities, plan.bands)
    for city, missing in dropped.items():
        log.warning("%s lacks %s: left out of the %s model", city, ",".join(missing), band_key(plan.bands))
    if not cities:
        raise InputError(f"no city in {plan.data} has all of {','.join(plan.bands)}")
    folds = make_folds(cities, plan.cv) if plan.cv else []
    # Every starting point (--init-from) is found and checked before chips are cut or anything trains.
    to_run = [i for i in range(len(folds)) if not plan.only_folds or i in plan.only_folds]
    starts = {i: init_weights(plan, folds, i) for i in to_run}
    final_start = init_weights(plan, folds, None) if plan.final else None
    atomic_write_json(out / "plan.json", asdict(plan))
    chips = build_chips(
        plan.data,
        cities,
        plan.bands,
        default_normalisation(plan.bands, plan.gamma),
        plan.chip_dir,
        plan.chips,
    )
    report: dict[str, Any] = {
        "bands": list(plan.bands),
        "cities": cities,
        "dropped_cities": dropped,
        "fold_seed": FOLD_SEED,
        "folds": [{"fold": i, "held_out": f} for i, f in enumerate(folds)],
        "chips": chips,
        "train": asdict(plan.train),
    }
    atomic_write_json(out / "cv.json", report)
    for i, held in enumerate(folds):
        if i not in starts:
            if (out / f"fold{i}" / f"{plan.name}-fold{i}.pt").is_file():
                report["folds"][i]["weights"] = str(out / f"fold{i}" / f"{plan.name}-fold{i}.pt")
            continue
        train_cities = [c for c in cities if c not in held]
        log.info("fold %d/%d: held out %s", i + 1, len(folds), ", ".join(held))
        pt, spec = train_on(
            plan, train_cities, held, out / f"fold{i}", f"{plan.name}-fold{i}", init=starts[i]
        )
        report["folds"][i].update(weights=str(pt), train_seconds=spec.metrics["training"]["train_seconds"])
        atomic_write_json(out / "cv.json", report)
    if plan.final:
        pt, spec = train_on(plan, cities, [], out / "final", plan.name, init=final_start)
        report["final"] = {
            "weights": str(pt),
            "sha256": spec.sha256,
            "train_seconds": spec.metrics["training"]["train_seconds"],
        }
        atomic_write_json(out / "cv.json", report)
    return report


def parse_bands(text: str) -> tuple[str, ...]:
    bands = tuple(normalise_band_name(b) for b in text.split(",") if b.strip())
    if not bands:
        raise InputError("--bands needs at least one band, e.g. B04,B03,B02,B08")
    return bands


def make_plan(
    data: str | Path,
    out: str | Path,
    *,
    bands: Sequence[str] = RGBN,
    cv: int = 5,
    epochs: int = 50,
    imgsz: int = 128,
    device: str = "cpu",
    batch: int = 8,
    final: bool = True,
    arch: str = "yolo11n-obb.yaml",
    name: str = DEFAULT_NAME,
    cities: Sequence[str] = (),
    workers: int = 0,
    only_folds: Sequence[int] = (),
    infer_imgsz: int | None = None,
    init_from: str | Path = "",
) -> TrainPlan:
    """A ``TrainPlan`` from the few knobs the CLI exposes; inputs are checked here, before any work."""
    data = Path(data)
    if not (data / "annotations_coco.json").is_file():
        raise InputError(f"{data} has no annotations_coco.json (expected a sen2ships split folder)")
    if epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {epochs}")
    if imgsz < 32 or imgsz % 32:
        raise InputError(f"--imgsz must be a multiple of 32 (≥ 32), got {imgsz}")
    chips = replace(ChipConfig(), size=imgsz, stride=max(32, imgsz * 3 // 4))
    train = replace(
        TrainConfig(), arch=arch, epochs=epochs, imgsz=imgsz, device=device, batch=batch, workers=workers
    )
    if infer_imgsz is None:
        infer_imgsz = imgsz
    if infer_imgsz < imgsz or infer_imgsz % 32:
        raise InputError(f"--infer-imgsz must be a multiple of 32 and at least --imgsz, got {infer_imgsz}")
    return TrainPlan(
        data=str(data),
        out=str(out),
        bands=tuple(bands),
        cv=cv,
        name=name,
        chips=chips,
        train=train,
        final=final,
        cities=tuple(cities),
        only_folds=tuple(only_folds),
        infer_imgsz=infer_imgsz,
        init_from=str(init_from or ""),
    )


if __name__ == "__main__":  # the one definition of the options is the CLI's `harborwatch train ships`
    from detect.cli import main

    main(["train", "ships", *sys.argv[1:]])
