"""Score other weights of trained cross-validation folds (``harborwatch train ships-seg``) exactly as training
scores a fold, into ``result.json`` files that ``benchmarks/ship_cv_seg.py`` tabulates: each fold's weights at
the end of an earlier learning-rate cycle (``--step``), the mean of its last K cycle ends (``--average K``,
batch norm re-estimated on the fold's training cities, as ``--average-cycles`` does in training), or the mean
of its weights at ``--step`` and those of other runs' same fold (``--soup RUN``, repeated: a "model soup" of
branches that ``benchmarks/seg_cv_parallel.py`` trained from one stem with ``from=``; batch norm re-estimated
likewise). Each fold's threshold is chosen again on its own two inner cities.

    python benchmarks/seg_cv_rescore.py --cv-dir RUNS/seg --out RUNS/seg-at2400 --step 2400
    python benchmarks/seg_cv_rescore.py --cv-dir RUNS/seg --out RUNS/seg-avg3 --step 7200 --average 3 \\
        --cycle 1200 [--paste 0.5 --hull-colour 0.5 --wakes 0.5] [--folds 0,1] [--data SEN2SHIPS_TRAINVAL]
    python benchmarks/seg_cv_rescore.py --cv-dir RUNS/c0 --soup RUNS/c1 --soup RUNS/c2 --out RUNS/soup3 \\
        --step 7200 [--variants default]
    python benchmarks/ship_cv_seg.py --cv-dir RUNS/seg-avg3 --cv-dir RUNS/seg --markdown

The folds need the ``cycle-<step>.pt`` files that training keeps at each cycle's end. Finished folds in
``--out`` are kept (a rerun resumes); ``--average`` keeps its averaged weights beside the fold's as
``model-avg<K>-<step>-<key>.pt`` (the key: a digest of the recipe given here), so give the run's own
augmentation shares, grid, crop and seed. ``--soup`` keeps each fold's mean weights as
``OUT/fold<k>/model.pt`` (read again on a rerun of the same runs and step; ``soup.json`` beside it names
them), so scripts that take a run's fold models can read a soup.
``--variants default`` scores only the shipped detector's row (every band a scene has), about half the time
of all five band-set rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    from _seg_cv import add_recipe_arguments, cv_inputs, recipe_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cv-dir", required=True, type=Path, help="a trained run: scenes/ and fold<k>/")
    ap.add_argument("--out", required=True, type=Path, help="where fold<k>/result.json go")
    ap.add_argument("--step", type=int, required=True, help="the cycle end to score (its step)")
    ap.add_argument("--average", type=int, default=1, help="mean of the last K cycle ends up to --step")
    ap.add_argument(
        "--soup",
        action="append",
        type=Path,
        default=[],
        help="another run (a branch of the same stem): its fold weights at --step join the mean",
    )
    ap.add_argument(
        "--variants", default=None, help="comma-separated rows to score (default: all of VARIANTS)"
    )
    add_recipe_arguments(ap)
    ap.add_argument("--quay-paste", type=float, default=0.0)
    ap.add_argument("--haze", type=float, default=0.0)
    ap.add_argument("--eotdl", action="store_true", help="the run trained with --eotdl")
    ap.add_argument("--upsample", type=int, default=1, help="the run's --upsample")
    ap.add_argument("--crop", type=int, default=None, help="the run's --crop (default 96 x --upsample)")
    ap.add_argument("--seed", type=int, default=0, help="the run's --seed")
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4, help="the run's U-Net levels")
    ap.add_argument("--encoder", default="none", choices=["none", "efficientnet-b4"], help="as trained")
    ap.add_argument("--encoder-lr", type=float, default=0.1, help="the run's --encoder-lr")
    ap.add_argument("--folds", default="0,1,2,3,4")
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)

    from detect.ships.segment import SegModel, SegSpec, seg_network
    from detect.ships.segment_train import VARIANTS, averaged_model, pool, score_fold
    from imagery.atomic import atomic_write_json
    from imagery.errors import InputError

    if a.soup and a.average > 1:
        ap.error("--soup and --average are two different means: give one")
    runs = [a.cv_dir, *a.soup]
    if len({r.resolve() for r in runs}) != len(runs):
        ap.error("--soup: a run is given twice (with --cv-dir or another --soup)")
    variants = a.variants.split(",") if a.variants else None
    if variants and (set(variants) - set(VARIANTS) or "default" not in variants):
        ap.error(f"--variants: a comma-separated subset of {', '.join(VARIANTS)} that includes default")
    cache = a.cv_dir / "scenes"
    data, plan, truth = cv_inputs("seg_cv_rescore", a.data, cache, a.threads)
    cfg = recipe_config(
        a,
        steps=a.step,
        base=a.base,
        depth=a.depth,
        encoder="" if a.encoder == "none" else a.encoder,
        encoder_lr=a.encoder_lr,
        p_quay=a.quay_paste,
        p_haze=a.haze,
        upsample=a.upsample,
        crop=a.crop or 96 * a.upsample,
        seed=a.seed,
        eotdl=a.eotdl,
        average=a.average,
    )
    extra = ["eotdl"] if a.eotdl else []
    for f in (int(x) for x in a.folds.split(",")):
        res_path = a.out / f"fold{f}" / "result.json"
        if res_path.is_file() and set(json.loads(res_path.read_text())["variants"]) >= set(
            variants or VARIANTS
        ):
            continue  # scored before with every row asked for now
        fd = a.cv_dir / f"fold{f}"
        try:
            if a.average > 1:
                net = averaged_model(cache, plan[f]["fit"] + extra, fd, cfg)
            elif a.soup:
                net = souped(a, f, cache, plan[f]["fit"] + extra, cfg)
            else:
                path = fd / f"cycle-{a.step:06d}.pt"
                if not path.is_file():
                    raise InputError(f"{path} not found (trained with --restart-every, to step {a.step}?)")
                net = seg_network(cfg.base, cfg.depth, cfg.encoder)
                net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except InputError as e:
            sys.exit(f"seg_cv_rescore: {e}")
        spec = SegSpec(name=f"fold{f}", base=a.base, depth=a.depth, gsd_m=cfg.gsd_m, encoder=cfg.encoder)
        seg = SegModel(net.eval(), spec)
        res = score_fold(seg, data, plan[f], truth, variants=variants)
        atomic_write_json(res_path, res)
        s = pool(list(res["variants"]["default"].values()))
        print(f"fold {f}: threshold {res['threshold']} P {s['precision']} R {s['recall']} F1 {s['f1']}")
    return 0


def souped(a: argparse.Namespace, f: int, cache: Path, cities: list[str], cfg: Any) -> torch.nn.Module:
    """Fold ``f``'s soup: the mean of ``--cv-dir``'s and every ``--soup`` run's ``cycle-<step>.pt``, batch
    norm re-estimated on ``cities``; kept as ``--out``'s ``fold<f>/model.pt``, read from there on a rerun."""
    from detect.ships.segment import seg_network
    from detect.ships.segment_train import mean_model, save_weights
    from imagery.atomic import atomic_write_json
    from imagery.errors import InputError

    kept = a.out / f"fold{f}" / "model.pt"
    weights = [run / f"fold{f}" / f"cycle-{a.step:06d}.pt" for run in [a.cv_dir, *a.soup]]
    missing = [str(p) for p in weights if not p.is_file()]
    if missing:
        raise InputError(f"{', '.join(missing)} not found (branches trained to step {a.step}?)")
    recipe = soup_record(weights, cities, cfg)
    if kept.is_file():
        rec = kept.parent / "soup.json"
        was = json.loads(rec.read_text()) if rec.is_file() else {}
        if {k: was.get(k) for k in SOUP_KEYS} != {k: recipe[k] for k in SOUP_KEYS}:
            raise InputError(
                f"{kept} is the mean of other weights or batch-norm crops ({rec}): use another --out"
            )
        net = seg_network(cfg.base, cfg.depth, cfg.encoder)
        net.load_state_dict(torch.load(kept, map_location="cpu", weights_only=True))
        return net
    net = mean_model(weights, cache, cities, cfg)
    kept.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(kept.parent / "soup.json", recipe)
    save_weights(net, kept)
    print(f"fold {f}: mean of {len(weights)} runs' weights at step {a.step}, batch norm re-estimated")
    return net


#: What makes a kept soup the one asked for: its ingredients' contents and its batch-norm crops.
SOUP_KEYS = ("sha256", "batch_norm")


def soup_record(weights: list[Path], cities: list[str], cfg: Any) -> dict[str, Any]:
    """``soup.json``: the ingredients (paths, sha256, in order) and what drew the batch-norm crops."""
    from detect.core.weights import sha256_file
    from detect.ships.segment_train import config_fields

    drawn = config_fields(cfg, without=("checkpoint_every", "precision", "steps"))
    return {
        "of": [str(p) for p in weights],
        "sha256": [sha256_file(p) for p in weights],
        "batch_norm": {"cities": sorted(cities), "config": drawn},
    }


if __name__ == "__main__":
    raise SystemExit(main())
