"""Claims: the YAML format, the bundled Longkou claim, and each of the three verdicts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import pandas as pd
import pytest

from detect.counting.claims import Claim, bundled_claims_dir, compare, load_claims
from imagery.errors import InputError

START = date(2018, 5, 1)


@dataclass
class Tables:
    aoi_name: str
    detections: pd.DataFrame
    daily_counts: pd.DataFrame


def tables(per_day: list[list[float] | None], aoi: str = "longkou-port") -> Tables:
    """A run over len(per_day) days: None = unobserved, else the lengths of the ships seen that day."""
    det, daily = [], []
    for i, lengths in enumerate(per_day):
        day = START + timedelta(days=i)
        scene = f"s{i}" if lengths is not None else ""
        daily.append(
            dict(
                date=day,
                zone="all",
                status="unobserved" if lengths is None else "observed",
                scene=scene,
                count=None if lengths is None else len(lengths),
                **{"class": "ship"},
            )
        )
        for k, length in enumerate(lengths or []):
            det.append(
                dict(
                    date=day,
                    scene=scene,
                    lon=120.2 + 0.01 * k,
                    lat=37.65,
                    length_m=length,
                    zones="all",
                    **{"class": "ship"},
                )
            )
    cols = ["date", "scene", "lon", "lat", "length_m", "zones", "class"]
    return Tables(aoi, pd.DataFrame(det, columns=cols), pd.DataFrame(daily))


def claim(
    value: float, metric: str = "distinct_vessels_min", comparison: str = ">=", days: int = 4, **kw
) -> Claim:
    return Claim(
        id="c",
        source="test",
        aoi="longkou-port",
        start=START,
        end=START + timedelta(days=days - 1),
        metric=metric,
        value=value,
        comparison=comparison,
        **kw,
    )


def test_consistent_when_the_floor_reaches_the_claim():
    # lengths 50, 100, 200 never match each other: 3 distinct vessels at least
    t = tables([[50, 100], None, [200], [100]])
    (v,) = compare([claim(3)], t)
    assert v.verdict == "consistent"
    assert v.lower == 3 and v.upper is None
    assert (v.days_in_period, v.days_observed) == (4, 3)


def test_inconsistent_when_every_day_was_seen_and_even_all_sightings_fall_short():
    t = tables([[100], [100], [100, 120], [110]])
    (v,) = compare([claim(29)], t)
    assert v.verdict == "inconsistent"
    assert v.upper == 5 and v.lower == 2
    assert any("every day was seen" in r for r in v.reasons)


def test_cannot_tell_when_unobserved_days_could_hold_the_rest():
    t = tables([[100], None, [100, 120], [110]])
    (v,) = compare([claim(29, subject="North Korean cargo ships")], t)
    assert v.verdict == "cannot tell"
    assert v.upper is None
    assert any("3 of 4 days" in r for r in v.reasons)
    assert any("cannot tell nationality" in r for r in v.reasons)


def test_max_simultaneous_and_vessel_days_and_at_most_claims():
    t = tables([[100, 60], [100], [100, 60, 200], [110]])
    verdicts = compare(
        [
            claim(3, metric="max_simultaneous"),
            claim(8, metric="vessel_days"),
            claim(2, metric="max_simultaneous", comparison="<="),
            claim(5, metric="max_simultaneous", comparison="<="),
        ],
        t,
    )
    assert [v.verdict for v in verdicts] == ["consistent", "inconsistent", "inconsistent", "consistent"]


def test_min_length_filters_detections_for_the_claim():
    t = tables([[20, 20, 100], [100], [100], [100]])
    (v,) = compare([claim(2, metric="max_simultaneous", min_length_m=40)], t)
    assert v.verdict == "inconsistent" and v.lower == 1


def test_a_run_over_part_of_the_claim_bounds_it_from_below_only():
    # two of the claim's four days, one ship seen each day: a floor of 1 distinct vessel meets ">= 1" (a
    # batch's periods split a claim's period across jobs), never an upper bound for "<=" or ">= 5"
    t = tables([[100], [100]])
    (met,) = compare([claim(1)], t)
    assert met.verdict == "consistent" and "covers 2 of the claim's 4 days" in met.reasons[0]
    assert met.days_in_period == 4 and met.upper is None
    assert "2 of 4 days seen" in met.reasons[1]
    assert "without a clear view within the run's days" in met.reasons[1]
    (short,) = compare([claim(5)], t)
    assert short.verdict == "cannot tell" and "from below only" in short.reasons[0]
    (at_most,) = compare([claim(5, comparison="<=")], t)
    assert at_most.verdict == "cannot tell" and "leave no upper bound" in at_most.reasons[-1]
    (over,) = compare([claim(0, comparison="<=")], t)
    assert over.verdict == "inconsistent"  # the floor already passes what the claim allows
    later = replace(claim(1), start=START + timedelta(days=10), end=START + timedelta(days=12))
    (none,) = compare([later], t)
    assert none.verdict == "cannot tell" and "covers none of the claim's days" in none.reasons[0]
    (other,) = compare([claim(1, days=2)], tables([[100], [100]], aoi="nampo-port"))
    assert other.verdict == "cannot tell" and "nampo-port" in other.reasons[0]


def test_bundled_longkou_claim_loads():
    claims = load_claims(bundled_claims_dir() / "longkou-2018.yaml")
    assert load_claims("longkou-2018") == claims  # a bundled file by name
    w = next(c for c in claims if c.id == "windward-longkou-2018")
    assert (w.aoi, w.start, w.end, w.metric, w.value, w.comparison) == (
        "longkou-port",
        date(2018, 5, 1),
        date(2018, 6, 30),
        "distinct_vessels_min",
        29,
        ">=",
    )
    assert "North Korean" in w.subject and w.references
    assert "Windward" in w.source


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("claims: 3", "expected a list"),
        (
            "- {id: a, source: s, aoi: x, start: 2018-05-01, end: 2018-06-30, metric: m, value: 1}",
            "unknown metric",
        ),
        (
            "- {id: a, source: s, aoi: x, start: 2018-05-01, end: 2018-06-30, metric: vessel_days}",
            "missing field",
        ),
        (
            "- {id: a, source: s, aoi: x, start: 2018-05-01, end: 2018-04-30, metric: vessel_days, value: 1}",
            "before start",
        ),
        (
            "- {id: a, source: s, aoi: x, start: May, end: 2018-06-30, metric: vessel_days, value: 1}",
            "not a date",
        ),
        (
            "- {id: a, source: s, aoi: x, start: 2018-05-01, end: 2018-06-30, metric: vessel_days, value: 1, "
            "colour: red}",
            "unknown field",
        ),
        ("- [unclosed", "not valid YAML"),
        (None, "no such claims file"),
    ],
)
def test_bad_claim_files_raise_input_errors(tmp_path, text, message):
    p = tmp_path / "c.yaml"
    if text is not None:
        p.write_text(text)
    with pytest.raises(InputError, match=message) as e:
        load_claims(p)
    assert "\n" not in str(e.value)  # the CLI prints it as one line


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_a_claimed_value_that_is_not_finite_is_bad_input(tmp_path, value):
    """`.nan` passed the number check, ran the whole run and crashed drawing claims.png (a traceback, no
    report)."""
    p = tmp_path / "c.yaml"
    p.write_text(
        "- {id: a, source: s, aoi: x, start: 2018-05-01, end: 2018-06-30, metric: vessel_days, "
        f"value: {value}}}"
    )
    with pytest.raises(InputError, match="finite"):
        load_claims(p)


def test_a_claim_period_given_as_yaml_timestamps_is_read_as_days(tmp_path):
    """YAML reads `2018-05-01 10:00:00` as a datetime, which compared with a date raised TypeError."""
    p = tmp_path / "c.yaml"
    p.write_text(
        "- {id: a, source: s, aoi: x, start: 2018-05-01 10:00:00, end: 2018-06-30T23:00:00-05:00,"
        " metric: vessel_days, value: 1}"
    )
    (claim,) = load_claims(p)
    assert (claim.start, claim.end) == (date(2018, 5, 1), date(2018, 7, 1))
