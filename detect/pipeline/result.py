"""What a run produced (``RunResult``): its tables and the files of its folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from detect.counting import aggregate as agg
from detect.counting.baseline import PeriodComparison
from detect.counting.claims import ClaimVerdict
from detect.counting.visits import VisitSummary
from imagery.aoi import Aoi


@dataclass(frozen=True, eq=False)
class RunResult:
    """Everything a run produced: its tables (pandas) and the files in ``out_dir``."""

    aoi: Aoi
    start: date
    end: date
    classes: tuple[str, ...]
    out_dir: Path
    detections: pd.DataFrame
    scenes: pd.DataFrame
    coverage: pd.DataFrame
    daily_counts: pd.DataFrame
    visits: tuple[VisitSummary, ...]
    stays: pd.DataFrame
    verdicts: tuple[ClaimVerdict, ...]
    paths: dict[str, Path] = field(default_factory=dict)
    #: Sensors searched: ``S2`` and/or ``S1``.
    sensors: tuple[str, ...] = ("S2",)
    #: With a baseline period: its daily table (same columns) and the period against it per zone and class.
    baseline_daily: pd.DataFrame | None = None
    baseline: tuple[PeriodComparison, ...] = ()

    @property
    def aoi_name(self) -> str:
        return self.aoi.name

    def daily(self, zone: str = agg.ALL_ZONE, class_name: str | None = None) -> pd.DataFrame:
        """The daily table for one zone and class (default: the whole AOI, the first class)."""
        cls = class_name or self.classes[0]
        d = self.daily_counts
        return d[(d["zone"] == zone) & (d["class"] == cls)].reset_index(drop=True)

    @property
    def every_scene_failed(self) -> bool:
        """Scenes were found and none could be processed: the work failed, though its outputs are written
        (every day unobserved)."""
        return bool(len(self.scenes)) and bool((self.scenes["status"] == "failed").all())

    def _dark_counted(self) -> dict[str, int] | None:
        """{"dark": n, "of": m} over the whole AOI's ship counts on days AIS could assess; None without."""
        d = self.daily_counts
        ships = d[(d["zone"] == "all") & (d["class"] == "ship") & d["dark_count"].notna()]
        if ships.empty:
            return None
        return {"dark": int(ships["dark_count"].sum()), "of": int(ships["count"].sum())}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``harborwatch run --json`` prints)."""
        status = self.scenes["status"].value_counts().to_dict()
        dark = self.detections["dark"]
        daily = self.daily_counts.copy()
        daily["date"] = daily["date"].map(lambda d: d.isoformat())
        daily = daily.astype(object).where(daily.notna(), None)
        return {
            "aoi": self.aoi.name,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "classes": list(self.classes),
            "sensors": list(self.sensors),
            "out_dir": str(self.out_dir),
            "scenes": {"total": len(self.scenes), **{str(k): int(v) for k, v in status.items()}},
            "scenes_by_sensor": {str(k): int(v) for k, v in self.scenes["sensor"].value_counts().items()},
            "scenes_without_class": agg.unobserved_class_counts(self.scenes),
            # every scene's detections, a day's second scene (not counted that day) included
            "detections": len(self.detections),
            "dark_detections": int(dark.sum()) if dark.notna().any() else None,
            # as the report says it: ship detections of the scenes the daily counts use, whole AOI
            "dark_in_daily_counts": self._dark_counted(),
            "daily_counts": daily.to_dict("records"),
            "visits": [v.to_dict() for v in self.visits],
            "claims": [v.to_dict() for v in self.verdicts],
            "baseline": [c.to_dict() for c in self.baseline],
            "files": {k: str(p) for k, p in self.paths.items()},
        }
