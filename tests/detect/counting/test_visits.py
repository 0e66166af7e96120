"""Stays and the distinct-vessel lower bound on a case worked out by hand."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from detect.counting.visits import (
    VisitParams,
    distinct_lower_bound,
    estimate_visits,
    length_groups,
    link_stays,
    longest_unobserved_run,
)

# ~0.0009° of latitude ≈ 100 m; 0.01° ≈ 1.1 km.
SIGHTINGS = [
    # day, scene, lon, lat, length
    (1, "s1", 120.000, 37.000, 100.0),  # ship A at berth 1
    (1, "s1", 120.010, 37.000, 200.0),  # ship B at berth 2
    (2, "s2", 120.000, 37.0009, 104.0),  # A again, ~100 m away: same stay
    (2, "s2", 120.020, 37.000, 30.0),  # small craft C
    (4, "s4", 120.030, 37.000, 105.0),  # D: same length group as A, elsewhere, after an unobserved day
    (4, "s4", 120.010, 37.000, 90.0),  # at B's berth but 90 m long vs 200 m: a new stay
]


def frames():
    det = pd.DataFrame(
        [
            dict(
                date=date(2018, 5, d),
                scene=s,
                lon=lon,
                lat=lat,
                length_m=length,
                zones="all",
                **{"class": "ship"},
            )
            for d, s, lon, lat, length in SIGHTINGS
        ]
    )
    days = [date(2018, 5, d) for d in range(1, 6)]
    status = ["observed", "observed", "unobserved", "observed", "unobserved"]
    scenes = ["s1", "s2", "", "s4", ""]
    daily = pd.DataFrame(dict(date=days, zone="all", status=status, scene=scenes, **{"class": "ship"}))
    return det, daily


def test_length_groups_split_only_where_neighbours_do_not_match():
    p = VisitParams(length_tolerance=0.25)
    g = length_groups([100, 30, 200, 104, 105, 90], p)
    assert len(set(g)) == 3
    assert g[0] == g[3] == g[4] == g[5]  # 90, 100, 104, 105 chain together
    assert len({g[0], g[1], g[2]}) == 3


def test_distinct_lower_bound_is_exact_on_the_hand_case():
    det, _ = frames()
    # groups: {30} max 1/day, {90,100,104,105} max 2/day (day 4: D and the 90 m ship), {200} max 1 → 4
    assert distinct_lower_bound(det, VisitParams()) == 4
    # ignoring lengths (any length matches) the bound falls back to the busiest day: 2
    assert distinct_lower_bound(det, VisitParams(length_tolerance=1.0)) == 2
    assert distinct_lower_bound(det.iloc[0:0], VisitParams()) == 0


def test_link_stays_joins_consecutive_observed_days_only():
    det, _ = frames()
    observed = [date(2018, 5, 1), date(2018, 5, 2), date(2018, 5, 4)]
    stay = link_stays(det, observed, VisitParams())
    assert stay[0] == stay[2]  # A on days 1 and 2
    assert len(set(stay)) == 5
    # with a 50 m tolerance A's two sightings are ~100 m apart: two stays
    assert len(set(link_stays(det, observed, VisitParams(max_distance_m=50.0)))) == 6


def test_estimate_visits_reports_bounds_and_assumptions():
    det, daily = frames()
    s, stays = estimate_visits(det, daily, zone="all", class_name="ship")
    assert (s.days_in_period, s.days_observed, s.days_fully_observed) == (5, 3, 3)
    assert s.max_simultaneous == 2 and s.max_simultaneous_date == date(2018, 5, 1)
    assert s.distinct_min == 4
    assert s.vessel_days == 6
    assert s.stays == 5 and len(stays) == 5
    assert s.longest_unobserved_run_days == 1
    assert any("two places" in a for a in s.assumptions)
    a = stays[stays["n_sightings"] == 2].iloc[0]
    assert (a["first_date"], a["last_date"], a["span_days"]) == (date(2018, 5, 1), date(2018, 5, 2), 2)
    assert a["length_m"] == pytest.approx(102.0)


def test_min_length_drops_small_craft():
    det, daily = frames()
    s, _ = estimate_visits(det, daily, zone="all", class_name="ship", min_length_m=40)
    assert s.distinct_min == 3 and s.vessel_days == 5


def test_only_the_chosen_scene_of_a_day_is_used():
    det, daily = frames()
    extra = det.iloc[[0]].assign(scene="s1b", lon=120.05)  # same day, other tile, not chosen
    s, _ = estimate_visits(pd.concat([det, extra]), daily, zone="all", class_name="ship")
    assert s.vessel_days == 6


def test_nothing_observed_gives_none():
    det, daily = frames()
    s, stays = estimate_visits(det, daily.assign(status="unobserved"), zone="all", class_name="ship")
    assert s.days_observed == 0 and s.max_simultaneous is None and s.distinct_min is None
    assert stays.empty


def test_longest_unobserved_run():
    assert longest_unobserved_run(["observed", "unobserved", "unobserved", "partial", "unobserved"]) == 2
    assert longest_unobserved_run([]) == 0
