"""The hand-rolled Fisher and Mann–Whitney p-values against scipy's, which they replace for speed and must equal.

Agreement means a relative difference of at most 1e-9, or an absolute one of at most 1e-12 for tiny p-values.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from salesintel.engine.stats import _mann_whitney_by_counts, _no_likelier, fisher_vs_rest, mann_whitney


def scipy_fisher(wins: int, n: int, total_wins: int, total_n: int) -> float:
    table = [[wins, n - wins], [total_wins - wins, total_n - n - (total_wins - wins)]]
    return float(stats.fisher_exact(table, alternative="two-sided").pvalue)


def assert_fisher_matches(wins: int, n: int, total_wins: int, total_n: int) -> None:
    expected = scipy_fisher(wins, n, total_wins, total_n)
    assert fisher_vs_rest(wins, n, total_wins, total_n) == pytest.approx(expected, rel=1e-9, abs=1e-12), (
        wins,
        n,
        total_wins,
        total_n,
    )


def near_the_mode(rng: np.random.Generator, n: int, total_wins: int, total_n: int, spread: float) -> int:
    """A group's wins a few standard deviations from what chance gives, so p-values span (0, 1], not just ~0."""
    low, high = max(0, total_wins - (total_n - n)), min(n, total_wins)
    share = total_wins / total_n
    sd = math.sqrt(n * share * (1 - share) * (total_n - n) / max(total_n - 1, 1))
    return int(min(high, max(low, round(n * share + rng.normal() * spread * (sd + 1)))))


def test_fisher_matches_scipy_on_random_tables_of_every_size():
    rng = np.random.default_rng(20240301)
    for _ in range(400):
        total_n = int(rng.integers(1, int(rng.choice([10, 100, 5_000, 1_000_000])) + 1))
        n, total_wins = (int(v) for v in rng.integers(0, total_n + 1, size=2))
        assert_fisher_matches(
            near_the_mode(rng, n, total_wins, total_n, float(rng.choice([1, 3, 8]))), n, total_wins, total_n
        )


def test_fisher_matches_scipy_on_every_table_of_up_to_twelve_deals():
    # Small tables are where different tables have exactly equal probabilities, the tie rule's hardest case.
    for total_n in range(1, 13):
        for n in range(total_n + 1):
            for total_wins in range(total_n + 1):
                for wins in range(max(0, total_wins - (total_n - n)), min(n, total_wins) + 1):
                    assert_fisher_matches(wins, n, total_wins, total_n)


@pytest.mark.parametrize(
    ("wins", "n", "total_wins", "total_n"),
    [
        (0, 0, 0, 0),
        (0, 0, 3, 10),
        (0, 10, 0, 10),
        (0, 4, 0, 10),
        (4, 4, 10, 10),
        (10, 10, 10, 10),  # empty margins
        (0, 5, 3, 10),
        (5, 5, 5, 10),
        (0, 5, 5, 10),
        (3, 5, 3, 10),
        (2, 5, 7, 10),  # a zero in each cell in turn
        (1, 1, 1, 2),
        (1, 1, 1, 3),
        (0, 1, 1, 3),
        (1, 2, 1, 3),  # tiny
        (3, 4, 4, 8),
        (80, 100, 130, 200),
        (50, 100, 100, 200),  # the hand-worked ones in test_stats.py
        (400_000, 400_000, 700_000, 1_000_000),
        (0, 400_000, 300_000, 1_000_000),  # a group equal to a margin
        (1, 1, 1, 1_000_000),
        (0, 1, 1, 1_000_000),
        (1, 1, 2, 1_000_000),
        (3, 10, 500_000, 1_000_000),
        (120_000, 400_000, 300_000, 1_000_000),
        (119_400, 400_000, 300_000, 1_000_000),  # 400k of 1M, moving out
        (119_000, 400_000, 300_000, 1_000_000),
        (118_000, 400_000, 300_000, 1_000_000),
        (121_500, 400_000, 300_000, 1_000_000),
        (125_000, 400_000, 300_000, 1_000_000),  # p-value underflows to 0
        (200_000, 400_000, 500_000, 1_000_000),
        (201_000, 400_000, 500_000, 1_000_000),  # half won: mirror-image ties
        (203_000, 400_000, 500_000, 1_000_000),
        (199_990, 500_000, 400_000, 1_000_000),
        (250_100, 500_000, 500_000, 1_000_000),
        (31, 60, 500_000, 1_000_000),
        (29, 60, 500_000, 1_000_000),
    ],
)
def test_fisher_matches_scipy_at_the_edges(wins, n, total_wins, total_n):
    assert_fisher_matches(wins, n, total_wins, total_n)


def test_fisher_matches_scipy_when_a_margin_splits_the_total_in_half():
    rng = np.random.default_rng(7)
    for half in (3, 10, 101, 5_000, 500_000):
        for _ in range(12):
            total_wins = int(rng.integers(1, 2 * half))
            wins = near_the_mode(rng, half, total_wins, 2 * half, 3)
            assert_fisher_matches(wins, half, total_wins, 2 * half)
            assert_fisher_matches(near_the_mode(rng, total_wins, half, 2 * half, 3), total_wins, half, 2 * half)


def test_fisher_refuses_an_impossible_table_as_scipy_does():
    with pytest.raises(ValueError):
        scipy_fisher(5, 3, 5, 10)
    with pytest.raises(ValueError):
        fisher_vs_rest(5, 3, 5, 10)


def assert_mann_whitney_matches(first, second) -> None:
    expected = float(stats.mannwhitneyu(first, second, alternative="two-sided").pvalue)
    assert mann_whitney(first, second) == pytest.approx(expected, rel=1e-9, abs=1e-12, nan_ok=True)


def assert_counted_and_matches(first, second) -> None:
    """The counting path answers (a fallback to scipy would make the comparison vacuous) and equals scipy."""
    assert _mann_whitney_by_counts(np.asarray(first), np.asarray(second)) is not None
    assert_mann_whitney_matches(first, second)


def test_mann_whitney_counts_integer_days_as_scipy_ranks_them():
    rng = np.random.default_rng(11)
    for _ in range(200):
        n1, n2 = (int(rng.integers(1, int(rng.choice([12, 200, 30_000])) + 1)) for _ in range(2))
        top = int(rng.choice([3, 40, 900, 8_000]))
        first = rng.integers(0, top, n1)
        second = rng.integers(0, top, n2) + int(rng.integers(-top // 10 - 1, top // 10 + 2))
        if min(n1, n2) <= 8 and len(np.unique(np.concatenate([first, second]))) == n1 + n2:
            continue  # small and untied: scipy's exact test, checked below
        if rng.integers(0, 2):
            first, second = first.astype(float), second.astype(float)  # as the engine passes days
        assert_counted_and_matches(first, second)


def test_mann_whitney_counts_thirty_thousand_cycle_lengths_a_side():
    rng = np.random.default_rng(12)
    won = np.round(rng.gamma(2.0, 30.0, 30_000))
    lost = np.round(rng.gamma(2.2, 30.0, 30_000))
    assert_counted_and_matches(won, lost)
    assert_counted_and_matches(won, rng.permutation(won))  # same distribution: a p-value far from 0


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ([7.0] * 20, [7.0] * 30),  # all tied: no spread at all
        ([7, 7], [7]),
        ([7], [7]),  # all tied and tiny
        ([5.0], [1.0, 2.0, 5.0, 9.0, 9.0, 12.0]),  # one value against a tied sample
        ([3.0], list(range(20))),  # one value, tied with one of a larger sample
        ([1.0, 1.0, 2.0], [2.0, 3.0, 4.0, 4.0]),  # small with ties: asymptotic
        ([-40, -3, -3, 0, 12], [-41, -3, 0, 0, 7, 9, 9]),  # negative integers
        ([-1e6, -999_990.0] * 6, [-999_995.0, -1e6] * 7),  # far from zero
        ([True, False, True] * 5, [False, False, True] * 6),  # booleans rank as 0 and 1
    ],
)
def test_mann_whitney_counting_path_edges(first, second):
    assert_counted_and_matches(np.asarray(first), np.asarray(second))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ([0.5, 1.25, 3.0, 4.5] * 5, [1.0, 2.75, 3.0] * 6),  # fractions
        ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]),  # small and untied: scipy's exact distribution
        ([2.0, 9.0, 4.0, 11.0, 10.0, 1.0, 6.0, 8.0], list(range(12, 40))),  # eight untied against many
        ([0, 2_000_000, 5, 5], [1, 3, 3, 4_000_000]),  # a range too wide to count
        (np.array([1.0, 2.0, 2.0], dtype=np.float32), np.array([2.0, 3.0], dtype=np.float32)),  # scipy ranks in float32
        ([1.0, math.inf, 2.0, 2.0], [3.0, 3.0, -math.inf]),  # infinities
    ],
)
def test_mann_whitney_falls_back_to_scipy_where_counting_would_differ(first, second):
    assert _mann_whitney_by_counts(np.asarray(first), np.asarray(second)) is None
    assert_mann_whitney_matches(np.asarray(first), np.asarray(second))


def test_mann_whitney_with_a_missing_value_is_missing_as_in_scipy():
    assert math.isnan(mann_whitney(np.array([1.0, np.nan, 3.0]), np.array([2.0, 2.0, 4.0])))


def test_mann_whitney_of_an_empty_sample_is_none():
    assert mann_whitney(np.array([]), np.array([1.0, 2.0])) is None


def test_near_ties_are_settled_as_the_binomial_coefficients_say():
    # The integer rule decides tables within float noise of the threshold; check it on its own, ties included.
    rng = np.random.default_rng(13)
    for _ in range(300):
        total = int(rng.integers(2, int(rng.choice([12, 3_000])) + 1))
        group, drawn = (int(v) for v in rng.integers(1, total, size=2))
        low, high = max(0, drawn - (total - group)), min(group, drawn)
        k, observed = (int(v) for v in rng.integers(low, high + 1, size=2))

        def weight(x: int) -> int:  # used within this iteration only
            return math.comb(group, x) * math.comb(total - group, drawn - x)  # noqa: B023

        expected = Fraction(weight(k), weight(observed)) <= Fraction(1 + 1e-14)
        assert _no_likelier(k, observed, group, drawn, total - group - drawn) == expected, (k, observed, group, drawn)
    assert _no_likelier(1, 3, 4, 4, 0) and _no_likelier(3, 1, 4, 4, 0)  # the tea-tasting mirror images
    assert not _no_likelier(2, 3, 4, 4, 0) and _no_likelier(3, 2, 4, 4, 0)
