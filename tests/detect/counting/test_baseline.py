"""Period against baseline: means over the days seen in full (unobserved days are no count, never 0;
partial days are floors and left out), the ratio and its seeded bootstrap interval, and the reading."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import numpy as np
import pandas as pd

from detect.counting.baseline import BaselineParams, compare_periods, comparison_table


def daily(start: date, counts: list[int | None], statuses: list[str] | None = None, zone="all", cls="ship"):
    """A daily table: ``None`` is an unobserved day; ``statuses`` overrides the rest."""
    statuses = statuses or ["unobserved" if c is None else "observed" for c in counts]
    return pd.DataFrame(
        {
            "date": [start + timedelta(days=i) for i in range(len(counts))],
            "zone": zone,
            "class": cls,
            "count": pd.array(counts, dtype="Int64"),
            "status": statuses,
        }
    )


P0, B0 = date(2018, 5, 1), date(2018, 3, 1)


def test_ratio_of_means_over_the_days_seen_unobserved_days_are_not_zeros():
    period = daily(P0, [10, None, 12, None, None, 14, None])
    base = daily(B0, [5, 6, None, 7, None, None, None])
    (c,) = compare_periods(period, base)
    assert (c.period_seen, c.baseline_seen, c.period_days, c.baseline_days) == (3, 3, 7, 7)
    assert c.period_mean == 12 and c.baseline_mean == 6 and c.ratio == 2 and c.difference == 6
    assert c.ratio_low <= c.ratio <= c.ratio_high
    # every resample lies between the extreme means: 10/7 and 14/5
    assert c.ratio_low >= 10 / 7 - 1e-9 and c.ratio_high <= 14 / 5 + 1e-9
    assert c.reading == "higher" and any("few days seen" in r for r in c.reasons)


def test_partial_days_are_left_out_and_said_so():
    period = daily(P0, [10, 2, 12], ["observed", "partial", "observed-unmasked"])
    base = daily(B0, [10, 12, 11])
    (c,) = compare_periods(period, base)
    assert c.period_seen == 2 and c.period_partial == 1 and c.period_mean == 11
    assert "1 partial day(s) left out" in c.reasons[0]


def test_the_bootstrap_is_seeded_and_resamples_within_each_period():
    rng = np.random.default_rng(0)
    period = daily(P0, list(rng.poisson(12, 20)))
    base = daily(B0, list(rng.poisson(10, 25)))
    a, b = compare_periods(period, base), compare_periods(period, base)
    assert a == b  # same numbers on every run
    other = compare_periods(period, base, params=BaselineParams(seed=18))
    assert other[0].ratio_low != a[0].ratio_low and other[0].ratio == a[0].ratio
    # constant counts in each period: every resample gives the same means, so the interval is a point
    (c,) = compare_periods(daily(P0, [4, 4, 4]), daily(B0, [2, 2]))
    assert c.ratio_low == c.ratio_high == c.ratio == 2 and c.difference_low == c.difference_high == 2


def test_readings_higher_lower_and_no_clear_change():
    base = daily(B0, [10, 11, 9, 10, 12, 8, 10, 11])
    assert compare_periods(daily(P0, [20, 22, 19, 21, 23, 18]), base)[0].reading == "higher"
    assert compare_periods(daily(P0, [4, 5, 3, 4, 6, 5]), base)[0].reading == "lower"
    (c,) = compare_periods(daily(P0, [9, 12, 10, 11, 8, 10]), base)
    assert c.reading == "no clear change" and c.ratio_low < 1 < c.ratio_high
    assert not any("few days" in r for r in c.reasons)


def test_too_few_days_seen_cannot_tell():
    (one,) = compare_periods(daily(P0, [10, None, None]), daily(B0, [5, 5]))
    assert one.reading == "cannot tell" and one.ratio == 2 and one.ratio_low is None
    assert any("no interval" in r for r in one.reasons)
    (none,) = compare_periods(daily(P0, [None, None]), daily(B0, [5, 6]))
    assert none.reading == "cannot tell" and none.period_mean is None and none.ratio is None
    assert "no day of the period was seen in full" in none.reasons[-1]


def test_nothing_in_the_baseline_gives_an_infinite_ratio_and_a_difference():
    (c,) = compare_periods(daily(P0, [3, 4, 5]), daily(B0, [0, 0, 0]))
    assert math.isinf(c.ratio) and c.difference == 4 and c.reading == "higher"
    doc = json.loads(json.dumps(c.to_dict()))
    assert doc["ratio"] == "inf" and doc["class"] == "ship"
    row = comparison_table([c]).iloc[0]
    assert row["ratio"] == "∞" and row["difference a day"] == "+4.00"
    (z,) = compare_periods(daily(P0, [0, 0]), daily(B0, [0, 0]))
    assert z.ratio == 1 and z.reading == "no clear change"  # nothing in either: no change


def test_one_comparison_per_zone_and_class_whole_aoi_first():
    period = pd.concat([daily(P0, [1, 2], zone="berth"), daily(P0, [3, 4]), daily(P0, [1, 1], cls="truck")])
    base = pd.concat([daily(B0, [1, 2], zone="berth"), daily(B0, [3, 4]), daily(B0, [1, 1], cls="truck")])
    keys = [(c.zone, c.class_name) for c in compare_periods(period, base)]
    assert keys == [("all", "ship"), ("all", "truck"), ("berth", "ship")]
