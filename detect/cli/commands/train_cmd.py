"""`harborwatch train`: build chips from sen2ships, cross-validate by city, train the final vessel model."""

from __future__ import annotations

import click

from detect.cli.app import cli, emit
from detect.ships.train import make_plan, parse_bands, run


@cli.command("train")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="sen2ships split folder: annotations_coco.json and one band folder per city.",
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
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda:0, ...")
@click.option(
    "--arch",
    default="yolo11n-obb.yaml",
    show_default=True,
    help="Ultralytics model yaml, trained from scratch (no pretrained weights needed).",
)
@click.option("--no-final", is_flag=True, help="Only run the cross-validation folds.")
@click.option(
    "--init-from",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Output folder of an earlier run (same bands and folds): each fold and the final model "
    "continue from its weights instead of starting from scratch.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON to stdout.")
def train_cmd(
    data: str,
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
    init_from: str | None,
    as_json: bool,
) -> None:
    """Train the Sentinel-2 vessel model (YOLO-OBB) on sen2ships, with leave-cities-out cross-validation.

    Score the folds on whole held-out scenes with `python benchmarks/ship_cv.py --cv-dir OUT`.
    """
    plan = make_plan(
        data,
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
