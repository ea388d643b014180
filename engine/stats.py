"""The statistics every number in salesintel leans on: rates with intervals, tests, false-discovery control.

Thin, named wrappers over scipy so the rest of the engine reads as "a Wilson interval", "Fisher's exact test",
"Benjamini–Hochberg" and never re-derives a formula. A rate without its n and interval is not allowed out.
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
    """Two-sided p-value of Fisher's exact test: does this group's win rate differ from everyone else's?"""
    rest_wins, rest_n = total_wins - wins, total_n - n
    table = [[wins, n - wins], [rest_wins, rest_n - rest_wins]]
    from scipy import stats  # scipy loads in seconds: only the commands that test pay for it

    return float(stats.fisher_exact(table, alternative="two-sided").pvalue)


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """BH-adjusted p-values (q-values): compare each with the false discovery rate to control it across a family."""
    if not pvalues:
        return []
    from scipy import stats

    return [float(q) for q in stats.false_discovery_control(np.asarray(pvalues, dtype=float), method="bh")]


def mann_whitney(first: np.ndarray, second: np.ndarray) -> float | None:
    """Two-sided p-value that two samples (e.g. days to close, won vs lost) come from the same distribution."""
    if len(first) == 0 or len(second) == 0:
        return None
    from scipy import stats

    return float(stats.mannwhitneyu(first, second, alternative="two-sided").pvalue)
