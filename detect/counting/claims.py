"""Reference claims (a tracker's or a report's numbers) and how a run's counts bear on them.

A verdict is ``consistent``, ``inconsistent`` or ``cannot tell``, always with the reasons: how many
days of the claim's period were seen, what the detector can and cannot see, and what imagery
cannot know at all (flag, owner, cargo).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import yaml

from detect.counting.aggregate import ALL_ZONE
from detect.counting.visits import VisitParams, VisitSummary, estimate_visits
from imagery.errors import InputError

METRICS = ("distinct_vessels_min", "max_simultaneous", "vessel_days")
COMPARISONS = (">=", "<=")
VERDICTS = ("consistent", "inconsistent", "cannot tell")
_METRIC_ALIASES = {"distinct_vessels": "distinct_vessels_min"}
#: What a Sentinel-2 optical count never tells, whatever the claim.
STANDING_LIMITS = (
    "one snapshot per overpass at about 10:30 local solar time: vessels that arrive and leave between "
    "overpasses are never seen",
    "ships shorter than about 40 m are not reliably detected (small craft are unlabelled in the "
    "training data)",
    "imagery shows hulls, not flags, owners or cargo: a count bounds how many vessels of any nationality "
    "were there; it cannot confirm that they were the vessels a claim names",
)


@dataclass(frozen=True)
class Claim:
    """One published number about vessel activity at an AOI over a period."""

    id: str
    source: str
    aoi: str
    start: date
    end: date
    metric: str
    value: float
    comparison: str = ">="
    class_name: str = "ship"
    zone: str = ALL_ZONE
    url: str = ""
    subject: str = ""  # what the claim counts, in words ("North Korean cargo ships")
    min_length_m: float | None = None  # count only detections at least this long
    notes: str = ""
    references: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise InputError(
                f"claim {self.id!r}: unknown metric {self.metric!r}; allowed: {', '.join(METRICS)}"
            )
        if self.comparison not in COMPARISONS:
            raise InputError(
                f"claim {self.id!r}: unknown comparison {self.comparison!r}; "
                f"allowed: {', '.join(COMPARISONS)}"
            )
        if self.end < self.start:
            raise InputError(f"claim {self.id!r}: end {self.end} is before start {self.start}")

    @property
    def text(self) -> str:
        subject = self.subject or f"{self.class_name}s"
        what = {
            "distinct_vessels_min": f"distinct {subject}",
            "max_simultaneous": f"{subject} at one time",
            "vessel_days": f"vessel-days of {subject}",
        }[self.metric]
        where = self.aoi if self.zone == ALL_ZONE else f"{self.aoi} ({self.zone})"
        return f"{self.comparison} {self.value:g} {what} at {where}, {self.start} – {self.end}"


@dataclass(frozen=True)
class ClaimVerdict:
    claim: Claim
    verdict: str  # one of VERDICTS
    lower: int | None  # what the imagery shows at least (None: nothing seen)
    upper: int | None  # what the imagery allows at most (None: no upper bound)
    days_in_period: int
    days_observed: int
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["claim"] = {
            **asdict(self.claim),
            "start": self.claim.start.isoformat(),
            "end": self.claim.end.isoformat(),
            "text": self.claim.text,
        }
        d["claim"]["class"] = d["claim"].pop("class_name")
        d["reasons"] = list(self.reasons)
        return d


class RunTables(Protocol):
    """What :func:`compare` needs from a run (``pipeline.RunResult`` has it)."""

    aoi_name: str
    detections: pd.DataFrame
    daily_counts: pd.DataFrame


# --------------------------------------------------------------------------- loading


def load_claims(path: str | Path) -> tuple[Claim, ...]:
    """Read a claims YAML file: a list of claims, or a mapping with a ``claims`` list.

    A bare name such as ``longkou-2018`` names a claims file bundled with harborwatch.
    """
    path = Path(path)
    bundled = bundled_claims_dir() / f"{path.name}.yaml"
    if not path.exists() and path.suffix == "" and bundled.is_file():
        path = bundled
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        names = ", ".join(p.stem for p in sorted(bundled_claims_dir().glob("*.yaml")))
        raise InputError(f"no such claims file: {path} (bundled claims: {names})") from None
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None  # one line
    items = doc.get("claims") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise InputError(f"{path}: expected a list of claims (or a mapping with a 'claims' list)")
    return tuple(claim_from_dict(item, where=f"{path}[{i}]") for i, item in enumerate(items))


_REQUIRED = ("id", "source", "aoi", "start", "end", "metric", "value")
_OPTIONAL = ("comparison", "class", "zone", "url", "subject", "min_length_m", "notes", "references")


def claim_from_dict(item: Any, where: str = "claim") -> Claim:
    if not isinstance(item, dict):
        raise InputError(f"{where}: a claim must be a mapping, got {type(item).__name__}")
    missing = [k for k in _REQUIRED if k not in item]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(item) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise InputError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_REQUIRED + _OPTIONAL)}"
        )
    try:
        value = float(item["value"])
        min_len = None if item.get("min_length_m") is None else float(item["min_length_m"])
    except (TypeError, ValueError):
        raise InputError(f"{where}: value and min_length_m must be numbers") from None
    if not all(math.isfinite(x) for x in (value, 0.0 if min_len is None else min_len)):
        raise InputError(f"{where}: value and min_length_m must be finite numbers (no .nan or .inf)")
    return Claim(
        id=str(item["id"]),
        source=str(item["source"]),
        aoi=_aoi_name(str(item["aoi"])),
        start=_date(item["start"], where, "start"),
        end=_date(item["end"], where, "end"),
        metric=_METRIC_ALIASES.get(str(item["metric"]), str(item["metric"])),
        value=value,
        comparison=str(item.get("comparison", ">=")),
        class_name=str(item.get("class", "ship")),
        zone=str(item.get("zone", ALL_ZONE)),
        url=str(item.get("url", "")),
        subject=str(item.get("subject", "")),
        min_length_m=min_len,
        notes=str(item.get("notes", "")).strip(),
        references=tuple(str(r) for r in item.get("references", []) or []),
    )


def _date(v: Any, where: str, name: str) -> date:
    if isinstance(v, datetime):  # YAML reads "2018-05-01 10:00:00" as a timestamp: its UTC day
        return (v.astimezone(timezone.utc) if v.tzinfo else v).date()
    if isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v))
    except ValueError:
        raise InputError(f"{where}: {name} {v!r} is not a date (YYYY-MM-DD)") from None


def bundled_claims_dir() -> Path:
    """Folder of the example claims shipped with the package."""
    return Path(__file__).resolve().parents[1] / "data" / "claims"


# --------------------------------------------------------------------------- comparing


def compare(
    claims: Sequence[Claim], results: RunTables, *, params: VisitParams | None = None
) -> list[ClaimVerdict]:
    """A verdict per claim from a run's detections and daily counts."""
    return [compare_one(c, results, params=params) for c in claims]


def compare_one(claim: Claim, results: RunTables, *, params: VisitParams | None = None) -> ClaimVerdict:
    summary, days_in_period, why_not = _claim_visits(claim, results, params)
    if summary is None:
        return _cannot(claim, days_in_period, 0, why_not)
    if why_not:  # the run covers part of the claim's period: its counts are floors, never an upper bound
        v = judge(claim, summary, claim_days=days_in_period)
        return replace(v, reasons=(why_not, *v.reasons))
    return judge(claim, summary)


def claim_summary(
    claim: Claim, results: RunTables, *, params: VisitParams | None = None
) -> VisitSummary | None:
    """Visit estimates over exactly the claim's period, zone, class and lengths (what its verdict is judged
    on; the claims chart draws them), or None where the run cannot give them."""
    return _claim_visits(claim, results, params)[0]


def _claim_visits(
    claim: Claim, results: RunTables, params: VisitParams | None
) -> tuple[VisitSummary | None, int, str]:
    """(visit estimates or None, days in the claim's period, why there are none)."""
    daily = results.daily_counts
    if claim.aoi != results.aoi_name:
        return None, 0, f"the run is for AOI {results.aoi_name!r}, the claim for {claim.aoi!r}"
    in_claim = daily[(daily["date"] >= claim.start) & (daily["date"] <= claim.end)]
    days_in_period = (claim.end - claim.start).days + 1
    run_days = set(in_claim["date"])
    if not run_days:
        return None, days_in_period, f"the run covers none of the claim's days {claim.start} – {claim.end}"
    partly = (
        f"the run covers {len(run_days)} of the claim's {days_in_period} days, so its counts bound the claim "
        f"from below only; rerun over {claim.start} – {claim.end} for the rest"
        if len(run_days) < days_in_period
        else ""
    )
    if claim.zone not in set(in_claim["zone"]) or claim.class_name not in set(in_claim["class"]):
        return (
            None,
            days_in_period,
            f"the run has no counts for zone {claim.zone!r} and class {claim.class_name!r}",
        )
    summary, _ = estimate_visits(
        results.detections,
        in_claim,
        zone=claim.zone,
        class_name=claim.class_name,
        params=params,
        min_length_m=claim.min_length_m,
    )
    return summary, days_in_period, partly


def _aoi_name(text: str) -> str:
    """A claim's AOI as runs name it: a ``bbox:`` AOI written as typed (``37.9330``) takes the name
    ``imagery.aoi.aoi_from_bbox`` gives the same box (``37.933``), and a GeoJSON file (the path given to
    ``--aoi``) its AOI's name, so the claim meets its run; any other text is matched as written."""
    path = Path(text)
    if text.startswith("bbox:"):
        spec = text[len("bbox:") :]
    elif path.suffix.lower() in (".geojson", ".json") and path.is_file():
        spec = text
    else:
        return text
    from imagery.aoi import get_aoi

    try:
        return get_aoi(spec).name
    except ValueError:  # not an AOI after all: kept as written, and matched as written
        return text


def judge(claim: Claim, s: VisitSummary, *, claim_days: int | None = None) -> ClaimVerdict:
    """The verdict from visit estimates over the claim's period (``claim_days``: its length, where the
    estimates cover only part of it: then they give no upper bound)."""
    days = s.days_in_period if claim_days is None else claim_days
    within = "" if days == s.days_in_period else " within the run's days"
    coverage = (
        f"{s.days_observed} of {days} days seen ({s.days_fully_observed} in full; longest "
        f"run without a clear view{within}: {s.longest_unobserved_run_days} days)"
    )
    reasons = [coverage]
    if s.days_observed == 0:
        return _verdict(
            claim, "cannot tell", None, None, s, (*reasons, "no day of the period was seen clearly"), days
        )
    # An upper bound needs every day seen in full; a partial day's count is itself only a floor.
    complete = s.days_fully_observed == days
    if claim.metric == "distinct_vessels_min":
        lower = s.distinct_min
        # Every vessel present at some overpass is sighted at least once, so with every day seen the
        # number of sightings caps the number of distinct vessels (visits shorter than a day excepted).
        upper = s.vessel_days if complete else None
        reasons.append(
            f"at least {lower} distinct vessels seen (max {s.max_simultaneous} at once on "
            f"{s.max_simultaneous_date}; {s.stays} stays linked across revisits)"
        )
    elif claim.metric == "max_simultaneous":
        lower = s.max_simultaneous
        upper = s.max_simultaneous if complete else None
        reasons.append(
            f"at most {s.max_simultaneous} at once on any observed day ({s.max_simultaneous_date})"
        )
    else:
        lower = s.vessel_days
        upper = s.vessel_days if complete else None
        reasons.append(f"{s.vessel_days} vessel-days on observed days")
    if claim.min_length_m is not None:
        reasons.append(
            f"only detections ≥ {claim.min_length_m:g} m counted, as the claim is about such vessels"
        )

    v = claim.value
    if claim.comparison == ">=":
        if lower is not None and lower >= v:
            verdict = "consistent"
            reasons.append(f"the imagery shows at least {lower} ≥ {v:g}")
        elif upper is not None and upper < v:
            verdict = "inconsistent"
            reasons.append(
                f"every day was seen and even counting every sighting as a new vessel gives {upper} < {v:g}"
            )
        else:
            verdict = "cannot tell"
            reasons.append(
                f"the imagery shows at least {lower}, fewer than {v:g}, but days not seen in full and "
                "visits between overpasses could hold the rest"
                if not complete
                else f"the imagery shows {lower} to {upper}, which straddles {v:g}"
            )
    else:  # "<="
        if lower is not None and lower > v:
            verdict = "inconsistent"
            reasons.append(f"the imagery already shows at least {lower} > {v:g}")
        elif upper is not None and upper <= v:
            verdict = "consistent"
            reasons.append(f"every day was seen and the imagery allows at most {upper} ≤ {v:g}")
        else:
            verdict = "cannot tell"
            reasons.append(
                f"the imagery shows at least {lower} ≤ {v:g}, but days not seen in full (unobserved, "
                "partial, or without a cloud mask) leave no upper bound"
            )
    if claim.subject:
        reasons.append(
            f"the claim is about {claim.subject}; imagery cannot tell nationality, so the count "
            "bounds vessels of every flag and can only bound the claim, not confirm it"
        )
    return _verdict(claim, verdict, lower, upper, s, tuple(reasons), days)


def _verdict(
    claim: Claim,
    verdict: str,
    lower: int | None,
    upper: int | None,
    s: VisitSummary,
    reasons: tuple[str, ...],
    days: int,
) -> ClaimVerdict:
    return ClaimVerdict(
        claim=claim,
        verdict=verdict,
        lower=lower,
        upper=upper,
        days_in_period=days,
        days_observed=s.days_observed,
        reasons=reasons,
    )


def _cannot(claim: Claim, days: int, observed: int, why: str) -> ClaimVerdict:
    return ClaimVerdict(
        claim=claim,
        verdict="cannot tell",
        lower=None,
        upper=None,
        days_in_period=days,
        days_observed=observed,
        reasons=(why,),
    )
