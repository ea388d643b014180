"""The statistics every number in salesintel leans on: rates with intervals, tests, false-discovery control.

Named wrappers over scipy so the rest of the engine reads as "a Wilson interval", "Fisher's exact test",
"Benjamini–Hochberg" and never re-derives a formula. Where scipy's per-call overhead showed in a refresh profile
(Wilson, Fisher, Mann–Whitney), the same numbers are computed here instead, and tests/test_stats_fast.py holds them
to scipy's. A rate without its n and interval is not allowed out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class Rate:
    """A proportion with the count behind it and a Wilson score interval; `rate` is None when n is 0."""

    wins: int
    n: int
    rate: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict:
        return {"wins": self.wins, "n": self.n, "rate": self.rate, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, value: dict) -> Rate:
        return cls(value["wins"], value["n"], value["rate"], value["low"], value["high"])


def wilson(wins: int, n: int, confidence: float = 0.95) -> Rate:
    """`wins` of `n` with a Wilson score interval, which stays inside [0, 1] and behaves at small n."""
    wins, n = int(wins), int(n)
    if n == 0:
        return Rate(0, 0, None, None, None)
    # The closed form (no continuity correction), as scipy's binomtest(...).proportion_ci(method="wilson") computes
    # it, but without its per-call overhead: rates are formatted by the thousand per refresh.
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = wins / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Rate(wins, n, p, max(0.0, center - half), min(1.0, center + half))


def fisher_vs_rest(wins: int, n: int, total_wins: int, total_n: int) -> float:
    """Two-sided p-value of Fisher's exact test: does this group's win rate differ from everyone else's?

    The p-value scipy's `fisher_exact(table, alternative="two-sided")` gives, worked out here: scipy pays a boost
    `hypergeom.pmf` call (~0.3 ms) per step of its search, which made this a second and a half of every refresh.
    """
    wins, n, total_wins, total_n = int(wins), int(n), int(total_wins), int(total_n)
    table = (wins, n - wins, total_wins - wins, total_n - n - (total_wins - wins))
    if min(table) < 0:
        raise ValueError("All values in `table` must be nonnegative.")
    a, b, c, d = table
    if 0 in (a + b, c + d, a + c, b + d):
        return 1.0  # an empty row or column: one possible table, as scipy answers
    return _hypergeometric_two_sided(a, a + b, a + c, total_n)


# scipy's relative tolerance: a table this close in probability to the observed one counts as "as extreme" too.
_AS_EXTREME = 1 + 1e-14


def _hypergeometric_two_sided(observed: int, group: int, drawn: int, total: int) -> float:
    """P(a table no likelier than the observed one) when `drawn` of `total` land in a `group` at random.

    The probabilities are ratios to the mode's, built by multiplying the exact step ratio pmf(k+1)/pmf(k), so they
    carry no cancellation error (log-factorials of a million are ~1e7, whose rounding alone would cost 1e-9); the
    sum over the support normalises them. Only the window where a table can matter is built: out to e^-50 of the
    observed table's probability, located with `lgamma`, so a million-deal table costs a few thousand steps.
    """
    low, high = max(0, drawn - (total - group)), min(group, drawn)
    mode = (drawn + 1) * (group + 1) // (total + 2)
    rest = total - group - drawn  # the other-row-other-column cell is rest + k, never negative on the support

    def log_weight(k: int) -> float:
        """log C(group, k) C(total - group, drawn - k) up to a constant: accurate enough to place a window."""
        return -(
            math.lgamma(k + 1) + math.lgamma(group - k + 1) + math.lgamma(drawn - k + 1) + math.lgamma(rest + k + 1)
        )

    drop = log_weight(mode) - log_weight(observed)
    if drop > 690:
        return 0.0  # the p-value is below 1e-290, and scipy's answer closer to 0 than to anything that matters
    floor = log_weight(observed) - 50
    first = min(_window_edge(log_weight, mode, low, floor), observed)
    last = max(_window_edge(log_weight, mode, high, floor), observed)
    up = np.arange(mode, last, dtype=np.float64)  # steps mode -> mode + 1, ..., last - 1 -> last
    down = np.arange(mode - 1, first - 1, -1, dtype=np.float64)  # steps mode -> mode - 1, ..., first + 1 -> first
    rising = np.cumprod((group - up) * (drawn - up) / ((up + 1) * (rest + up + 1)))
    falling = np.cumprod((down + 1) * (rest + down + 1) / ((group - down) * (drawn - down)))
    weights = np.concatenate([falling[::-1], [1.0], rising])  # pmf(k) / pmf(mode) for k = first, ..., last
    at_observed = weights[observed - first]
    counted = weights <= at_observed * _AS_EXTREME
    # A table within float noise of the threshold is decided exactly, as scipy's more precise probabilities decide
    # it: the mirror image of the observed table when a margin splits the total in half has the same probability,
    # anything else (a coincidence, mostly in small tables) is settled in integers.
    mirrors = {group - observed if 2 * drawn == total else -1, drawn - observed if 2 * group == total else -1}
    for i in np.flatnonzero(np.abs(weights - at_observed) <= 1e-9 * at_observed):
        k = first + int(i)
        if k != observed:
            counted[i] = k in mirrors or _no_likelier(k, observed, group, drawn, rest)
    if counted.all():
        return 1.0
    return min(float(weights[counted].sum() / weights.sum()), 1.0)


def _window_edge(log_weight, start: int, limit: int, floor: float) -> int:
    """The farthest k from `start` (the mode) toward `limit` whose log weight is still at least `floor`.

    The weight only falls away from the mode, so a bisection finds it in ~20 `lgamma` rounds.
    """
    if log_weight(limit) >= floor:
        return limit
    inside, outside = start, limit
    while abs(outside - inside) > 1:
        middle = (inside + outside) // 2
        if log_weight(middle) >= floor:
            inside = middle
        else:
            outside = middle
    return inside


def _no_likelier(k: int, observed: int, group: int, drawn: int, rest: int) -> bool:
    """Whether pmf(k) <= pmf(observed) * (1 + 1e-14), in exact integer arithmetic (the product of the step ratios)."""
    start, stop = min(k, observed), max(k, observed)
    rising = _product([(group - t) * (drawn - t) for t in range(start, stop)])
    falling = _product([(t + 1) * (rest + t + 1) for t in range(start, stop)])
    numerator, denominator = (rising, falling) if k > observed else (falling, rising)  # pmf(k) / pmf(observed)
    bound_numerator, bound_denominator = _AS_EXTREME.as_integer_ratio()
    return numerator * bound_denominator <= denominator * bound_numerator


def _product(factors: list[int]) -> int:
    """The product of many big integers, multiplied in pairs so each multiplication is between equal sizes."""
    while len(factors) > 1:
        factors = [math.prod(factors[i : i + 2]) for i in range(0, len(factors), 2)]
    return factors[0] if factors else 1


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """BH-adjusted p-values (q-values): compare each with the false discovery rate to control it across a family."""
    if not pvalues:
        return []
    from scipy import stats

    return [float(q) for q in stats.false_discovery_control(np.asarray(pvalues, dtype=float), method="bh")]


def mann_whitney(first: np.ndarray, second: np.ndarray) -> float | None:
    """Two-sided p-value that two samples (e.g. days to close, won vs lost) come from the same distribution.

    scipy's `mannwhitneyu(first, second, alternative="two-sided")`; whole-day samples take the counting path below,
    which gives the same p-value without scipy's sort and per-call overhead.
    """
    if len(first) == 0 or len(second) == 0:
        return None
    pvalue = _mann_whitney_by_counts(np.asarray(first), np.asarray(second))
    if pvalue is not None:
        return pvalue
    from scipy import stats  # scipy loads in seconds: only samples the counting path cannot take pay for it

    return float(stats.mannwhitneyu(first, second, alternative="two-sided").pvalue)


def _mann_whitney_by_counts(first: np.ndarray, second: np.ndarray) -> float | None:
    """scipy's asymptotic Mann–Whitney p-value from counts per integer value, or None where scipy must answer.

    Whole-number samples with a modest range (days to close: tens of thousands of values, a few hundred distinct)
    are ranked by counting, O(n + range) instead of a sort: a value's mid-rank is the count below it plus half its own
    plus a half, and its tie correction comes from the same count. The arithmetic is scipy's, step for step: U is
    the larger of the two statistics, the continuity correction is 0.5, the normal tail is doubled and clipped to 1.
    None for what this path does not reproduce, or not cheaply: other dtypes (scipy ranks float32 in float32), NaN
    or infinite values, fractions, a wide range, and small untied samples (either of at most 8: scipy's exact test).
    """
    samples = (first, second)
    if any(v.ndim != 1 or not (v.dtype.kind in "biu" or v.dtype == np.float64) for v in samples):
        return None
    low, high = min(float(v.min()) for v in samples), max(float(v.max()) for v in samples)
    if not -(2**53) < low <= high < 2**53:
        return None  # NaN, infinities, or past where float64 (scipy ranks in it) holds every whole number
    span = int(high) - int(low)
    # Counting costs ~30 ns per whole number in the range, scipy ~0.8 ms a call plus ~0.3 us a value: count only
    # where that wins by a margin (days to close always do: a few thousand days, tens of thousands of deals).
    if span > 10_000 + 4 * (len(first) + len(second)):
        return None
    per_sample = []
    for sample in samples:
        codes = sample.astype(np.intp)  # truncated: equal to the sample only if every value is a whole number
        if not np.array_equal(codes, sample):
            return None
        codes -= int(low)
        per_sample.append(np.bincount(codes, minlength=span + 1))
    n1, n2 = len(first), len(second)
    counts = per_sample[0] + per_sample[1]
    if (n1 <= 8 or n2 <= 8) and counts.max() == 1:
        return None
    twice_midranks = 2 * (np.cumsum(counts) - counts) + counts + 1
    twice_rank_sum = int(np.dot(per_sample[0], twice_midranks))
    u1 = (twice_rank_sum - n1 * (n1 + 1)) / 2
    u = max(u1, n1 * n2 - u1)
    n = n1 + n2
    tied = counts[counts > 1].astype(np.float64)
    tie_term = float(np.sum(tied**3 - tied))
    spread = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    if spread == 0:
        return 1.0  # every value tied: scipy's z is -inf, its doubled tail 2, clipped to 1
    z = (u - n1 * n2 / 2 - 0.5) / spread
    return min(max(math.erfc(z * math.sqrt(0.5)), 0.0), 1.0)  # 2 * ndtr(-z)
