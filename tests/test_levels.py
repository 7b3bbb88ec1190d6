"""The level curves are pure functions: exact values, round trips, no cap."""

from __future__ import annotations

import pytest

from levels import curve, mee6_total_xp, mee6_xp_to_next, progress_bar

LINEAR = curve("linear")
MEE6 = curve("mee6")


@pytest.mark.parametrize(("xp", "level"), [(0, 1), (5, 1), (99, 1), (100, 2), (199, 2), (200, 3), (12_345, 124)])
def test_linear_curve_starts_at_level_1_and_adds_a_level_every_100_xp(xp, level):
    assert LINEAR.level_for(xp) == level


def test_linear_progress_reports_xp_into_the_level_and_xp_still_needed():
    progress = LINEAR.progress(250)
    assert (progress.level, progress.into_level, progress.level_span, progress.to_next) == (3, 50, 100, 50)


def test_mee6_cost_of_each_level_matches_the_published_formula():
    assert [mee6_xp_to_next(level) for level in range(4)] == [100, 155, 220, 295]


@pytest.mark.parametrize(("xp", "level"), [(0, 0), (99, 0), (100, 1), (254, 1), (255, 2), (475, 3), (770, 4)])
def test_mee6_curve_gives_the_levels_mee6_members_know(xp, level):
    assert MEE6.level_for(xp) == level


def test_mee6_closed_form_equals_the_sum_of_level_costs():
    running = 0
    for level in range(300):
        assert mee6_total_xp(level) == running
        running += mee6_xp_to_next(level)


@pytest.mark.parametrize("name", ["linear", "mee6"])
def test_level_for_and_total_xp_for_round_trip_at_every_boundary(name):
    c = curve(name)
    for level in range(c.first_level, 500):
        start = c.total_xp_for(level)
        assert c.level_for(start) == level
        if start:
            assert c.level_for(start - 1) == level - 1


@pytest.mark.parametrize("name", ["linear", "mee6"])
def test_curves_have_no_level_cap(name):
    c = curve(name)
    huge = 10**30
    level = c.level_for(huge)
    assert c.total_xp_for(level) <= huge < c.total_xp_for(level + 1)
    assert level > 10**6


def test_negative_xp_is_treated_as_zero():
    assert LINEAR.level_for(-5) == 1
    assert MEE6.progress(-5).xp == 0


def test_progress_bar_fills_in_proportion_and_stays_within_its_width():
    assert progress_bar(0, 100, width=10) == "▱" * 10
    assert progress_bar(50, 100, width=10) == "▰" * 5 + "▱" * 5
    assert progress_bar(150, 100, width=10) == "▰" * 10


def test_unknown_curve_name_is_refused():
    with pytest.raises(ValueError, match="unknown level curve"):
        curve("exponential")  # type: ignore[arg-type]
