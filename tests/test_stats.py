"""The statistics against values worked out by hand (Wilson 1927; Benjamini & Hochberg 1995)."""

import pytest

from salesintel.engine.stats import benjamini_hochberg, fisher_vs_rest, wilson


def test_wilson_interval_of_45_in_100_matches_the_closed_form():
    rate = wilson(45, 100)
    assert (rate.wins, rate.n, rate.rate) == (45, 100, 0.45)
    assert rate.low == pytest.approx(0.35614, abs=1e-4)
    assert rate.high == pytest.approx(0.54755, abs=1e-4)


def test_wilson_interval_of_zero_wins_is_not_degenerate():
    rate = wilson(0, 10)
    assert rate.low == pytest.approx(0.0, abs=1e-12)
    assert rate.high == pytest.approx(0.27753, abs=1e-4)


def test_a_rate_of_nothing_has_no_interval():
    assert wilson(0, 0).rate is None and wilson(0, 0).low is None


def test_benjamini_hochberg_adjusts_and_keeps_order():
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([]) == []


def test_fisher_test_matches_the_lady_tasting_tea():
    assert fisher_vs_rest(3, 4, 4, 8) == pytest.approx(34 / 70, abs=1e-9)


def test_fisher_test_finds_a_big_difference_and_not_an_equal_one():
    assert fisher_vs_rest(80, 100, 130, 200) < 1e-4
    assert fisher_vs_rest(50, 100, 100, 200) == pytest.approx(1.0)
