"""Typed settings for the engine: CRM layouts, store and metric definitions.

The YAML file is validated once, at start-up, into these models (see `bot/config.py`); code below the
composition root receives these objects and never reads YAML itself.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CANONICAL_FIELDS = (
    "deal_id",
    "deal_name",
    "created_date",
    "closed_date",
    "sales_rep_id",
    "industry",
    "region",
    "product_type",
    "lead_source",
    "deal_stage",
    "deal_amount",
    "sales_cycle_days",
    "outcome",
)
"""Every field a deal has inside salesintel, whatever the CRM called it."""

SEGMENT_FIELDS = ("industry", "region", "product_type", "lead_source", "sales_rep_id")
"""Deal attributes known when the deal is created; the dimensions metrics are cut by."""


class FrozenSettings(BaseModel):
    """Base of every settings model: unknown keys are errors, values never change after start-up."""

    model_config = ConfigDict(extra="forbid", frozen=True)


RESERVED_NAMES = (
    *CANONICAL_FIELDS,
    "amount_band",
    "age_band",
    "cycle_band",
    "close_quarter",
    "landmark",
    "won",
    "line",
    "age_days",
    "extras",
)
"""Names an extra field may not take: they already mean something inside salesintel."""


class ExtraField(FrozenSettings):
    """One more CRM column, beyond the canonical ones: what it holds and when its value is known.

    `known` decides whether the field may be used as-is for point-in-time scoring and findings:
    - `creation`: set when the deal is created and not changed afterwards (competitor, company size, campaign);
    - `changing`: changes over the deal's life (stage, forecast category, next step): a single snapshot shows only
      its latest value, so it is never used as-is;
    - `close`: exists only once a deal has closed (close reason, final amount): never used.
    Even a `creation` field is excluded when the data shows it encodes the outcome (see `engine.fields`).
    """

    column: str | list[str]
    kind: Literal["category", "number", "boolean", "date"] = "category"
    """What a cell must hold: any text, a number, true/false, or a date (in the layout's `date_format`, or ISO
    8601). A cell that is not what its kind says rejects the row; an empty or placeholder cell is missing."""
    known: Literal["creation", "changing", "close"] = "creation"
    label: str | None = None
    """How reports name the field (default: the column name)."""
    unit: str | None = None
    """What a number counts (`employees`, `USD`, `days`, `%`), printed beside it in reports; numbers only."""

    @model_validator(mode="after")
    def _unit_on_numbers_only(self) -> ExtraField:
        if self.unit is not None and self.kind != "number":
            raise ValueError(f"unit {self.unit!r} is only for number fields; this field is kind {self.kind}")
        return self

    def candidates(self) -> list[str]:
        return [self.column] if isinstance(self.column, str) else list(self.column)


class OutcomeFlags(FrozenSettings):
    """Outcome read from two boolean columns (Salesforce's IsClosed / IsWon) instead of one text column."""

    closed: str
    won: str


class Layout(FrozenSettings):
    """How one CRM export names its columns and values.

    `columns` maps a canonical field to the export's column; a list means "the first of these that the file
    has" (a Salesforce report may say `OwnerId` or `Owner`). A field absent from the file takes its value from
    `defaults`; a field with neither is missing, which is an error for required fields.
    """

    columns: dict[str, str | list[str]]
    defaults: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, ExtraField] = Field(default_factory=dict)
    """Extra columns by the name salesintel gives them (lower-case, e.g. `competitor`)."""
    outcome_flags: OutcomeFlags | None = None
    won_values: list[str] = ["Won", "Closed Won"]
    lost_values: list[str] = ["Lost", "Closed Lost"]
    open_values: list[str] = ["", "Open"]
    date_format: str | None = None
    """strptime format of the date columns; None accepts ISO 8601 dates and timestamps."""
    encoding: str = "utf-8-sig"

    @field_validator("columns", "defaults")
    @classmethod
    def _known_fields(cls, mapping: dict) -> dict:
        unknown = sorted(set(mapping) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(CANONICAL_FIELDS)}")
        return mapping

    @field_validator("fields")
    @classmethod
    def _extra_names(cls, fields: dict) -> dict:
        for name in fields:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
                raise ValueError(f"field name {name!r} must be lower-case letters, digits and _ (e.g. competitor)")
            if name in RESERVED_NAMES:
                raise ValueError(f"field name {name!r} is taken by salesintel; choose another")
        return fields

    @model_validator(mode="after")
    def _outcome_source(self) -> Layout:
        if self.outcome_flags is None and "outcome" not in self.columns:
            raise ValueError("a layout needs an `outcome` column or `outcome_flags`")
        return self

    def candidates(self, field: str) -> list[str]:
        """The export columns that may hold `field`, in order of preference."""
        source = self.columns.get(field, [])
        return [source] if isinstance(source, str) else list(source)


SKYGENI_LAYOUT = Layout(
    columns={field: field for field in CANONICAL_FIELDS if field != "deal_name"},
    defaults={},
)
"""The layout of the brief's dataset (`data/skygeni_sales_data.csv`), built in so no config is needed."""

SALESFORCE_LAYOUT = Layout(
    columns={
        "deal_id": "Id",
        "deal_name": "Name",
        "deal_stage": "StageName",
        "deal_amount": "Amount",
        "created_date": "CreatedDate",
        "closed_date": "CloseDate",
        "sales_rep_id": ["OwnerId", "Owner"],
        "lead_source": "LeadSource",
        "industry": "Industry",
        "product_type": "Type",
    },
    defaults={"region": "Unknown"},
    outcome_flags=OutcomeFlags(closed="IsClosed", won="IsWon"),
    fields={
        "forecast_category": ExtraField(
            column="ForecastCategoryName", kind="category", known="changing", label="Forecast category"
        ),
        "probability": ExtraField(column="Probability", kind="number", unit="%", known="changing", label="Probability"),
        "next_step": ExtraField(column="NextStep", kind="category", known="changing", label="Next step"),
        "expected_revenue": ExtraField(
            column="ExpectedRevenue", kind="number", unit="USD", known="changing", label="Expected revenue"
        ),
        "last_activity": ExtraField(column="LastActivityDate", kind="date", known="changing", label="Last activity"),
    },
)
"""A Salesforce Opportunity report export, built in. Its extra fields are the Opportunity's own columns that a
report often carries; they all change over a deal's life (a rep edits the forecast category and next step, Salesforce
moves the probability with the stage), so they are kept for reports but never scored. A file without one of these
columns simply has no value for that field."""


class WarehouseSettings(FrozenSettings):
    """A SQL source read on the refresh schedule besides (or instead of) CSV files (see `engine.warehouse`)."""

    url: str | None = None
    """A SQLAlchemy URL (postgresql+psycopg://…, snowflake://…, bigquery://…); SALESINTEL_WAREHOUSE_URL overrides it,
    so a password need not be in this file. The dialect's driver must be installed beside salesintel."""
    query: str | None = None
    """The query whose columns the layout maps, as a CSV export's header would be."""
    query_file: str | None = None
    """... or a file holding it (relative to the config file)."""
    layout: str | None = None
    """The layout of the query's columns (default: ingest.layout)."""


class IngestSettings(FrozenSettings):
    layout: str = "auto"
    """Layout to read files with; `auto` picks the one layout whose required columns the header has."""
    layouts: dict[str, Layout] = Field(default_factory=dict)
    cycle_days_tolerance: int = 1
    """How far sales_cycle_days may differ from closed_date - created_date before the row is rejected."""
    max_drop_share: float = Field(0.5, gt=0, le=1)
    """A new snapshot with this share fewer deals or less open pipeline than the previous one is held, not used,
    until accepted (`ingest --accept`): a filtered or half-copied export must not become the truth."""
    watch_settle_seconds: int = Field(60, ge=0)
    """A file in the watched folder is read only once it has not changed for this long (it may still be copying)."""
    warehouse: WarehouseSettings = WarehouseSettings()

    def all_layouts(self) -> dict[str, Layout]:
        """Built-in layouts plus those from config (config wins on a name clash)."""
        return {"skygeni": SKYGENI_LAYOUT, "salesforce": SALESFORCE_LAYOUT, **self.layouts}


class MetricsSettings(FrozenSettings):
    min_sample: int = Field(50, ge=1)
    """Below this many closed deals a segment is "insufficient data", never a finding."""
    fdr_q: float = Field(0.05, gt=0, lt=1)
    """Benjamini–Hochberg false discovery rate across all segment comparisons in one refresh."""
    confidence: float = Field(0.95, gt=0, lt=1)
    amount_bands: list[float] = [10_000, 25_000, 50_000]
    cycle_bands: list[int] = [30, 60, 90]
    stage_win_probability: dict[str, float] = {
        "Qualified": 0.10,
        "Demo": 0.25,
        "Proposal": 0.50,
        "Negotiation": 0.70,
        "Closed": 0.90,
    }
    """Rule-based P(win) by current stage (the CRM's forecast probability), used until a model has skill."""
    default_win_probability: float = Field(0.25, ge=0, le=1)
    """Rule-based P(win) for a stage missing from `stage_win_probability`."""
    high_probability: float = Field(0.5, gt=0, lt=1)
    """An open deal is "high-probability" for PQI when its P(win) is at least this."""
    res_window_days: int = Field(90, ge=1)
    """RES headline window: deals closed in the last this-many days up to the as-of date."""
    trend_months: int = Field(12, ge=1)
    """How many months of per-period PQI / RES / win rate to show."""
    stale_quantile: float = Field(0.98, gt=0.5, lt=1)
    """An open deal older than this quantile of closed deals' cycle lengths is "stale — likely dead": history
    says nothing about deals that old, so it is shown apart from the live pipeline."""
    include_stale_in_pipeline: bool = False
    """Count stale deals in PQI and expected value (they are always shown, apart, in pipeline totals)."""

    @field_validator("amount_bands", "cycle_bands")
    @classmethod
    def _increasing(cls, edges: list) -> list:
        if any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError("band edges must be strictly increasing")
        return edges


class ModelSettings(FrozenSettings):
    landmarks: list[int] | Literal["auto"] = "auto"
    """Deal ages (days) at which a closed deal contributes a training example, if it was still open then.
    `auto` takes them from the data: 0 and the 33/67/90th percentiles of closed deals' cycle lengths, so a
    business whose deals close in 12 days and one whose deals close in 120 are both scored at ages that matter."""
    regularization_grid: list[float] = [0.001, 0.01, 0.1, 1.0]
    """Candidate inverse L2 strengths (scikit-learn's C). The one with the best Brier score on the latest part of
    the training window is used, so on noise the model shrinks to the base rate instead of fitting chance."""
    holdout_fraction: float = Field(0.25, gt=0, lt=0.5)
    """The latest-closed share of history held out to measure skill (time-ordered, never shuffled)."""
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    """The share of history that closed just before the holdout: it chooses the model family and calibrates it."""
    families: list[Literal["logistic regression", "gradient-boosted trees"]] = [
        "logistic regression",
        "gradient-boosted trees",
    ]
    """Model families that compete on the validation slice (the lower Brier score wins)."""
    max_training_deals: int = Field(50_000, ge=1000)
    """Beyond this many closed deals the model is fitted on a random sample of this many: precision no longer
    limits it there, time does. Metrics, segments and evidence always use every deal."""
    bootstrap_samples: int = Field(200, ge=20)
    """Resamples (by deal) for the holdout AUC interval."""
    calibration_bins: int = Field(10, ge=2)
    min_training_deals: int = Field(200, ge=10)
    """Below this many closed deals no model is trained; scores fall back to shrunk segment rates or rules."""
    seed: int = 0
    """Seed of every random draw in training and evaluation (bootstrap), so a refresh is reproducible."""
    top_reasons: int = Field(3, ge=1)
    retrain_every_days: int = Field(30, ge=0)
    """A refresh reuses the newest model trained at most this many days before its as-of date (never after it);
    older than that, it trains a new version. 0 retrains on every refresh."""

    @field_validator("regularization_grid")
    @classmethod
    def _positive_grid(cls, grid: list[float]) -> list[float]:
        if not grid or any(c <= 0 for c in grid):
            raise ValueError("regularization_grid needs at least one positive value")
        return sorted(grid)

    leak_auc: float = Field(0.97, gt=0.5, le=1)
    """Holdout AUC above this is too good to be true for a sales forecast: a field likely encodes the outcome.
    The most separating field is dropped and the model refitted; if that does not help, the model is refused."""

    @field_validator("landmarks")
    @classmethod
    def _landmarks_start_at_zero(cls, landmarks):
        if landmarks == "auto":
            return landmarks
        if not landmarks or landmarks[0] != 0 or any(b <= a for a, b in zip(landmarks, landmarks[1:])):
            raise ValueError("landmarks must start at 0 and increase strictly")
        return landmarks


class AnomalySettings(FrozenSettings):
    """Segment anomalies (monthly deep-dive): a recent window against the segment's own baseline just before it."""

    recent_days: int = Field(90, ge=7)
    baseline_days: int = Field(365, ge=30)
    min_sample: int = Field(50, ge=1)
    """Closed deals a segment needs in each window to be tested."""
    fdr_q: float = Field(0.05, gt=0, lt=1)
    min_coverage: float = Field(0.5, gt=0, le=1)
    """A window whose dates the data covers less than this share of is too thin to compare: skipped, with why."""


class RiskRuleSettings(FrozenSettings):
    """What "at risk" means, for every surface: risk above a threshold, when the scores have shown skill.

    Configured under `alerts.realtime` (min_risk, target_share, min_lift) and handed to the engine at start-up.
    """

    min_risk: float | Literal["auto"] = "auto"
    """A fixed risk threshold, or `auto`: the threshold that flags `target_share` of the holdout's open deals."""
    target_share: float = Field(0.10, gt=0, lt=1)
    """With `auto`: the share of open deals the rule should flag (alert volume)."""
    min_lift: float = Field(1.15, ge=1)
    """The rule speaks only when flagged deals lost at least this many times as often as average on the holdout
    (and the lift's 95% interval is above 1); otherwise it stays silent and says why."""
    apply_tuning: bool = True
    """Apply the latest feedback-tuned change of the threshold (`alerts.realtime.tuning.enabled`)."""
    neighbour_step: float = Field(0.05, gt=0, lt=0.5)
    """The holdout is also measured this far below and above the threshold: what a feedback-tuned step would do
    (`alerts.realtime.tuning.step`)."""

    @field_validator("min_risk")
    @classmethod
    def _a_probability(cls, value):
        if value != "auto" and not 0 < value < 1:
            raise ValueError("min_risk must be between 0 and 1, or auto")
        return value
