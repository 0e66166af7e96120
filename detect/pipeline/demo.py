"""The pipeline offline on the bundled sample chips (``harborwatch demo``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from detect.core.registry import DEFAULT_SHIP_METHOD
from detect.pipeline.result import RunResult
from detect.pipeline.runner import run
from detect.pipeline.steps import Steps

DEMO_DAYS_AROUND = 3


def demo(
    out_dir: str | Path = "harborwatch-demo",
    *,
    progress: bool = True,
    method: str = DEFAULT_SHIP_METHOD,
    steps: Steps | None = None,
    command: Sequence[str] | None = None,
) -> list[RunResult]:
    """The pipeline offline on the bundled real Sentinel-2 sample chips: one run per sample, over a week
    around its date (so the days without imagery show as unobserved), from the local source."""
    from imagery.aoi import aoi_from_bbox
    from imagery.samples import list_samples, sample_dir

    results = []
    for sample in list_samples():
        west, south, east, north = sample.bbox
        # Inset the box a little: the chip's lon/lat bbox re-projected to UTM overhangs the chip's corners.
        dx, dy = (east - west) * 0.04, (north - south) * 0.04
        area = aoi_from_bbox((west + dx, south + dy, east - dx, north - dy), name=f"sample-{sample.id}")
        area = replace(
            area, description=f"bundled sample {sample.id} ({sample.city}), real Sentinel-2 L2A chip"
        )
        day = sample.datetime.date()
        around = timedelta(days=DEMO_DAYS_AROUND)
        results.append(
            run(
                area,
                day - around,
                day + around,
                out_dir=Path(out_dir) / sample.id,
                source=f"local:{sample_dir()}",
                classes=("ship",),
                method=method,
                progress=progress,
                steps=steps,
                command=command,
            )
        )
    return results
