"""`harborwatch train ships|ships-seg|trucks`: the one definition of the training options.

``ships``: build chips from sen2ships, cross-validate by city, train the final vessel model (also what a
bare ``harborwatch train --data ...`` runs). ``trucks``: simulate trucks on sen2ships roads and fit the
truck classifier. ``python -m detect.ships.train`` and ``python -m detect.trucks.train`` run these commands.
"""

from __future__ import annotations

import logging

import click

from detect.cli.app import cli, emit
from detect.core.device import device_option
from detect.ships.train import make_plan, parse_bands, run
from imagery.errors import InputError

log = logging.getLogger(__name__)

TARGETS = ("ships", "ships-seg", "trucks")


def share_option(flag: str, help: str, most: float = 1.0):
    """A ``ships-seg`` augmentation share: a float in [0, ``most``], default 0 (off)."""
    return click.option(flag, type=click.FloatRange(0, most), default=0.0, show_default=True, help=help)


class _TrainGroup(click.Group):
    """``harborwatch train --data ...`` without a target trains the ship model, as before targets existed."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["ships", *args]
        return super().parse_args(ctx, args)


@cli.group("train", cls=_TrainGroup)
def train_group() -> None:
    """Train a model: `ships` (the Sentinel-2 vessel model) or `trucks` (the truck classifier)."""


@train_group.command("ships")
@click.option(
    "--data",
    "data",
    default=None,
    help="sen2ships split folder: annotations_coco.json and one band folder per city; "
    "default $HARBORWATCH_DATA/sen2ships/trainval.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder: chips/, fold<i>/, final/<name>.pt + .json, cv.json. Reruns resume.",
)
@click.option(
    "--cv",
    "cv",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Leave-cities-out folds (0 = train the final model only).",
)
@click.option(
    "--bands",
    "bands",
    default="B04,B03,B02,B08",
    show_default=True,
    help="Model input bands in channel order; cities lacking any are left out (and reported).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--infer-imgsz",
    type=click.IntRange(min=32),
    default=None,
    help="Inference tile size recorded in the spec (default: --imgsz).",
)
@click.option(
    "--imgsz",
    type=click.IntRange(min=32),
    default=128,
    show_default=True,
    help="Training chip size in pixels (multiple of 32).",
)
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--device", default="cpu", show_default=True, callback=device_option, help="cpu, cuda:0, ...")
@click.option(
    "--arch",
    default="yolo11n-obb.yaml",
    show_default=True,
    help="Ultralytics model yaml, trained from scratch (no pretrained weights needed).",
)
@click.option("--no-final", is_flag=True, help="Only run the cross-validation folds.")
@click.option("--cities", default="", help="Comma-separated subset of cities (default: all with the bands).")
@click.option("--folds", default="", help="Comma-separated fold numbers to run (default: all).")
@click.option(
    "--init-from",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Output folder of an earlier run (same bands and folds): each fold and the final model "
    "continue from its weights instead of starting from scratch.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON to stdout.")
def train_cmd(
    data: str | None,
    out: str,
    cv: int,
    bands: str,
    epochs: int,
    infer_imgsz: int | None,
    imgsz: int,
    batch: int,
    device: str,
    arch: str,
    no_final: bool,
    cities: str,
    folds: str,
    init_from: str | None,
    as_json: bool,
) -> None:
    """Train the Sentinel-2 vessel model (YOLO-OBB) on sen2ships, with leave-cities-out cross-validation.

    Score the folds on whole held-out scenes with `python benchmarks/ship_cv.py --cv-dir OUT`.
    """
    from detect.core.data import data_path

    plan = make_plan(
        str(data_path("sen2ships", data)),
        out,
        bands=parse_bands(bands),
        cv=cv,
        epochs=epochs,
        imgsz=imgsz,
        infer_imgsz=infer_imgsz,
        device=device,
        batch=batch,
        final=not no_final,
        arch=arch,
        cities=[c for c in cities.split(",") if c],
        only_folds=[int(f) for f in folds.split(",") if f.strip()],
        init_from=init_from or "",
    )
    report = run(plan)
    summary = {
        "bands": report["bands"],
        "cities": report["cities"],
        "dropped_cities": report["dropped_cities"],
        "folds": report["folds"],
        "final": report.get("final"),
    }
    lines = [f"bands {','.join(report['bands'])}; {len(report['cities'])} cities"]
    lines += [
        f"  left out (missing bands): {c} lacks {','.join(m)}" for c, m in report["dropped_cities"].items()
    ]
    lines += [
        f"  fold {f['fold']}: held out {', '.join(f['held_out'])} -> {f.get('weights', '-')}"
        for f in report["folds"]
    ]
    if report.get("final"):
        lines.append(f"final model: {report['final']['weights']} (sha256 {report['final']['sha256'][:12]}…)")
    emit(summary, as_json, "\n".join(lines))


@train_group.command("trucks")
@click.option(
    "--data",
    default=None,
    type=click.Path(file_okay=False),
    help="sen2ships root (with trainval/); default $HARBORWATCH_DATA/sen2ships.",
)
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder for trucks-s2.lgbm.txt and trucks-s2.json; needed to train (`--out weights` replaces the "
    "shipped model, so it is never the default).",
)
@click.option(
    "--cache", default="work-data/trucks", show_default=True, help="Scratch folder for decoded scenes."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Simulated copies per training city.",
)
@click.option(
    "--trucks",
    "n_trucks",
    type=click.IntRange(min=1),
    default=400,
    show_default=True,
    help="Trucks injected per copy.",
)
@click.option(
    "--num-rounds", type=click.IntRange(min=1), default=300, show_default=True, help="Boosting rounds."
)
@click.option(
    "--haze",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of the simulated copies seen through a random atmosphere (as Level-1C scenes are).",
)
@click.option(
    "--write-fixtures", metavar="DIR", default=None, help="Only cut the committed test chips into DIR."
)
@click.option(
    "--yolo", metavar="DIR", default=None, help="Instead: train the YOLO comparison model into DIR."
)
@click.option("--yolo-epochs", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--yolo-chips",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Chips per simulated scene copy.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON to stdout.")
def trucks_cmd(
    data: str | None,
    out: str | None,
    cache: str,
    seed: int,
    rounds: int,
    n_trucks: int,
    num_rounds: int,
    haze: float,
    write_fixtures: str | None,
    yolo: str | None,
    yolo_epochs: int,
    yolo_chips: int,
    as_json: bool,
) -> None:
    """Train the truck classifier (LightGBM on simulated trucks in sen2ships roads); see docs/trucks.md."""
    from detect.core.data import data_path
    from detect.trucks import train as truck_train  # LightGBM and the simulator load only for this command

    if out is None and not (yolo or write_fixtures):
        raise InputError("give --out DIR for the trained model (--out weights replaces the shipped one)")
    data = str(data_path("sen2ships-root", data))
    if yolo:
        written = [
            truck_train.yolo_experiment(
                data,
                yolo,
                cache_dir=cache,
                seed=seed,
                rounds=rounds,
                n_trucks=n_trucks,
                epochs=yolo_epochs,
                chips_per_scene=yolo_chips,
            )
        ]
    elif write_fixtures:
        written = truck_train.write_fixtures(data, write_fixtures)
    else:
        written = [
            truck_train.train_truck_model(
                data,
                str(out),
                cache_dir=cache,
                seed=seed,
                rounds=rounds,
                n_trucks=n_trucks,
                num_rounds=num_rounds,
                haze=haze,
            )
        ]
    emit({"written": [str(p) for p in written]}, as_json, "\n".join(f"wrote {p}" for p in written))


@train_group.command("ships-seg")
@click.option(
    "--data",
    "data",
    default=None,
    help="sen2ships split folder (annotations_coco.json + one band folder per city); "
    "default $HARBORWATCH_DATA/sen2ships/trainval.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder: scenes/, fold<i>/ (checkpoint, result.json), final/<name>.pt + .json. "
    "Reruns resume.",
)
@click.option(
    "--cv",
    "cv",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Leave-cities-out folds (0 = train the final model only).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=1200,
    show_default=True,
    help="Optimiser steps per model (batches of 16 random --crop px crops).",
)
@share_option("--paste", "Share of crops given copy-pasted real hulls on open water (rows side by side too).")
@click.option(
    "--restart-every",
    "cycle",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Cosine learning-rate cycle in steps (warm restarts); 0: one cycle over --steps. "
    "--steps 2400 --restart-every 1200 continues a finished 1200-step run's checkpoints.",
)
@share_option(
    "--haze", "Share of crops given thin haze (path radiance falling with wavelength, contrast lowered)."
)
@share_option(
    "--hull-colour",
    "Share of copy-pasted hulls repainted (independent gains per band: red, blue, black hulls).",
)
@share_option(
    "--wakes", "Share of single copy-pasted hulls given a foam wake behind them (not part of the hull)."
)
@share_option(
    "--quay-paste",
    "Share of copy-pasted hulls berthed along a quay or breakwater edge of the crop (long side along it, "
    "rows rafting outwards) instead of set on open water.",
)
@click.option(
    "--upsample",
    type=click.IntRange(1, 4),
    default=1,
    show_default=True,
    help="Train and detect on a grid this many times finer (2: 5 m pixels, bilinear); "
    "pair with --crop 192 to keep the crops' ground footprint.",
)
@click.option(
    "--crop",
    type=click.IntRange(min=32),
    default=96,
    show_default=True,
    help="Training crop size in model pixels.",
)
@click.option(
    "--base",
    type=click.IntRange(min=4),
    default=16,
    show_default=True,
    help="U-Net channels at full resolution (doubling per level).",
)
@click.option(
    "--depth",
    type=click.IntRange(2, 6),
    default=4,
    show_default=True,
    help="U-Net levels (each halves the resolution; 5 doubles the receptive field of 4).",
)
@click.option(
    "--encoder",
    type=click.Choice(["none", "efficientnet-b4"]),
    default="none",
    show_default=True,
    help="none: the plain U-Net (--base, --depth). efficientnet-b4: a U-Net on ukis-csmask's pretrained "
    "Sentinel-2 encoder (DLR, Apache-2.0), starting from its weights (needs the pretrained extra: "
    'pip install -e ".[pretrained]"; its trained weights run without it).',
)
@click.option(
    "--encoder-lr",
    type=click.FloatRange(0.0, 1.0),
    default=0.1,
    show_default=True,
    help="The pretrained encoder's learning rate as a share of the rest's (with --encoder).",
)
@click.option(
    "--ignore-unlabelled",
    is_flag=True,
    help="Leave small bright objects ringed by open water that carry no label (boats sen2ships did not "
    "label) out of the loss instead of teaching them as water.",
)
@share_option(
    "--hard-negatives",
    "Share of crops (of the 25 % drawn anywhere) centred on the model's own false ships in its training "
    "cities, mined from the checkpoint a run continues and at the start of each later cycle "
    "(--restart-every); a run from step 0 mines first at its second cycle.",
    most=0.25,
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="bf16: forward pass under bfloat16 autocast (weights and optimiser stay fp32); about 2x "
    "faster training steps on CPUs with AVX512-BF16 and on recent GPUs.",
)
@click.option(
    "--average-cycles",
    "average",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Each model is the mean of the weights at the ends of its last N learning-rate cycles "
    "(--restart-every; stochastic weight averaging), batch norm re-estimated on training crops; "
    "1: the last weights.",
)
@click.option(
    "--soup",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Each model is a model soup: the last learning-rate cycle (--restart-every) trained this many "
    "times from the run's checkpoint before it, with crops of seeds --seed, --seed+1, ..., and the "
    "weights averaged, batch norm re-estimated; 1: one run. The shipped model is 2, on the staged "
    "recipe in its model card (three calls).",
)
@click.option(
    "--eotdl",
    is_flag=True,
    help="Also train every model on the eotdl Kiel Bay chips whose label passed an eye check "
    "(detect/ships/eotdl_train.py; unlabelled objects afloat there are left out of the loss).",
)
@click.option(
    "--eotdl-data",
    type=click.Path(file_okay=False),
    default=None,
    help="The eotdl-s2-ships folder for --eotdl (default: $HARBORWATCH_DATA/eotdl-s2-ships).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the weights' initialisation and of the crops drawn (another seed: another run of the "
    "same recipe, to see how far runs differ).",
)
@click.option("--folds", default="", help="Comma-separated fold numbers to run (default: all).")
@click.option("--no-final", is_flag=True, help="Only run the cross-validation folds.")
@click.option(
    "--rescore", is_flag=True, help="Score finished folds again (their trained models) with this code."
)
@click.option(
    "--name",
    default=None,
    help="Name of the final weights (default ships-s2-seg; with --encoder, ships-s2-seg-b4, so a copy into "
    "weights/ never replaces one network by another).",
)
@click.option("--device", default="cpu", show_default=True, callback=device_option, help="cpu, cuda:0, ...")
@click.option("--json", "as_json", is_flag=True, help="Print the CV summary as JSON to stdout.")
def train_seg_cmd(
    data: str | None,
    out: str,
    cv: int,
    steps: int,
    paste: float,
    cycle: int,
    haze: float,
    hull_colour: float,
    wakes: float,
    quay_paste: float,
    upsample: int,
    crop: int,
    base: int,
    depth: int,
    encoder: str,
    encoder_lr: float,
    ignore_unlabelled: bool,
    hard_negatives: float,
    precision: str,
    average: int,
    soup: int,
    eotdl: bool,
    eotdl_data: str | None,
    seed: int,
    folds: str,
    no_final: bool,
    rescore: bool,
    name: str | None,
    device: str,
    as_json: bool,
) -> None:
    """Train the hull-segmentation ship model (`seg`; with --encoder `seg-b4`; `auto` runs both, averaged) on
    sen2ships, with leave-cities-out cross-validation; the final model's spec carries the CV metrics.

    Copy final/<name>.pt and .json into weights/ (or point $HARBORWATCH_WEIGHTS_DIR at final/) to use it
    with --method seg or seg-b4. The default detector (auto = the seg-ens ensemble) names its members by
    sha256 and refuses a retrained one until its spec is remade (README, "Development").
    """
    from pathlib import Path

    from detect.core.data import data_path
    from detect.ships.segment_train import (
        SegTrainConfig,
        cross_validate,
        encoder_problem,
        soup_problem,
        train_final,
    )

    if average > 1 and (not cycle or steps // cycle < average):
        raise click.BadParameter(
            f"averaging {average} cycles needs at least {average} of them: --restart-every R with "
            f"--steps >= {average} x R",
            param_hint="--average-cycles",
        )
    if eotdl_data and not eotdl:
        raise click.BadParameter(
            "is for --eotdl; add --eotdl to train on those chips", param_hint="--eotdl-data"
        )
    cfg = SegTrainConfig(
        steps=steps,
        p_paste=paste,
        p_haze=haze,
        p_colour=hull_colour,
        p_wake=wakes,
        p_quay=quay_paste,
        base=base,
        depth=depth,
        encoder="" if encoder == "none" else encoder,
        encoder_lr=encoder_lr,
        cycle=cycle,
        upsample=upsample,
        crop=crop,
        ignore_unlabelled=ignore_unlabelled,
        p_hard=hard_negatives,
        precision=precision,
        average=average,
        soup=soup,
        seed=seed,
        eotdl=eotdl,
    )
    problem = soup_problem(cfg)
    if problem:
        raise click.BadParameter(problem, param_hint="--soup")
    problem = encoder_problem(cfg)
    if problem:
        raise click.BadParameter(problem, param_hint="--encoder")
    name = name or ("ships-s2-seg-b4" if cfg.encoder else "ships-s2-seg")
    root = data_path("sen2ships", data)
    eotdl_root = data_path("eotdl-s2-ships", eotdl_data, "--eotdl-data") if eotdl else None
    only = [int(f) for f in folds.split(",") if f.strip()] or None
    summary = (
        cross_validate(
            root,
            Path(out),
            cfg,
            k=cv,
            device=device,
            folds=only,
            progress=log.info,
            rescore=rescore,
            eotdl=eotdl_root,
        )
        if cv
        else {}
    )
    lines = []
    if summary:
        for variant in ("default", "no_water", "B08", "rgb", "rgb8"):
            p = summary[variant]["pooled"]
            lines.append(
                f"{variant:6s} P {p['precision']} R {p['recall']} F1 {p['f1']} AP50 {p['ap50']} "
                f"length MAE {p['length_mae_m']} m  (folds {summary['folds_done']})"
            )
    result = {"cv": summary}
    if not no_final:
        pt = train_final(
            root, Path(out), cfg, summary, name, device=device, progress=log.info, eotdl=eotdl_root
        )
        result["final"] = str(pt)
        lines.append(f"final model: {pt}")
    emit(result, as_json, "\n".join(lines))
