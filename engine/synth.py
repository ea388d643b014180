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

from salesintel.engine.settings import CANONICAL_FIELDS

BUNDLED_COLUMNS = tuple(column for column in CANONICAL_FIELDS if column != "deal_name")
"""The columns of the bundled export, in its order: what a synthetic file has before its extra fields."""

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
FIELD_EFFECTS = {
    ("company_size", "Enterprise"): -0.4,
    ("company_size", "SMB"): 0.2,
    ("competitor", "Globex"): -0.3,
    ("competitor", "Acme"): -0.2,
    ("renewal", "true"): 0.6,
}
"""Planted effects of the extra fields (`SynthSpec.extra_fields`), on the log-odds of winning."""
INTERACTION_EFFECT = -2.0
"""Globex in an Enterprise deal: an interaction trees find and an additive model misses."""
CONTACTS_EFFECT = 0.12
"""Per contact beyond 4 (a number field; 1–12 contacts)."""
EXTRA_FIELDS = {
    "company_size": {"column": "Company Size", "kind": "category", "known": "creation", "label": "Company size"},
    "competitor": {"column": "Competitor", "kind": "category", "known": "creation", "label": "Competitor"},
    "contacts": {"column": "Contacts", "kind": "number", "known": "creation", "label": "Contacts"},
    "renewal": {"column": "Renewal", "kind": "boolean", "known": "creation", "label": "Renewal"},
    "campaign": {"column": "Campaign", "kind": "category", "known": "creation", "label": "Campaign"},
    "contract_end": {"column": "Contract End", "kind": "date", "known": "creation", "label": "Current contract ends"},
}
"""How `config.yaml` declares the extra fields of `SynthSpec(extra_fields=True)` (`campaign` and `contract_end`
carry no signal)."""
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
    extra_fields: bool = False
    """Also write the columns of `EXTRA_FIELDS`, with their planted effects (and none with `noise`)."""

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
        "sales_rep_id": rng.choice(REPS, n),
        "industry": rng.choice(INDUSTRIES, n),
        "region": rng.choice(REGIONS, n),
        "product_type": rng.choice(PRODUCTS, n),
        "lead_source": rng.choice(LEAD_SOURCES, n),
    }
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
    extras = _extra_columns(spec, n, log_odds) if spec.extra_fields else {}
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
    crm = pd.DataFrame(
        {
            "deal_id": deal_ids,
            "created_date": created.strftime("%Y-%m-%d"),
            "closed_date": np.where(is_open, "", closed.strftime("%Y-%m-%d")),
            **attributes,
            "deal_stage": np.where(is_open, open_stage, rng.choice(STAGES, n)),
            "deal_amount": amount.astype(int),
            "sales_cycle_days": np.where(is_open, "", cycle.astype(str)),
            "outcome": np.where(is_open, "", np.where(won, "Won", "Lost")),
        }
    )
    crm = crm[list(BUNDLED_COLUMNS)]
    for column, values in extras.items():
        crm[column] = values
    truth = pd.DataFrame({"deal_id": deal_ids, "p_win": p_win, "won": won, "cycle_days": cycle, "open": is_open})
    return SynthData(crm, truth, spec)


def _extra_columns(spec: SynthSpec, n: int, log_odds: np.ndarray) -> dict[str, np.ndarray]:
    """The extra fields' columns (their own random stream, so the base columns stay as they were for a seed);
    adds their planted effects to `log_odds` in place unless `spec.noise`."""
    rng = np.random.default_rng([spec.seed, 7])
    size = rng.choice(["SMB", "Mid-Market", "Enterprise"], n, p=[0.45, 0.3, 0.25])
    competitor = rng.choice(["", "Acme", "Globex"], n, p=[0.5, 0.25, 0.25])
    contacts = rng.integers(1, 13, n)
    renewal = np.where(rng.random(n) < 0.3, "true", "false")
    campaign = rng.choice([f"Q{q} {name}" for q in range(1, 5) for name in ("Webinar", "Event")], n)
    created = pd.Timestamp(spec.start) + pd.to_timedelta(
        np.random.default_rng(spec.seed).integers(0, spec.days, n), unit="D"
    )
    contract_end = (created + pd.to_timedelta(rng.integers(30, 400, n), unit="D")).strftime("%Y-%m-%d")
    if not spec.noise:
        for (name, level), effect in FIELD_EFFECTS.items():
            values = {"company_size": size, "competitor": competitor, "renewal": renewal}[name]
            log_odds += effect * (values == level)
        log_odds += INTERACTION_EFFECT * ((competitor == "Globex") & (size == "Enterprise"))
        log_odds += CONTACTS_EFFECT * (contacts - 4)
    return {
        "Company Size": size,
        "Competitor": competitor,
        "Contacts": contacts,
        "Renewal": renewal,
        "Campaign": campaign,
        "Contract End": np.asarray(contract_end),
    }


def fields_layout() -> dict:
    """The `ingest.layouts` entry that reads `SynthSpec(extra_fields=True)` files: built-in columns plus the
    extra fields, declared in configuration only."""
    columns = {name: name for name in BUNDLED_COLUMNS}
    return {"columns": columns, "fields": dict(EXTRA_FIELDS)}


MESSY_EFFECTS = {
    ("lead_source", "Outbound"): -0.6,
    ("lead_source", "Referral"): 0.4,
    ("competitor", "Globex"): -0.9,
    ("competitor", "Acme"): -0.3,
}
"""Real effects of the messy export: lead source and the extra `competitor` field (plus +0.15 per contact)."""
CONTACT_EFFECT = 0.15
MESSY_FIELDS = {
    "competitor": {"column": "Competitor", "kind": "category", "known": "creation", "label": "Competitor"},
    "contacts": {"column": "Contacts", "kind": "number", "known": "creation", "label": "Contacts"},
    "forecast_category": {
        "column": "Forecast Category",
        "kind": "category",
        "known": "creation",
        "label": "Forecast category",
    },
    "close_period": {"column": "Close Period", "kind": "category", "known": "creation", "label": "Close period"},
    "cycle_bucket": {"column": "Cycle Bucket", "kind": "category", "known": "creation", "label": "Cycle bucket"},
    "close_reason": {"column": "Close Reason", "kind": "category", "known": "close", "label": "Close reason"},
}
"""The layout a naive user would write for the messy export: three leaky columns declared known at creation (only
the data can tell), and one correctly declared known at close."""


@dataclass(frozen=True)
class MessySpec:
    """A CRM export with every quirk real ones have (see `generate_messy`)."""

    deals: int = 6000
    seed: int = 0
    start: date = date(2023, 1, 1)
    days: int = 600
    """Deals are created over this many days; the export ends on the last one."""
    base_win_rate: float = 0.62
    noise: bool = False
    zombie_share: float = 0.04
    enterprise_share: float = 0.25

    @property
    def data_end(self) -> date:
        return (pd.Timestamp(self.start) + pd.Timedelta(days=self.days)).date()


def messy_layout() -> dict:
    """The `ingest.layouts` entry that reads a messy export (canonical columns plus its extra fields)."""
    columns = {name: name for name in BUNDLED_COLUMNS if name != "sales_cycle_days"}  # the messy export has none
    return {"columns": columns, "fields": dict(MESSY_FIELDS)}


def generate_messy(spec: MessySpec) -> SynthData:
    """A messy real-world export, deterministic per seed. It plants:

    - short and long cycles: SMB deals close in a median of about 8 days, Enterprise ones in about 90 (the median
      over all deals is under two weeks), and lost deals drag on longer than won ones (unless `noise`);
    - real signal in a field the bundled data never had (`Competitor`), in a number (`Contacts`) and in lead source
      (none at all with `noise`);
    - fields that encode the outcome: a stage with Closed Won / Closed Lost levels, a forecast category that is
      "Closed" or "Omitted" once a deal ends, a close-period band and a cycle-length bucket filled in only at close,
      a close reason, and an amount recorded as 0 on every lost deal;
    - zombies: open deals created early and never closed out, older than any deal that ever closed;
    - an export that ends on `data_end`: callers replay it months later to see data that stops before "today";
    - placeholders for unset picklists: about 6% of industries read "Unknown", "N/A" or "-".
    """
    rng = np.random.default_rng(spec.seed)
    n = spec.deals
    created = pd.Timestamp(spec.start) + pd.to_timedelta(rng.integers(0, spec.days, n), unit="D")
    enterprise = rng.random(n) < spec.enterprise_share
    amount = np.round(np.exp(rng.uniform(np.log(3_000), np.log(150_000), n)))
    attributes = {
        "sales_rep_id": rng.choice(REPS, n),
        "industry": rng.choice(INDUSTRIES, n),
        "region": rng.choice(REGIONS, n),
        "product_type": np.where(enterprise, "Enterprise", rng.choice(PRODUCTS[:2], n)),
        "lead_source": rng.choice(LEAD_SOURCES, n),
    }
    competitor = rng.choice(["", "Acme", "Globex"], n, p=[0.5, 0.25, 0.25])
    contacts = rng.integers(1, 9, n)
    log_odds = np.full(n, logit(spec.base_win_rate))
    if not spec.noise:
        for (name, level), effect in MESSY_EFFECTS.items():
            values = competitor if name == "competitor" else attributes[name]
            log_odds += effect * (values == level)
        log_odds += CONTACT_EFFECT * (contacts - 4.5)
    p_win = expit(log_odds)
    won = rng.random(n) < p_win
    median = np.where(enterprise, 90.0, 8.0) * np.where(won | spec.noise, 1.0, 1.5)
    cycle = np.maximum(1, np.floor(rng.gamma(2.0, median / 1.68)).astype(int))
    closed = created + pd.to_timedelta(cycle, unit="D")
    end = pd.Timestamp(spec.data_end)
    is_open = np.asarray(closed > end)
    zombie = (rng.random(n) < spec.zombie_share) & ((created - pd.Timestamp(spec.start)).days.to_numpy() < 90)
    is_open |= zombie
    is_closed = ~is_open
    width = max(5, len(str(n)))
    deal_ids = np.array([f"D{i:0{width}d}" for i in range(1, n + 1)])
    open_stage = rng.choice(["Discovery", "Proposal", "Negotiation"], n)
    closed_text = np.where(is_closed, closed.strftime("%Y-%m-%d"), "")
    quarter = closed.to_period("Q").astype(str).to_numpy()
    bucket = np.where(cycle < 7, "<7 days", np.where(cycle < 30, "7-29 days", "30+ days"))
    crm = pd.DataFrame(
        {
            "deal_id": deal_ids,
            "created_date": created.strftime("%Y-%m-%d"),
            "closed_date": closed_text,
            **attributes,
            "deal_stage": np.where(is_open, open_stage, np.where(won, "Closed Won", "Closed Lost")),
            "deal_amount": np.where(is_closed & ~won, 0, amount).astype(int),
            "outcome": np.where(is_open, "", np.where(won, "Won", "Lost")),
            "Competitor": competitor,
            "Contacts": contacts,
            "Forecast Category": np.where(
                is_open, rng.choice(["Pipeline", "Best Case", "Commit"], n), np.where(won, "Closed", "Omitted")
            ),
            "Close Period": np.where(is_closed, quarter, ""),
            "Cycle Bucket": np.where(is_closed, bucket, ""),
            "Close Reason": np.where(
                is_open, "", np.where(won, "Won", rng.choice(["Price", "Competitor", "No decision"], n))
            ),
        }
    )
    placeholders = np.random.default_rng(spec.seed + 1)  # its own stream: the rest of the export stays as it was
    unset = placeholders.random(n) < 0.06
    crm["industry"] = np.where(unset, placeholders.choice(["Unknown", "N/A", "-"], n), crm["industry"])
    truth = pd.DataFrame(
        {
            "deal_id": deal_ids,
            "p_win": p_win,
            "won": won,
            "cycle_days": cycle,
            "open": is_open,
            "zombie": zombie & is_open,
        }
    )
    return SynthData(crm, truth, spec)


HIDDEN = ("\u200b", "\x00")
"""A zero-width space and a NUL: invisible when an id is read."""


@dataclass(frozen=True)
class IngestHazards:
    """What `plant_ingest_hazards` did to an export, so a test can check each hazard was caught."""

    case_twins: tuple[str, ...]
    """Ids re-used on another row in another case ("D00007" and "d00007")."""
    invisible: tuple[str, ...]
    """Ids with a zero-width space or a NUL inside: they look like an existing deal's id."""
    infinite_amounts: tuple[str, ...]
    fractional_cycles: tuple[str, ...]


def plant_ingest_hazards(crm: pd.DataFrame, seed: int = 0, each: int = 3) -> tuple[pd.DataFrame, IngestHazards]:
    """The row-level hazards of hand-edited and machine-mangled exports, `each` of every kind, on copies of real
    rows appended at the end (so every original deal still loads):

    - an id repeated in another case (two rows, one deal to a reader);
    - an id with a zero-width space or a NUL inside (looks like another deal's id);
    - an amount of "inf" or "1e400" (overflows to infinity);
    - a fractional sales_cycle_days ("31.5").

    File-level hazards (a duplicated header, an optional column missing, a file still being written) are made by
    the test writing the CSV; see `tests/test_ingest.py`.
    """
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(crm), size=4 * each, replace=False)
    rows = crm.iloc[picks].copy().astype(object)
    twins, invisible, infinite, fractional = (rows.iloc[k * each : (k + 1) * each].copy() for k in range(4))
    twins["deal_id"] = twins["deal_id"].str.swapcase()
    invisible["deal_id"] = [d[:2] + HIDDEN[k % 2] + d[2:] for k, d in enumerate(invisible["deal_id"])]
    infinite["deal_id"] = [f"{d}-INF" for d in infinite["deal_id"]]
    infinite["deal_amount"] = ["inf" if k % 2 == 0 else "1e400" for k in range(len(infinite))]
    fractional["deal_id"] = [f"{d}-FRAC" for d in fractional["deal_id"]]
    if "sales_cycle_days" in fractional:
        fractional["sales_cycle_days"] = [
            f"{float(c) + 0.5}" if str(c) not in ("", "nan") else "12.5" for c in fractional["sales_cycle_days"]
        ]
    planted = pd.concat([crm.astype(object), twins, invisible, infinite, fractional], ignore_index=True)
    return planted, IngestHazards(
        tuple(twins["deal_id"]), tuple(invisible["deal_id"]), tuple(infinite["deal_id"]), tuple(fractional["deal_id"])
    )


def half_copied(text: str, share: float = 0.5) -> str:
    """An export caught while it is still being copied into the watched folder: the first `share` of its bytes,
    cut mid-line as a copy is."""
    return text[: int(len(text) * share)]


def filtered_export(text: str, deals: int) -> str:
    """A report someone exported with a filter still on: the header and only the first `deals` rows."""
    lines = text.splitlines(keepends=True)
    return "".join(lines[: 1 + deals])
