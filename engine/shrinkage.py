"""Empirical-Bayes segment win rates: the fallback when the driver model has no skill.

A small segment's raw win rate is mostly noise. Each segment's rate is pulled toward the overall rate by a
prior whose strength is estimated from the data (beta-binomial method of moments): if the segments of a
dimension vary no more than sampling noise explains, the prior is infinitely strong and every segment gets the
overall rate — which is exactly the honest answer on data without signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import logit


@dataclass(frozen=True)
class ShrunkRates:
    """Per-level raw counts and shrunk rates for one dimension, against the overall rate."""

    overall: float
    prior_strength: float
    """Pseudo-deals of the overall rate added to each level; inf when levels differ only by chance."""
    table: pd.DataFrame
    """Index: level; columns wins, n, raw, shrunk, log_odds_shift (shrunk vs overall, in log-odds)."""

    def shift(self, level: str) -> float:
        return float(self.table["log_odds_shift"].get(level, 0.0))


def shrink(wins: pd.Series, counts: pd.Series, overall: float) -> ShrunkRates:
    """Shrink each level's rate (wins / counts, same index) toward `overall`."""
    table = pd.DataFrame({"wins": wins.astype(float), "n": counts.astype(float)})
    table["raw"] = table["wins"] / table["n"]
    spread = overall * (1 - overall)
    weights = table["n"] / table["n"].sum()
    observed_variance = float((weights * (table["raw"] - overall) ** 2).sum())
    sampling_variance = float((weights * spread / table["n"]).sum())
    between = observed_variance - sampling_variance
    prior_strength = spread / between - 1 if between > 0 else np.inf
    prior_strength = max(prior_strength, 0.0)
    if np.isinf(prior_strength):
        table["shrunk"] = overall
    else:
        table["shrunk"] = (table["wins"] + prior_strength * overall) / (table["n"] + prior_strength)
    clipped = table["shrunk"].clip(1e-6, 1 - 1e-6)
    table["log_odds_shift"] = logit(clipped) - logit(min(max(overall, 1e-6), 1 - 1e-6))
    return ShrunkRates(overall, float(prior_strength), table)
