"""Does a scene's band set need its own score threshold? Compared over several trained CV runs of the
segmentation model (inference only; water check on, as shipped).

Training picks one threshold per fold, on its two inner cities read with all their bands. A scene with fewer
bands (Los Angeles: B08 B11; Santos: no B02; a user's B08-only or true-colour file) is then scored at that
threshold, although the model's scores shift when bands are missing. Here each fold also picks a threshold
per band group on the same inner cities read as that group (``GROUPS``):

- ``full`` (B02 B03 B04 B08 present): read with every band the inner cities have, i.e. training's own choice,
  even where an inner city lacks a band;
- ``nir`` (B08 without all of true colour): read as B08 B11, also for the B08-only row;
- ``rgb`` (true colour without B08): read as B02 B03 B04.

A group none of whose inner cities has its bands keeps ``full``'s threshold. Each held-out scene is then
scored at the threshold of its own group, and the band-set rows of the CV (``B08``, ``rgb``, ``rgb8``: every
held-out city read with those bands only) at the ``nir``, ``rgb`` and ``rgb`` thresholds. Records at every
threshold are cached in ``--cache``, so a rerun only re-tabulates.

    python benchmarks/seg_bandset_thresholds.py --cv-dir RUN/c0 --cv-dir RUN/c1 --cache RUN/bst [--folds 0,1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detect.ships.segment import SEG_BANDS, TRUE_COLOUR  # noqa: E402
from detect.ships.segment_train import VARIANTS, best_threshold, pool  # noqa: E402

#: Band groups and how a fold's inner cities are read to choose each group's threshold.
GROUPS = {
    "full": VARIANTS["default"],
    "nir": {"bandset": ("B08", "B11"), "water": True},
    "rgb": {"bandset": TRUE_COLOUR, "water": True},
}
#: The CV's held-out variants and the group whose threshold each is scored at.
HELD = {"default": None, "B08": "nir", "rgb": "rgb", "rgb8": "rgb"}


def group_of(bands: set[str] | list[str] | tuple[str, ...]) -> str:
    """``full`` where B02 B03 B04 and B08 are all there, ``nir`` where B08 is, else ``rgb``."""
    have = set(bands)
    if {*TRUE_COLOUR, "B08"} <= have:
        return "full"
    return "nir" if "B08" in have else "rgb"


def fold_records(run: Path, f: int, fold: dict, data: Path, truth: dict, cache: Path) -> dict:
    """{"inner": {group: {t: records}}, "held": {variant: {t: records}}, "held_groups": [group per scored
    held-out city]} of one fold model, from the cache when it is there."""
    from _seg_cv import fold_model, read_records

    from detect.ships.dataset import available_bands
    from detect.ships.segment_train import detect_cities, records_by_threshold
    from imagery.atomic import atomic_write_json

    path = cache / run.name / f"fold{f}.json"
    if path.is_file():
        return read_records(path)
    seg = fold_model(run, f)
    out: dict = {"inner": {}, "held": {}}
    for g, variant in GROUPS.items():
        out["inner"][g] = records_by_threshold(detect_cities(seg, data, fold["inner"], variant, truth))
    for name in HELD:
        found = detect_cities(seg, data, fold["held_out"], VARIANTS[name], truth)
        out["held"][name] = records_by_threshold(found)
        if name == "default":
            out["held_groups"] = [
                group_of([b for b in SEG_BANDS if b in available_bands(data, c)]) for c in found
            ]
    atomic_write_json(path, out)
    return out


def score_run(recs: dict[int, dict]) -> dict[str, dict[str, dict]]:
    """Per held-out variant: pooled scores at training's one threshold (``one``) and at the band group's
    threshold (``group``); and the thresholds chosen per fold and group (``chosen``)."""
    chosen = {}
    for f, r in recs.items():
        full = best_threshold(r["inner"]["full"])[0]
        # a group with no inner city readable as it (every record list empty) keeps the full-band threshold
        chosen[f] = {
            g: best_threshold(r["inner"][g])[0] if any(r["inner"][g].values()) else full for g in GROUPS
        }
    rows: dict[str, dict[str, dict]] = {}
    for name, group in HELD.items():
        one, by_group = [], []
        for f, r in recs.items():
            one += r["held"][name][chosen[f]["full"]]
            if group is None:  # each scene at its own group's threshold
                for i, g in enumerate(r["held_groups"]):
                    by_group.append(r["held"][name][chosen[f][g]][i])
            else:
                by_group += r["held"][name][chosen[f][group]]
        rows[name] = {"one": pool(one), "group": pool(by_group)}
    rows["chosen"] = chosen  # type: ignore[assignment]
    return rows


def main(argv: list[str] | None = None) -> int:
    from _seg_cv import add_run_arguments, run_inputs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(ap)
    a = ap.parse_args(argv)
    data, plan, truth, folds = run_inputs("seg_bandset_thresholds", ap, a)
    scores = {}
    for run in a.cv_dir:
        scores[run.name] = score_run({f: fold_records(run, f, plan[f], data, truth, a.cache) for f in folds})
    runs = [r.name for r in a.cv_dir]
    print(f"\nPooled held-out F1 (P / R) per run, folds {a.folds}: one threshold per fold against one per")
    print("band group, each chosen on the fold's inner cities read as that group\n")
    print("| held-out input | threshold | " + " | ".join(runs) + " | mean |")
    print("|---" * (len(runs) + 3) + "|")
    for name, group in HELD.items():
        own = "its band group's" if group is None else group
        for how, label in (("one", "training's one"), ("group", own)):
            cells = [scores[r][name][how] for r in runs]
            text = " | ".join(f"{c['f1']:.3f} ({c['precision']:.2f} / {c['recall']:.2f})" for c in cells)
            print(f"| {name} | {label} | {text} | {statistics.mean(c['f1'] for c in cells):.3f} |")
    print("\nThresholds chosen per fold (full / nir / rgb):")
    for r in runs:
        ch = scores[r]["chosen"]
        print(f"- {r}: " + "; ".join(" / ".join(str(ch[f][g]) for g in GROUPS) for f in folds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
