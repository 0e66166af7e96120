"""What the segmentation CV scripts (``seg_cv_rescore``, ``seg_cv_variants``, ``seg_oof_rescore``,
``seg_threshold_rules``, ``seg_bandset_thresholds``) start from: torch's thread count, the sen2ships
folder, and its folds and labelled vessels (``detect.ships.segment_train.cv_setup``); and, for the scripts
that compare several trained runs through cached per-fold records, their shared options, fold models and
record cache."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def cv_inputs(
    script: str, data: str | None, cache: Path, threads: int = 1
) -> tuple[Path, list, dict[str, Any]]:
    """(sen2ships folder from ``data`` or ``$HARBORWATCH_DATA``, fold plan, labelled vessels per city), the
    scenes prepared in ``cache``; a one-line exit naming ``script`` when the data set is not found."""
    import torch

    from detect.core.data import data_path
    from detect.ships.segment_train import cv_setup
    from imagery.errors import InputError

    torch.set_num_threads(threads)
    try:
        root = data_path("sen2ships", data)
    except InputError as e:
        sys.exit(f"{script}: {e}")
    _, plan, truth = cv_setup(root, cache)
    return root, plan, truth


def add_recipe_arguments(ap: argparse.ArgumentParser) -> None:
    """The augmentation recipe a trained run used (v6's by default), for scripts that re-estimate batch norm
    on its crops (drawn as it trained) and record it: ``recipe_config`` makes the config."""
    ap.add_argument("--cycle", type=int, default=1200, help="the run's --restart-every")
    ap.add_argument("--paste", type=float, default=0.5, help="crops for batch-norm statistics: as trained")
    ap.add_argument("--hull-colour", type=float, default=0.5)
    ap.add_argument("--wakes", type=float, default=0.5)


def recipe_config(a: argparse.Namespace, **fields: Any) -> Any:
    """A ``SegTrainConfig`` of ``add_recipe_arguments``' options, with ``fields`` for the rest."""
    from detect.ships.segment_train import SegTrainConfig

    return SegTrainConfig(cycle=a.cycle, p_paste=a.paste, p_colour=a.hull_colour, p_wake=a.wakes, **fields)


def add_run_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of a script that compares trained runs through per-fold records cached in ``--cache``."""
    ap.add_argument(
        "--cv-dir",
        action="append",
        required=True,
        type=Path,
        help="a run: fold<k>/model.pt, or a folder whose ensemble.json lists runs (paths relative to it) "
        "whose fold models' probabilities are averaged",
    )
    ap.add_argument("--cache", required=True, type=Path, help="where each fold's records are kept")
    ap.add_argument("--folds", default="0,1,2,3,4")
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=1)


def run_inputs(
    script: str, ap: argparse.ArgumentParser, a: argparse.Namespace
) -> tuple[Path, list, dict[str, Any], list[int]]:
    """``cv_inputs`` for ``add_run_arguments``' options (scenes prepared under ``--cache``), and the folds
    asked for; refuses two runs with one folder name, since records are cached and tabulated by it."""
    if len({r.name for r in a.cv_dir}) != len(a.cv_dir):
        ap.error("two --cv-dir share a folder name: records are cached and tabulated by it")
    data, plan, truth = cv_inputs(script, a.data, a.cache / "scenes", a.threads)
    return data, plan, truth, [int(x) for x in a.folds.split(",")]


def fold_model(run: Path, f: int) -> Any:
    """Fold ``f``'s trained model of ``run`` (``fold<f>/model.pt``) as a ``SegModel`` on CPU (torch); for a
    folder with ``ensemble.json`` (``{"members": [run, ...]}``, paths relative to the folder), the members'
    fold models as one ``SegEnsemble``."""
    import json

    import torch

    from detect.ships.segment import SegEnsemble, SegModel, SegSpec, network_for

    if (run / "ensemble.json").is_file():
        members = json.loads((run / "ensemble.json").read_text())["members"]
        return SegEnsemble([fold_model(run / m, f) for m in members], SegSpec(name=f"fold{f}"))

    state = torch.load(run / f"fold{f}" / "model.pt", map_location="cpu", weights_only=True)
    net = network_for(state)  # any width, depth or encoder the run trained
    net.load_state_dict(state)
    return SegModel(net.eval(), SegSpec(name=f"fold{f}"))


def read_records(path: Path) -> Any:
    """Cached records as written (``atomic_write_json``): JSON keeps a threshold key as text ("0.95"); every
    dict whose keys are all thresholds gets them back as floats."""

    def back(obj: Any) -> Any:
        if isinstance(obj, dict):
            try:
                return {float(k): back(v) for k, v in obj.items()} if obj else {}
            except ValueError:
                return {k: back(v) for k, v in obj.items()}
        return obj

    return back(json.loads(path.read_text()))
