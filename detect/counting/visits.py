"""Visits: link detections across revisits into stays, and bound how many distinct vessels were seen.

Optical imagery cannot identify a vessel; two sightings are linked only by position and length.
The distinct-vessel *lower bound* uses no linking at all: it needs only that one vessel cannot be
in two places at once, and that its measured length changes by less than the length tolerance.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from pyproj import Geod

_GEOD = Geod(ellps="WGS84")
STAY_COLUMNS = ("stay", "first_date", "last_date", "n_sightings", "span_days", "lon", "lat", "length_m")


@dataclass(frozen=True)
class VisitParams:
    """How close two sightings on consecutive observed days must be to count as one stay."""

    max_distance_m: float = 150.0
    #: Lengths match when |a - b| <= length_tolerance × max(a, b).
    length_tolerance: float = 0.25

    def lengths_match(self, a: float, b: float) -> bool:
        return abs(a - b) <= self.length_tolerance * max(a, b)

    def assumptions(self) -> tuple[str, ...]:
        tol = f"{self.length_tolerance:.0%}"
        return (
            "a vessel cannot be in two places at one overpass, so each day's count is a floor on "
            "distinct vessels",
            f"a vessel's measured length varies by at most {tol} between overpasses, so sightings "
            f"whose lengths differ by more are different vessels (distinct-vessel lower bound)",
            f"a stay links sightings on consecutive observed days within {self.max_distance_m:.0f} m and "
            f"{tol} in length; a vessel that leaves and returns between overpasses is one stay, two vessels "
            "swapping one berth between overpasses are also one stay (stays are an estimate, not a bound)",
            "vessels that arrive and leave between two overpasses are never seen; the lower bound ignores "
            "them, which is why it is a lower bound",
        )


@dataclass(frozen=True)
class VisitSummary:
    """Visit estimates for one zone and class over a period."""

    zone: str
    class_name: str
    days_in_period: int
    days_observed: int  # observed or partial
    days_fully_observed: int  # status observed: the count is the count
    max_simultaneous: int | None
    max_simultaneous_date: date | None
    distinct_min: int | None
    vessel_days: int | None  # sum of daily counts over observed/partial days (itself a floor)
    stays: int | None
    mean_stay_sightings: float | None
    longest_unobserved_run_days: int
    assumptions: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["class"] = d.pop("class_name")
        d["max_simultaneous_date"] = (
            self.max_simultaneous_date.isoformat() if self.max_simultaneous_date else None
        )
        d["assumptions"] = list(self.assumptions)
        return d


def length_groups(lengths: Sequence[float], params: VisitParams) -> np.ndarray:
    """Group index per length: sorted lengths split wherever neighbours do not match.

    Because the match test depends only on the ratio of the two lengths, two lengths in different
    groups never match, so they are certainly different vessels.
    """
    arr = np.asarray(lengths, dtype=float)
    groups = np.zeros(len(arr), dtype=int)
    if len(arr) == 0:
        return groups
    order = np.argsort(arr, kind="stable")
    g = 0
    for prev, cur in itertools.pairwise(order):
        if not params.lengths_match(arr[prev], arr[cur]):
            g += 1
        groups[cur] = g
    return groups


def distinct_lower_bound(sightings: pd.DataFrame, params: VisitParams) -> int:
    """Fewest distinct vessels that explain the sightings (columns ``date``, ``length_m``).

    Sum over length groups of the largest number of same-group sightings on one day: within a group
    each day's sightings are different vessels; across groups no vessel can appear twice.
    """
    if sightings.empty:
        return 0
    groups = length_groups(sightings["length_m"].to_numpy(), params)
    per_day = pd.DataFrame({"g": groups, "date": sightings["date"].to_numpy()}).value_counts()
    return int(per_day.groupby(level="g").max().sum())


def link_stays(sightings: pd.DataFrame, observed_days: Sequence[date], params: VisitParams) -> pd.Series:
    """Stay id per sighting: a sighting continues a stay last seen on the previous observed day.

    Greedy in order of distance; each stay takes at most one sighting per day.
    """
    stay = pd.Series(-1, index=sightings.index, dtype=int)
    observed_days = list(observed_days)
    prev_day_of = dict(zip(observed_days, [None, *observed_days[:-1]], strict=False))
    open_stays: dict[int, tuple[date, float, float, float]] = {}  # stay -> (last day, lon, lat, length)
    next_id = 0
    for day in observed_days:
        today = sightings[sightings["date"] == day]
        prev = prev_day_of[day]
        candidates = {s: v for s, v in open_stays.items() if v[0] == prev}
        pairs = []
        for idx, r in today.iterrows():
            for s, (_, lon, lat, length) in candidates.items():
                _, _, dist = _GEOD.inv(lon, lat, r["lon"], r["lat"])
                if dist <= params.max_distance_m and params.lengths_match(length, r["length_m"]):
                    pairs.append((dist, idx, s))
        taken_idx, taken_stay = set(), set()
        for _, idx, s in sorted(pairs, key=lambda p: p[0]):
            if idx in taken_idx or s in taken_stay:
                continue
            stay[idx] = s
            taken_idx.add(idx)
            taken_stay.add(s)
        for idx, r in today.iterrows():
            if stay[idx] < 0:
                stay[idx] = next_id
                next_id += 1
            open_stays[int(stay[idx])] = (day, float(r["lon"]), float(r["lat"]), float(r["length_m"]))
    return stay


def stays_table(sightings: pd.DataFrame, stay: pd.Series) -> pd.DataFrame:
    """One row per stay: first/last day seen, sightings, median position and length."""
    if sightings.empty:
        return pd.DataFrame(columns=list(STAY_COLUMNS))
    df = sightings.assign(stay=stay.to_numpy())
    out = (
        df.groupby("stay")
        .agg(
            first_date=("date", "min"),
            last_date=("date", "max"),
            n_sightings=("date", "size"),
            lon=("lon", "median"),
            lat=("lat", "median"),
            length_m=("length_m", "median"),
        )
        .reset_index()
    )
    out["span_days"] = [(b - a).days + 1 for a, b in zip(out["first_date"], out["last_date"], strict=True)]
    return out[list(STAY_COLUMNS)]


def longest_unobserved_run(daily_status: Sequence[str]) -> int:
    """Longest run of consecutive ``unobserved`` days."""
    best = run = 0
    for s in daily_status:
        run = run + 1 if s == "unobserved" else 0
        best = max(best, run)
    return best


def estimate_visits(
    detections: pd.DataFrame,
    daily: pd.DataFrame,
    *,
    zone: str,
    class_name: str,
    params: VisitParams | None = None,
    min_length_m: float | None = None,
) -> tuple[VisitSummary, pd.DataFrame]:
    """Stays and distinct-vessel bounds for one zone and class from a run's tables.

    Only the detections the daily table counted (the chosen scene of each observed or partial day,
    inside ``zone``) are used, so overlapping tiles are not double counted here either.
    """
    params = params or VisitParams()
    rows = daily[(daily["zone"] == zone) & (daily["class"] == class_name)].sort_values("date")
    seen = rows[rows["status"] != "unobserved"]
    chosen = dict(zip(seen["date"], seen["scene"], strict=True))
    sel = detections["class"] == class_name
    sel &= (
        detections["zones"].fillna("").str.split(";").apply(lambda zs: zone in zs) if len(detections) else sel
    )
    sel &= detections["scene"].isin(set(chosen.values()))
    if min_length_m is not None:
        sel &= detections["length_m"] >= min_length_m
    sightings = detections.loc[sel, ["scene", "date", "lon", "lat", "length_m"]]
    keep = [chosen.get(d) == s for d, s in zip(sightings["date"], sightings["scene"], strict=True)]
    sightings = sightings[np.array(keep, dtype=bool)]
    per_day = sightings.groupby("date").size().reindex(list(chosen), fill_value=0)

    stay = link_stays(sightings, list(chosen), params)
    stays = stays_table(sightings, stay)
    any_seen = len(chosen) > 0
    summary = VisitSummary(
        zone=zone,
        class_name=class_name,
        days_in_period=len(rows),
        days_observed=len(chosen),
        days_fully_observed=int((rows["status"] == "observed").sum()),
        max_simultaneous=int(per_day.max()) if any_seen else None,
        max_simultaneous_date=per_day.idxmax() if any_seen else None,
        distinct_min=distinct_lower_bound(sightings, params) if any_seen else None,
        vessel_days=int(per_day.sum()) if any_seen else None,
        stays=len(stays) if any_seen else None,
        mean_stay_sightings=float(stays["n_sightings"].mean()) if len(stays) else None,
        longest_unobserved_run_days=longest_unobserved_run(list(rows["status"])),
        assumptions=params.assumptions(),
    )
    return summary, stays
