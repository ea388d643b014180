"""The store's schema: versioned with `PRAGMA user_version`.

`MIGRATIONS[i]` takes a store from version i to i + 1, so a newer salesintel opens an older file by running the steps
it has not seen, each in its own transaction (see `Store.open`). Every table lives here, whichever layer's rows it
holds: the engine's snapshots, deals and refreshes, the alerts' episodes, outbox and job runs.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from salesintel.engine.ingest import DEAL_COLUMNS
from salesintel.engine.missing import MISSING_WORDS

MAYBE_PLACEHOLDER_COLUMNS = ("industry", "region", "product_type", "lead_source", "deal_stage")
"""Text columns that stores written before placeholders became missing values may hold "Unknown" in (cleared by a
migration)."""


def _create_core_tables(db: sqlite_utils.Database) -> None:
    db["snapshots"].create(
        {
            "id": int,
            "source": str,
            "sha256": str,
            "layout": str,
            "taken_at": str,
            "loaded_at": str,
            "rows_read": int,
            "rows_loaded": int,
            "rows_rejected": int,
        },
        pk="id",
        not_null={"source", "sha256", "taken_at", "loaded_at"},
    )
    db["snapshots"].create_index(["sha256"], unique=True)
    db["deals"].create(
        {
            "snapshot_id": int,
            "line": int,
            "deal_id": str,
            "deal_name": str,
            "created_date": str,
            "closed_date": str,
            "sales_rep_id": str,
            "industry": str,
            "region": str,
            "product_type": str,
            "lead_source": str,
            "deal_stage": str,
            "deal_amount": float,
            "sales_cycle_days": int,
            "outcome": str,
        },
        pk=("snapshot_id", "deal_id"),
        foreign_keys=[("snapshot_id", "snapshots", "id")],
    )
    db["rejects"].create(
        {"snapshot_id": int, "line": int, "deal_id": str, "reason": str, "raw": str},
        pk=("snapshot_id", "line"),
        foreign_keys=[("snapshot_id", "snapshots", "id")],
    )
    db["refreshes"].create(
        {"id": int, "snapshot_id": int, "as_of": str, "computed_at": str, "metrics": str},
        pk="id",
        foreign_keys=[("snapshot_id", "snapshots", "id")],
    )


def _create_model_tables(db: sqlite_utils.Database) -> None:
    db["models"].create(
        {
            "id": int,
            "snapshot_id": int,
            "as_of": str,
            "trained_at": str,
            "has_skill": int,
            "train_from": str,
            "train_to": str,
            "deals": int,
            "examples": int,
            "summary": str,
            "pipeline": bytes,
        },
        pk="id",
        foreign_keys=[("snapshot_id", "snapshots", "id")],
    )
    db["models"].create_index(["snapshot_id", "as_of"])
    db["refreshes"].add_column("model_id", int)
    db["scores"].create(
        {
            "refresh_id": int,
            "deal_id": str,
            "p_win": float,
            "risk": float,
            "method": str,
            "model_id": int,
            "reasons": str,
            "deal_amount": float,
            "age_days": int,
            "deal_stage": str,
            "sales_rep_id": str,
            "deal_name": str,
        },
        pk=("refresh_id", "deal_id"),
        foreign_keys=[("refresh_id", "refreshes", "id")],
    )
    db["scores"].create_index(["deal_id"])


def _create_alert_tables(db: sqlite_utils.Database) -> None:
    """Alert episodes, the outbox of messages to deliver, claims of scheduled runs, and Slack user ids."""
    db["alerts"].create(
        {
            "id": int,
            "key": str,
            "rule": str,
            "deal_id": str,
            "episode": int,
            "state": str,
            "control": int,
            "risk": float,
            "last_sent_risk": float,
            "sends": int,
            "first_at": str,
            "last_sent_at": str,
            "snoozed_until": str,
            "acked_by": str,
            "acked_at": str,
            "resolved_at": str,
            "resolution": str,
            "recipients": str,
            "payload": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"key", "rule", "deal_id", "state"},
    )
    db["alerts"].create_index(["key"], unique=True)
    db["alerts"].create_index(["deal_id", "rule", "episode"])
    db["outbox"].create(
        {
            "id": int,
            "dedupe_key": str,
            "alert_id": int,
            "kind": str,
            "target": str,
            "text": str,
            "blocks": str,
            "status": str,
            "attempts": int,
            "next_attempt_at": str,
            "last_error": str,
            "created_at": str,
            "sent_at": str,
            "slack_channel": str,
            "slack_ts": str,
            "note": str,
        },
        pk="id",
        not_null={"dedupe_key", "kind", "target", "status"},
    )
    db["outbox"].create_index(["dedupe_key"], unique=True)
    db["outbox"].create_index(["status", "next_attempt_at"])
    db["job_runs"].create(
        {"job": str, "fire_time": str, "status": str, "claimed_at": str, "finished_at": str, "note": str},
        pk=("job", "fire_time"),
    )
    db["slack_users"].create({"rep_id": str, "slack_id": str, "email": str, "looked_up_at": str}, pk="rep_id")


def _index_deals_by_id(db: sqlite_utils.Database) -> None:
    """A deal across snapshots (stage history) is looked up by id alone."""
    db["deals"].create_index(["deal_id", "snapshot_id"])


def _add_extra_fields(db: sqlite_utils.Database) -> None:
    """Extra CRM fields (declared per layout) ride along as JSON per deal; scores gain their explanation."""
    db["snapshots"].add_column("fields", str)
    db["deals"].add_column("extras", str)
    db["scores"].add_column("detail", str)


def _placeholders_to_null(db: sqlite_utils.Database) -> None:
    """Deals stored before placeholders became missing values: "Unknown", "N/A", "-" … become NULL, once."""
    words = sorted(MISSING_WORDS)
    marks = ", ".join("?" for _ in words)
    for column in MAYBE_PLACEHOLDER_COLUMNS:
        db.execute(f"UPDATE deals SET {column} = NULL WHERE lower(trim({column})) IN ({marks})", words)


DEALS_TABLE = """CREATE TABLE {name} (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id), line INTEGER NOT NULL, deal_id TEXT NOT NULL,
    deal_name TEXT, created_date TEXT, closed_date TEXT, sales_rep_id TEXT, industry TEXT, region TEXT,
    product_type TEXT, lead_source TEXT, deal_stage TEXT, deal_amount FLOAT, sales_cycle_days INTEGER, outcome TEXT,
    extras TEXT,
    PRIMARY KEY (snapshot_id, line)
) WITHOUT ROWID"""


def _lean_deals(db: sqlite_utils.Database) -> None:
    """Deals keyed by (snapshot, line) in a WITHOUT ROWID table, plus one unique index (deal_id, snapshot_id).

    Before, a rowid table carried two more b-trees: the (snapshot_id, deal_id) primary key and the deal-id index. A
    snapshot's rows arrive in line order, so the table itself is filled by appending; the unique index keeps a deal
    id once per snapshot and serves every lookup by id (`deal`, `stage_since`), while scans of one snapshot
    (`deals`, `closed_between`, `outcomes`, `find_deal_id`) walk the table's key prefix. Same columns, same order.
    """
    columns = ", ".join(("snapshot_id", *DEAL_COLUMNS, "extras"))
    db.execute(DEALS_TABLE.format(name="deals_lean"))
    db.execute(f"INSERT INTO deals_lean ({columns}) SELECT {columns} FROM deals ORDER BY snapshot_id, line")
    db.execute("DROP TABLE deals")
    db.execute("ALTER TABLE deals_lean RENAME TO deals")
    db.execute("CREATE UNIQUE INDEX idx_deals_deal_id_snapshot_id ON deals (deal_id, snapshot_id)")


def _add_snapshot_frames(db: sqlite_utils.Database) -> None:
    """Each snapshot's validated deals as one columnar blob (see `engine.deal_frames`), for fast bulk reads.

    Snapshots stored before this step have none and are read from their rows; nothing is back-filled here, so
    opening an old store stays quick.
    """
    db.execute(
        "CREATE TABLE snapshot_frames (snapshot_id INTEGER PRIMARY KEY REFERENCES snapshots(id),"
        " format TEXT NOT NULL, data BLOB NOT NULL)"
    )


def _drop_unused_score_index(db: sqlite_utils.Database) -> None:
    """Scores are read by refresh (and deal) through their primary key; the extra deal-id index cost a b-tree insert
    per open deal on every refresh and served no query."""
    db.execute("DROP INDEX IF EXISTS idx_scores_deal_id")


def _shared_reasons(db: sqlite_utils.Database) -> None:
    """Each refresh's distinct reasons, written once; its scores refer to them by position with their own effect
    (see `engine.scoring.ScoredDeals`), rather than repeating the same sentences in every open deal's row."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS refresh_reasons (refresh_id INTEGER PRIMARY KEY REFERENCES refreshes(id),"
        " catalogue TEXT NOT NULL)"
    )


def _held_snapshots(db: sqlite_utils.Database) -> None:
    """A snapshot can be stored without being promoted (see `engine.snapshot_guard`): only promoted snapshots are
    read by refreshes. Each keeps the facts the guard compares the next one with. Existing snapshots are promoted."""
    have = db["snapshots"].columns_dict
    for column, declaration in (("promoted", "INTEGER NOT NULL DEFAULT 1"), ("held_reason", "TEXT"), ("facts", "TEXT")):
        if column not in have:  # re-run safely on a store rewound to an earlier version
            db.execute(f"ALTER TABLE snapshots ADD COLUMN {column} {declaration}")


def _leases_and_claims(db: sqlite_utils.Database) -> None:
    """Several processes on one store: a lease row names the one that runs the scheduler and delivery (renewed with
    each tick, taken over when it expires), and an outbox row being sent names the process that claimed it and until
    when, so after a crash only expired claims are recovered."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at TEXT NOT NULL,"
        " acquired_at TEXT NOT NULL)"
    )
    have = db["outbox"].columns_dict
    for column in ("claimed_by", "claim_expires_at"):
        if column not in have:
            db.execute(f"ALTER TABLE outbox ADD COLUMN {column} TEXT")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _create_core_tables,
    _create_model_tables,
    _create_alert_tables,
    _index_deals_by_id,
    _add_extra_fields,
    _placeholders_to_null,
    _lean_deals,
    _add_snapshot_frames,
    _drop_unused_score_index,
    _shared_reasons,
    _held_snapshots,
    _leases_and_claims,
]
