"""The records the store hands out: rows decoded once, at the store's edge, into typed immutable values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime

import orjson

from salesintel.engine.records import TYPICAL, MetricsSummary, Reason, ScoredDeal
from salesintel.engine.snapshot_guard import SnapshotFacts


class StoreError(Exception):
    """The store file cannot be opened or is from a newer salesintel."""


@dataclass(frozen=True)
class Snapshot:
    id: int
    source: str
    sha256: str
    layout: str
    taken_at: datetime
    loaded_at: datetime
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    fields: dict = dataclass_field(default_factory=dict)
    """The layout's extra fields (name → declaration: column, kind, known, label)."""
    promoted: bool = True
    """Read by refreshes; a held snapshot (see `engine.snapshot_guard`) is stored for inspection only."""
    held_reason: str | None = None
    facts: SnapshotFacts | None = None
    """What the guard compares the next snapshot with (None for snapshots stored before the guard)."""

    @classmethod
    def from_row(cls, row: dict) -> Snapshot:
        facts = json.loads(row.get("facts") or "null")
        return cls(
            **{
                **row,
                "taken_at": datetime.fromisoformat(row["taken_at"]),
                "loaded_at": datetime.fromisoformat(row["loaded_at"]),
                "fields": json.loads(row.get("fields") or "{}"),
                "promoted": bool(row.get("promoted", 1)),
                "facts": SnapshotFacts(**{**facts, "columns": tuple(facts["columns"])}) if facts else None,
            }
        )

    def guard_facts(self) -> SnapshotFacts:
        """Its facts, or for a snapshot stored before the guard what its row says (deal count only)."""
        return self.facts or SnapshotFacts(self.rows_read, self.rows_loaded, 0.0, ())


@dataclass(frozen=True)
class Refresh:
    id: int
    snapshot_id: int
    as_of: date
    computed_at: datetime
    metrics: MetricsSummary
    model_id: int | None = None


@dataclass(frozen=True)
class StoredModel:
    """A model version: its training window and metrics, and the fitted model (in `engine.model_format`)."""

    id: int
    snapshot_id: int
    as_of: date
    trained_at: datetime
    summary: dict
    pipeline: bytes

    @property
    def version(self) -> str:
        return f"v{self.id}"


def refresh_from_row(row: dict) -> Refresh:
    return Refresh(
        row["id"],
        row["snapshot_id"],
        date.fromisoformat(row["as_of"]),
        datetime.fromisoformat(row["computed_at"]),
        MetricsSummary.from_json(_upgraded(json.loads(row["metrics"]))),
        row.get("model_id"),
    )


def _upgraded(metrics: dict) -> dict:
    """Metrics stored by an older salesintel, with the keys added since filled in so every report still renders.

    Nothing is invented: a refresh from before the risk rule calls no deal at risk and says to refresh.
    """
    metrics.setdefault("coverage", {"first": None, "last": None, "days_after_data": None})
    metrics.setdefault(
        "fields",
        {
            "used": [],
            "excluded": [],
            "landmarks": [],
            "supported_age": None,
            "supported_quantile": None,
            "landmarks_from_data": False,
        },
    )
    metrics.setdefault("warnings", [])
    metrics.setdefault(
        "risk_rule",
        {
            "active": False,
            "threshold": None,
            "source": None,
            "reason": "This refresh predates the risk rule: run `salesintel refresh`.",
        },
    )
    pipeline = metrics.get("open_pipeline", {})
    pipeline.setdefault("long_open_days", 90)
    pipeline.setdefault("long_open", pipeline.get("older_than_90_days", 0))
    pipeline.setdefault("long_open_from_data", False)
    for key, value in (("stale_count", 0), ("stale_value", 0.0), ("stale_after_days", None), ("stale_quantile", None)):
        pipeline.setdefault(key, value)
    metrics.get("pqi", {}).setdefault("rule_based", None)
    metrics.get("anomalies", {}).setdefault("skipped", None)
    for segment in metrics.get("segments", []):
        segment.setdefault("field", "deal_amount" if segment["dimension"] == "amount_band" else segment["dimension"])
    for driver in (metrics.get("model") or {}).get("drivers") or []:
        driver.setdefault("label", driver.get("feature"))
    return metrics


def reason_from_json(value: dict) -> Reason:
    """A reason as the store keeps it (its qualifier is recomputed from `significant`, never trusted)."""
    return Reason(**{name: value[name] for name in Reason._fields if name in value})


def score_from_row(row: dict, catalogue: list[Reason]) -> ScoredDeal:
    """A stored score: its columns, its explanation (`detail`), and its reasons expanded from the refresh's
    catalogue (rows written before reasons were shared hold them whole)."""
    detail = orjson.loads(row["detail"] or "null") or {}
    reasons = tuple(
        catalogue[ref[0]]._replace(effect=ref[1]) if isinstance(ref, list) else reason_from_json(ref)
        for ref in orjson.loads(row["reasons"])
    )
    return ScoredDeal(
        deal_id=row["deal_id"],
        p_win=row["p_win"],
        risk=row["risk"],
        method=row["method"],
        model_id=row["model_id"],
        reasons=reasons,
        deal_amount=row["deal_amount"],
        age_days=row["age_days"],
        deal_stage=row["deal_stage"],
        sales_rep_id=row["sales_rep_id"],
        deal_name=row["deal_name"],
        base_p_win=detail.get("base_p_win"),
        age_p_win=detail.get("age_p_win"),
        standing=detail.get("standing", TYPICAL),
        summary=detail.get("summary", ""),
        stale=bool(detail.get("stale", False)),
    )


def model_from_row(row: dict) -> StoredModel:
    return StoredModel(
        row["id"],
        row["snapshot_id"],
        date.fromisoformat(row["as_of"]),
        datetime.fromisoformat(row["trained_at"]),
        json.loads(row["summary"]),
        row["pipeline"],
    )


ALERT_OPEN, ALERT_ACKNOWLEDGED, ALERT_SNOOZED, ALERT_RESOLVED = "open", "acknowledged", "snoozed", "resolved"
"""An alert episode's states (see `alerts.episodes`)."""

OUTBOX_PENDING, OUTBOX_SENDING, OUTBOX_SENT, OUTBOX_FAILED, OUTBOX_FOLDED, OUTBOX_DIGESTED = (
    "pending",
    "sending",
    "sent",
    "failed",
    "folded",
    "digested",
)
"""An outbox message's statuses (see `alerts.outbox`)."""


@dataclass(frozen=True)
class Alert:
    """One episode of a rule on a deal: what was said, to whom, and what people did about it."""

    id: int
    key: str
    """`rule:deal_id:episode`, unique."""
    rule: str
    deal_id: str
    episode: int
    state: str
    control: bool
    """Held back (the control group): recorded, never sent."""
    risk: float | None
    last_sent_risk: float | None
    sends: int
    first_at: datetime | None
    last_sent_at: datetime | None
    snoozed_until: datetime | None
    acked_by: str | None
    acked_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None
    recipients: tuple[str, ...]
    payload: dict
    updated_at: datetime | None

    @classmethod
    def from_row(cls, row: dict) -> Alert:
        moments = ("first_at", "last_sent_at", "snoozed_until", "acked_at", "resolved_at", "updated_at")
        return cls(
            **{
                **row,
                **{name: datetime.fromisoformat(row[name]) if row[name] else None for name in moments},
                "control": bool(row["control"]),
                "sends": int(row["sends"] or 0),
                "recipients": tuple(json.loads(row["recipients"] or "[]")),
                "payload": json.loads(row["payload"] or "{}"),
            }
        )

    def to_json(self) -> dict:
        """The alert as JSON values (times in ISO 8601), for `--json` output."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else list(value) if name == "recipients" else value
            for name, value in ((f, getattr(self, f)) for f in self.__dataclass_fields__)
        }


@dataclass(frozen=True)
class OutboxMessage:
    """A queued message: where it goes, what it says, and how far delivery got."""

    id: int
    dedupe_key: str
    kind: str
    target: str
    """`channel:#name`, `channel:C123`, `user:<rep or manager id>` or `slack:U123`."""
    text: str
    blocks: list[dict]
    attempts: int
    alert_id: int | None
    status: str = OUTBOX_PENDING
    note: str | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    sent_at: datetime | None = None
    slack_channel: str | None = None
    slack_ts: str | None = None
    attachments: tuple = ()
    """Files sent with the message: dicts of name, title, alt (text) and png (base64)."""

    @classmethod
    def from_row(cls, row: dict) -> OutboxMessage:
        return cls(
            id=row["id"],
            dedupe_key=row["dedupe_key"],
            kind=row["kind"],
            target=row["target"],
            text=row["text"],
            blocks=json.loads(row["blocks"] or "[]"),
            attempts=row["attempts"],
            alert_id=row["alert_id"],
            status=row["status"],
            note=row["note"],
            last_error=row["last_error"],
            created_at=datetime.fromisoformat(row["created_at"]) if row["created_at"] else None,
            sent_at=datetime.fromisoformat(row["sent_at"]) if row["sent_at"] else None,
            slack_channel=row["slack_channel"],
            slack_ts=row["slack_ts"],
            attachments=tuple(json.loads(row.get("attachments") or "[]")),
        )


@dataclass(frozen=True)
class ThresholdChange:
    """A change of a rule's threshold made from feedback (`alerts.tuning`): what it was, what it became, why, and
    the bounds it was kept within. The refresh applies the latest one's offset to the rule's own threshold."""

    id: int
    rule: str
    decided_at: datetime
    threshold_offset: float
    """Added to the threshold the rule chooses (configured or auto); cumulative over changes."""
    old_threshold: float | None
    new_threshold: float | None
    min_threshold: float
    max_threshold: float
    reason: str
    evidence: dict

    @property
    def applies_from(self) -> date:
        """The as-of date from which refreshes apply it: the date of the refresh it was decided on (else the day it
        was decided), so a refresh of an earlier date is not moved by what was said after it."""
        recorded = self.evidence.get("as_of")
        return date.fromisoformat(recorded) if recorded else self.decided_at.date()

    @classmethod
    def from_row(cls, row: dict) -> ThresholdChange:
        return cls(
            id=row["id"],
            rule=row["rule"],
            decided_at=datetime.fromisoformat(row["decided_at"]),
            threshold_offset=row["threshold_offset"],
            old_threshold=row["old_threshold"],
            new_threshold=row["new_threshold"],
            min_threshold=row["min_threshold"],
            max_threshold=row["max_threshold"],
            reason=row["reason"],
            evidence=json.loads(row["evidence"] or "{}"),
        )
