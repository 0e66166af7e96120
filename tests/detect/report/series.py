"""A small two-period run for the report tests: the real Genoa sample chip copied to dates in a baseline
and a later period, "detected" by its hand labels (fewer per day in the baseline, scores spread out so
some are low), with claims; offline and a few seconds."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from detect import pipeline
from imagery.aoi import aoi_from_bbox
from imagery.samples import list_samples
from tests.detect.pipeline.test_pipeline import LabelledVessels

SAMPLE = next(s for s in list_samples() if s.id.startswith("genoa"))
DAY = SAMPLE.datetime.date()
AOI = aoi_from_bbox(
    (SAMPLE.bbox[0] + 0.002, SAMPLE.bbox[1] + 0.002, SAMPLE.bbox[2] - 0.002, SAMPLE.bbox[3] - 0.002),
    name="genoa-series",
)
#: Period: the sample's day ± 3 (scenes on three of its days); baseline: a month earlier (scenes on three).
PERIOD = (DAY - timedelta(days=3), DAY + timedelta(days=3))
BASELINE = (DAY - timedelta(days=33), DAY - timedelta(days=27))
#: Scene dates and how many labelled ships each one "detects".
KEEP = {
    DAY - timedelta(days=2): 14,
    DAY: 16,
    DAY + timedelta(days=2): 15,
    BASELINE[0] + timedelta(days=1): 8,
    BASELINE[0] + timedelta(days=3): 10,
    BASELINE[0] + timedelta(days=5): 9,
}


def scene_id(day: date) -> str:
    return f"genoa-series-{day:%Y%m%d}"


class ThinnedLabels(LabelledVessels):
    """The sample's labels, the first ``KEEP[day]`` of them, with scores 0.30, 0.34, 0.38, ..."""

    def __call__(self, window, classes=("ship",), **kw):
        dets = super().__call__(window, classes=classes, **kw)
        day = window.acquired.date()
        return [replace(d, score=min(0.3 + 0.04 * i, 1.0)) for i, d in enumerate(dets[: KEEP.get(day, 0)])]


def make_scenes(root: Path) -> Path:
    """The sample as one scene per date of ``KEEP`` (a local source folder)."""
    meta = json.loads((SAMPLE.path.parent / "scene.json").read_text())
    for day in KEEP:
        sid = scene_id(day)
        (root / sid).mkdir(parents=True)
        shutil.copy(SAMPLE.path, root / sid / f"{sid}.tif")
        when = SAMPLE.datetime.replace(year=day.year, month=day.month, day=day.day)
        m = dict(meta, id=sid, datetime=when.isoformat().replace("+00:00", "Z"))
        (root / sid / "scene.json").write_text(json.dumps(m))
    return root


def claims_file(path: Path) -> Path:
    path.write_text(f"""
claims:
  - {{id: many, source: test, aoi: genoa-series, start: {PERIOD[0]}, end: {PERIOD[1]},
      metric: distinct_vessels_min, class: ship, value: 29, subject: cargo ships, min_length_m: 40}}
  - {{id: busy, source: test, aoi: genoa-series, start: {PERIOD[0]}, end: {PERIOD[1]},
      metric: max_simultaneous, class: ship, value: 5}}
""")
    return path


def run_series(tmp: Path, **kw) -> pipeline.RunResult:
    """The two-period run into ``tmp/run`` (scenes in ``tmp/scenes``)."""
    scenes = tmp / "scenes"
    if not scenes.exists():
        make_scenes(scenes)
    return pipeline.run(
        AOI,
        *PERIOD,
        out_dir=tmp / "run",
        source=f"local:{scenes}",
        method="baseline",
        progress=False,
        claims=claims_file(tmp / "claims.yaml"),
        baseline=BASELINE,
        steps=replace(pipeline.default_steps(), detect=ThinnedLabels()),
        **kw,
    )
