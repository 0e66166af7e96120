"""Period against baseline ("did activity rise after X?"): per zone and class, the ratio of the mean daily
count over the days each period was seen, with a bootstrap interval that resamples days within each period.

Only days seen in full (``observed``, ``observed-unmasked``) enter the means: an unobserved day has no count
(never 0), and a partial day's count is a floor that would pull the mean of the cloudier period down.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from detect.counting.aggregate import ALL_ZONE, OBSERVED_UNMASKED

#: Day statuses whose count is the count (not a floor, not missing).
SEEN_IN_FULL = ("observed", OBSERVED_UNMASKED)
#: What a comparison reads: the interval lies above 1, below 1, straddles it, or there is too little to say.
READINGS = ("higher", "lower", "no clear change", "cannot tell")

#: What the ratio can and cannot show, whatever the numbers (the report lists these beside the table).
CAN_AND_CANNOT = (
    "It can show whether the mean number of vessels seen at the overpass differs between the two periods by "
    "more than the day-to-day spread of the days that were seen.",
    "It cannot show what happened on unobserved days, or between overpasses: each count is one snapshot a "
    "day at the satellite's hour, so a change in how long vessels stay looks the same as a change in how "
    "many come.",
    "It cannot say why: season, weather, berth works, a port closure or a change of cargo all move the same "
    "number, and nationality, owner or cargo cannot be read from imagery at all.",
    "A detector that misses the same share of vessels in both periods cancels out of the ratio; one whose "
    "misses change (other vessel sizes, more haze, Sentinel-1 filling one period and not the other) "
    "does not.",
    "The interval resamples days as if they were independent; a vessel that stays for several days makes "
    "neighbouring days alike, so the true uncertainty is wider than shown. With few observed days in either "
    "period the interval is wide, and with one day it cannot be drawn at all.",
)


@dataclass(frozen=True)
class BaselineParams:
    """How the interval is drawn: ``n_boot`` resamples, ``confidence`` level, ``seed`` (the same numbers
    on every rerun); ``few_days``: fewer seen days than this in either period is flagged as few."""

    n_boot: int = 2000
    confidence: float = 0.95
    seed: int = 17
    few_days: int = 5


@dataclass(frozen=True)
class PeriodComparison:
    """One zone and class: the period's mean daily count against the baseline's."""

    zone: str
    class_name: str
    period_start: date
    period_end: date
    baseline_start: date
    baseline_end: date
    period_days: int  # days in the period
    baseline_days: int
    period_seen: int  # days seen in full: the days the mean is taken over
    baseline_seen: int
    period_partial: int  # partial days, left out of the mean
    baseline_partial: int
    period_mean: float | None
    baseline_mean: float | None
    ratio: (
        float | None
    )  # period mean / baseline mean; inf when the baseline mean is 0 and the period's is not
    ratio_low: float | None
    ratio_high: float | None
    difference: float | None  # period mean − baseline mean (vessels a day)
    difference_low: float | None
    difference_high: float | None
    confidence: float
    n_boot: int
    reading: str  # one of READINGS
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["class"] = d.pop("class_name")
        for k in ("period_start", "period_end", "baseline_start", "baseline_end"):
            d[k] = d[k].isoformat()
        for k in ("ratio", "ratio_low", "ratio_high"):  # JSON has no infinity: say so in words
            if d[k] is not None and math.isinf(d[k]):
                d[k] = "inf"
        d["reasons"] = list(self.reasons)
        return d


def compare_periods(
    daily: pd.DataFrame,
    baseline_daily: pd.DataFrame,
    *,
    params: BaselineParams | None = None,
) -> tuple[PeriodComparison, ...]:
    """One comparison per zone and class found in both daily tables (``agg.daily_counts`` rows; each table
    covers its period day by day), whole AOI first."""
    p = params or BaselineParams()
    keys = sorted(
        set(zip(daily["zone"], daily["class"], strict=True))
        & set(zip(baseline_daily["zone"], baseline_daily["class"], strict=True)),
        key=lambda k: (k[0] != ALL_ZONE, k[1], k[0]),
    )
    out = []
    for zone, cls in keys:
        a = daily[(daily["zone"] == zone) & (daily["class"] == cls)]
        b = baseline_daily[(baseline_daily["zone"] == zone) & (baseline_daily["class"] == cls)]
        out.append(compare_one_zone(a, b, zone=zone, class_name=cls, params=p))
    return tuple(out)


def compare_one_zone(
    period: pd.DataFrame, baseline: pd.DataFrame, *, zone: str, class_name: str, params: BaselineParams
) -> PeriodComparison:
    """The comparison for one zone and class from its rows of each period's daily table."""
    x, y = _seen_counts(period), _seen_counts(baseline)
    mx = float(x.mean()) if len(x) else None
    my = float(y.mean()) if len(y) else None
    ratio = _ratio(mx, my) if mx is not None and my is not None else None
    diff = mx - my if mx is not None and my is not None else None
    interval: dict[str, float | None] = dict.fromkeys(
        ("ratio_low", "ratio_high", "difference_low", "difference_high")
    )
    reasons = [
        f"period {_span(period)}: {len(x)} of {len(period)} days seen in full"
        + (
            f" ({_n_partial(period)} partial day(s) left out: their counts are floors)"
            if _n_partial(period)
            else ""
        )
        + (f", mean {mx:.2f} a day" if mx is not None else ""),
        f"baseline {_span(baseline)}: {len(y)} of {len(baseline)} days seen in full"
        + (
            f" ({_n_partial(baseline)} partial day(s) left out: their counts are floors)"
            if _n_partial(baseline)
            else ""
        )
        + (f", mean {my:.2f} a day" if my is not None else ""),
    ]
    if not len(x) or not len(y):
        reading = "cannot tell"
        reasons.append(f"no day of the {'period' if not len(x) else 'baseline'} was seen in full")
    elif len(x) < 2 or len(y) < 2:
        reading = "cannot tell"
        reasons.append("one seen day shows no day-to-day spread, so no interval can be drawn")
    else:
        interval = _bootstrap(x, y, params, seed=_seed(params.seed, zone, class_name))
        lo, hi = interval["ratio_low"], interval["ratio_high"]
        level = f"{params.confidence:.0%}"
        if lo is not None and lo > 1:
            reading = "higher"
            reasons.append(f"the {level} interval of the ratio, {_fmt(lo)}–{_fmt(hi)}, lies above 1")
        elif hi is not None and hi < 1:
            reading = "lower"
            reasons.append(f"the {level} interval of the ratio, {_fmt(lo)}–{_fmt(hi)}, lies below 1")
        else:
            reading = "no clear change"
            reasons.append(f"the {level} interval of the ratio, {_fmt(lo)}–{_fmt(hi)}, includes 1")
        if min(len(x), len(y)) < params.few_days:
            reasons.append(
                f"few days seen (fewer than {params.few_days} in a period): the interval is wide and "
                "itself uncertain"
            )
    if my == 0 and mx is not None and mx > 0:
        reasons.append("nothing was seen on the baseline's days: the ratio is infinite; read the difference")
    return PeriodComparison(
        zone=zone,
        class_name=class_name,
        period_start=min(period["date"]),
        period_end=max(period["date"]),
        baseline_start=min(baseline["date"]),
        baseline_end=max(baseline["date"]),
        period_days=len(period),
        baseline_days=len(baseline),
        period_seen=len(x),
        baseline_seen=len(y),
        period_partial=_n_partial(period),
        baseline_partial=_n_partial(baseline),
        period_mean=mx,
        baseline_mean=my,
        ratio=ratio,
        difference=diff,
        confidence=params.confidence,
        n_boot=params.n_boot,
        reading=reading,
        reasons=tuple(reasons),
        **interval,
    )


def comparison_table(comparisons: Sequence[PeriodComparison]) -> pd.DataFrame:
    """The comparisons as one row each (what baseline.csv holds and the report shows)."""
    rows = []
    for c in comparisons:
        rows.append(
            {
                "zone": c.zone,
                "class": c.class_name,
                "period": f"{c.period_start} – {c.period_end}",
                "period days seen": f"{c.period_seen}/{c.period_days}",
                "period mean": _fmt(c.period_mean, 2),
                "baseline": f"{c.baseline_start} – {c.baseline_end}",
                "baseline days seen": f"{c.baseline_seen}/{c.baseline_days}",
                "baseline mean": _fmt(c.baseline_mean, 2),
                "ratio": _fmt(c.ratio),
                f"ratio {c.confidence:.0%} interval": _interval(c.ratio_low, c.ratio_high),
                "difference a day": _fmt(c.difference, 2, sign=True),
                f"difference {c.confidence:.0%} interval": _interval(c.difference_low, c.difference_high, 2),
                "reading": c.reading,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- helpers


def _seen_counts(rows: pd.DataFrame) -> np.ndarray:
    seen = rows[rows["status"].isin(SEEN_IN_FULL) & rows["count"].notna()]
    return seen.sort_values("date")["count"].to_numpy(dtype=float)


def _n_partial(rows: pd.DataFrame) -> int:
    return int((rows["status"] == "partial").sum())


def _span(rows: pd.DataFrame) -> str:
    return f"{min(rows['date'])} – {max(rows['date'])}" if len(rows) else "(empty)"


def _ratio(a: np.ndarray | float, b: np.ndarray | float) -> Any:
    """a / b, with 0 / 0 read as 1 (nothing in either: no change) and x / 0 as infinity."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(b > 0, a / np.where(b > 0, b, 1.0), np.where(a > 0, np.inf, 1.0))
    return float(r) if r.ndim == 0 else r


def _seed(seed: int, zone: str, class_name: str) -> int:
    """A seed per zone and class, the same on every run and machine (``hash`` of a str is salted)."""
    return seed * 1_000_003 + zlib.crc32(f"{zone}|{class_name}".encode())


def _bootstrap(x: np.ndarray, y: np.ndarray, p: BaselineParams, *, seed: int) -> dict[str, float | None]:
    """Percentile interval of the ratio and the difference of means, resampling days with replacement within
    each period (so each period keeps its own number of seen days)."""
    rng = np.random.default_rng(seed)
    mx = x[rng.integers(0, len(x), size=(p.n_boot, len(x)))].mean(axis=1)
    my = y[rng.integers(0, len(y), size=(p.n_boot, len(y)))].mean(axis=1)
    tail = (1 - p.confidence) / 2
    ratio_lo, ratio_hi = _percentiles(_ratio(mx, my), tail)
    diff_lo, diff_hi = _percentiles(mx - my, tail)
    return {
        "ratio_low": ratio_lo,
        "ratio_high": ratio_hi,
        "difference_low": diff_lo,
        "difference_high": diff_hi,
    }


def _percentiles(values: np.ndarray, tail: float) -> tuple[float, float]:
    """Order statistics at ``tail`` and ``1 - tail`` (works with infinite values, unlike interpolation)."""
    v = np.sort(values)
    n = len(v)
    lo = v[min(n - 1, math.floor(tail * n))]
    hi = v[max(0, math.ceil((1 - tail) * n) - 1)]
    return float(lo), float(hi)


def _fmt(v: float | None, digits: int = 2, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "NA"
    if math.isinf(v):
        return "∞"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def _interval(lo: float | None, hi: float | None, digits: int = 2) -> str:
    if lo is None or hi is None:
        return "NA"
    return f"{_fmt(lo, digits)} – {_fmt(hi, digits)}"
