"""The segmentation model as a model soup: the element-wise mean of the final (all-city) models of branches of
one stem, batch norm re-estimated on every city, written with its spec. The branches are arms with
``from=STEM`` that ``seg_cv_parallel.py`` trained with ``--final ARM``; the spec's threshold is the median of
the soup's CV fold thresholds and its metrics that CV's summary (``seg_cv_rescore.py --soup`` over the same
arms' folds, every row scored), as ``harborwatch train ships-seg`` writes a trained model's spec.

    python benchmarks/seg_cv_parallel.py --cache SCENES --out RUN --arm s0:seed=0 --final s0 --stop-at 6000
    python benchmarks/seg_cv_parallel.py --cache SCENES --out RUN --arm c0:seed=0:from=s0 \\
        --arm c1:seed=1:from=s0 --final c0 --final c1
    python benchmarks/seg_cv_rescore.py --cv-dir RUN/c0 --soup RUN/c1 --out RUN/soup --step 7200
    python benchmarks/seg_soup_final.py --cache SCENES --run RUN --arms c0,c1 --cv RUN/soup \\
        --out OUT/ships-s2-seg.pt [--step 7200] [--precision bf16] [--data SEN2SHIPS_TRAINVAL]

Give the recipe the branches trained with (augmentation shares, precision): they are recorded in the spec and
draw the batch-norm crops. ``--cv`` is refused unless every fold's ``soup.json`` names the same branches'
weights at ``--step`` (by sha256) and every fold's ``result.json`` has every row (``VARIANTS``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    from _seg_cv import add_recipe_arguments, cv_inputs, recipe_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True, type=Path, help="the prepared scenes the branches trained on")
    ap.add_argument("--run", required=True, type=Path, help="seg_cv_parallel's --out: <arm>/final/")
    ap.add_argument("--arms", required=True, help="comma-separated branches whose final models are averaged")
    ap.add_argument("--cv", required=True, type=Path, help="the soup's CV (seg_cv_rescore.py --soup --out)")
    ap.add_argument("--out", required=True, type=Path, help="the model file to write (<name>.pt)")
    ap.add_argument("--step", type=int, default=7200, help="the branches' last cycle end")
    add_recipe_arguments(ap)
    ap.add_argument("--hard-negatives", type=float, default=0.2)
    ap.add_argument("--precision", default="fp32", help="the branches' training precision (recorded)")
    ap.add_argument("--seed", type=int, default=0, help="draws the batch-norm crops")
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)

    from detect.ships.segment_train import VARIANTS, mean_model, soup_provenance, summarise, write_model

    arms = [x for x in a.arms.split(",") if x]
    if len(set(arms)) != len(arms):
        ap.error("--arms: a branch is named twice")
    weights = [a.run / arm / "final" / f"cycle-{a.step:06d}.pt" for arm in arms]
    missing = [str(p) for p in weights if not p.is_file()]
    if missing:
        sys.exit(f"seg_soup_final: {', '.join(missing)} not found (seg_cv_parallel.py --final ARM)")
    if len(weights) < 2:
        ap.error("--arms: a soup needs two branches or more")
    data, plan, _ = cv_inputs("seg_soup_final", a.data, a.cache, a.threads)
    summary = summarise(a.cv, plan)
    if summary["folds_done"] != list(range(len(plan))):
        sys.exit(f"seg_soup_final: {a.cv} has folds {summary['folds_done']} scored, not all {len(plan)}")
    for k in range(len(plan)):
        problem = fold_problem(
            a.cv / f"fold{k}", [a.run / arm / f"fold{k}" for arm in arms], a.step, VARIANTS
        )
        if problem:
            sys.exit(f"seg_soup_final: {a.cv / f'fold{k}'}: {problem}")
    cities = sorted({c for part in plan[0].values() for c in part})  # every city: fold 0's three parts
    cfg = recipe_config(
        a,
        steps=a.step,
        p_hard=a.hard_negatives,
        precision=a.precision,
        seed=a.seed,
    )
    model = mean_model(weights, a.cache, cities, cfg)
    soup = soup_provenance(weights, [f"{arm}/final/{p.name}" for arm, p in zip(arms, weights, strict=True)])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    pt = write_model(model, a.out, data, cities, cfg, summary, training=soup)
    print(f"{pt}: mean of {len(weights)} final models; spec {pt.with_suffix('.json')}")
    return 0


def fold_problem(scored: Path, branches: list[Path], step: int, rows) -> str | None:
    """Why a soup CV's fold cannot stand for the soup of ``branches`` (their ``cycle-<step>.pt``): its
    ``soup.json`` (``seg_cv_rescore.py --soup``) names other weights, or its ``result.json`` lacks one of
    ``rows``. None when it can."""
    from detect.core.weights import sha256_file

    rec = scored / "soup.json"
    if not rec.is_file():
        return "no soup.json: not scored by seg_cv_rescore.py --soup"
    want = sorted(
        sha256_file(b / f"cycle-{step:06d}.pt") for b in branches if (b / f"cycle-{step:06d}.pt").is_file()
    )
    if len(want) != len(branches) or sorted(json.loads(rec.read_text()).get("sha256", [])) != want:
        return f"its soup is not of these branches' folds at step {step} (soup.json)"
    missing = [r for r in rows if r not in json.loads((scored / "result.json").read_text())["variants"]]
    if missing:
        return f"no {', '.join(missing)} rows (score it without --variants)"
    return None


if __name__ == "__main__":
    raise SystemExit(main())
