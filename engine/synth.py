"""A deterministic synthetic CRM with planted effects of known size: the engine's ground truth.

Each deal gets attributes, then a true P(win) from planted log-odds effects (lead source, deal size and,
optionally, a win rate that decays by quarter), then an outcome, then a cycle length drawn from a different
distribution for won and lost deals (lost deals drag on: the planted "cycle length" effect). Deals whose close
falls after the snapshot date are written as open. Because the generating process is known, the oracle P(win)
of a deal still open at any age is known too, which is what the model's AUC is compared against.

With `noise=True` every effect is zero and won and lost deals share one cycle distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit, logit

INDUSTRIES = ("SaaS", "FinTech", "EdTech", "HealthTech", "Ecommerce")
REGIONS = ("North America", "Europe", "APAC", "India")
PRODUCTS = ("Core", "Pro", "Enterprise")
LEAD_SOURCES = ("Inbound", "Outbound", "Referral", "Partner")
STAGES = ("Qualified", "Demo", "Proposal", "Negotiation", "Closed")
REPS = tuple(f"rep_{i}" for i in range(1, 26))

PLANTED_LOG_ODDS = {
    ("lead_source", "Outbound"): -0.6,
    ("lead_source", "Referral"): 0.4,
    ("amount_band", "large"): -0.5,
    ("amount_band", "small"): 0.3,
}
"""True effects on the log-odds of winning; "large" is an amount ≥ $50k, "small" below $10k."""
CYCLE_SHAPE = 3.0
CYCLE_MEAN_WON, CYCLE_MEAN_LOST = 40.0, 70.0


@dataclass(frozen=True)
class SynthSpec:
    deals: int
    seed: int
    start: date = date(2023, 1, 1)
    days: int = 540
    """Deals are created over this many days; the snapshot is taken on the last one."""
    base_win_rate: float = 0.45
    noise: bool = False
    decay_per_quarter: float = 0.0
    """Log-odds lost per quarter since `start` (a decaying win rate), 0 for none."""
    effects: dict = field(default_factory=lambda: dict(PLANTED_LOG_ODDS))

    @property
    def snapshot_date(self) -> date:
        return (pd.Timestamp(self.start) + pd.Timedelta(days=self.days)).date()


@dataclass(frozen=True)
class SynthData:
    """The CRM file's rows (SkyGeni layout) and the truth behind them, by deal_id."""

    crm: pd.DataFrame
    truth: pd.DataFrame
    spec: SynthSpec

    def oracle_probability(self, deal_ids: np.ndarray, ages: np.ndarray) -> np.ndarray:
        """True P(win) of each deal given it was still open at `ages` days (Bayes on the two cycle laws)."""
        truth = self.truth.set_index("deal_id").loc[deal_ids]
        prior = truth["p_win"].to_numpy()
        if self.spec.noise:
            return prior
        won_open = stats.gamma.sf(ages, CYCLE_SHAPE, scale=CYCLE_MEAN_WON / CYCLE_SHAPE)
        lost_open = stats.gamma.sf(ages, CYCLE_SHAPE, scale=CYCLE_MEAN_LOST / CYCLE_SHAPE)
        return prior * won_open / (prior * won_open + (1 - prior) * lost_open)


def generate(spec: SynthSpec) -> SynthData:
    """Deterministic for a given spec: the same seed always writes the same file."""
    rng = np.random.default_rng(spec.seed)
    n = spec.deals
    created = pd.Timestamp(spec.start) + pd.to_timedelta(rng.integers(0, spec.days, n), unit="D")
    amount = np.round(np.exp(rng.uniform(np.log(2_000), np.log(100_000), n)))
    attributes = {
        "sales_rep_id": rng.choice(REPS, n), "industry": rng.choice(INDUSTRIES, n),
        "region": rng.choice(REGIONS, n), "product_type": rng.choice(PRODUCTS, n),
        "lead_source": rng.choice(LEAD_SOURCES, n),
    }  # fmt: skip
    log_odds = np.full(n, logit(spec.base_win_rate))
    if not spec.noise:
        for (field_name, level), effect in spec.effects.items():
            if field_name == "amount_band":
                mask = amount >= 50_000 if level == "large" else amount < 10_000
            else:
                mask = attributes[field_name] == level
            log_odds += effect * mask
        quarters = ((created - pd.Timestamp(spec.start)).days // 91).to_numpy()
        log_odds -= spec.decay_per_quarter * quarters
    p_win = expit(log_odds)
    won = rng.random(n) < p_win
    won_mean = CYCLE_MEAN_WON if not spec.noise else (CYCLE_MEAN_WON + CYCLE_MEAN_LOST) / 2
    lost_mean = CYCLE_MEAN_LOST if not spec.noise else won_mean
    scale = np.where(won, won_mean, lost_mean) / CYCLE_SHAPE
    cycle = np.floor(rng.gamma(CYCLE_SHAPE, scale)).astype(int) + 1
    closed = created + pd.to_timedelta(cycle, unit="D")
    is_open = closed > pd.Timestamp(spec.snapshot_date)
    width = max(5, len(str(n)))
    deal_ids = np.array([f"D{i:0{width}d}" for i in range(1, n + 1)])
    age_at_snapshot = (pd.Timestamp(spec.snapshot_date) - created).days.to_numpy()
    open_stage = np.array(STAGES[:4])[np.minimum(age_at_snapshot // 30, 3)]
    crm = pd.DataFrame({
        "deal_id": deal_ids,
        "created_date": created.strftime("%Y-%m-%d"),
        "closed_date": np.where(is_open, "", closed.strftime("%Y-%m-%d")),
        **attributes,
        "deal_stage": np.where(is_open, open_stage, rng.choice(STAGES, n)),
        "deal_amount": amount.astype(int),
        "sales_cycle_days": np.where(is_open, "", cycle.astype(str)),
        "outcome": np.where(is_open, "", np.where(won, "Won", "Lost")),
    })  # fmt: skip
    crm = crm[["deal_id", "created_date", "closed_date", "sales_rep_id", "industry", "region", "product_type",
               "lead_source", "deal_stage", "deal_amount", "sales_cycle_days", "outcome"]]  # fmt: skip
    truth = pd.DataFrame({"deal_id": deal_ids, "p_win": p_win, "won": won, "cycle_days": cycle, "open": is_open})
    return SynthData(crm, truth, spec)
