"""The store's schema, versioned: one list of steps for SQLite and PostgreSQL alike.

`MIGRATIONS[i]` takes a store from version i to i + 1, so a newer salesintel opens an older store by running the steps
it has not seen, each in its own transaction (see `Store.open`). The version lives in `PRAGMA user_version` on SQLite
and in the `salesintel_schema` table on PostgreSQL. Steps write DDL in SQLite's words; `conn.ddl` says the same in
PostgreSQL's (see `engine.store.connections`). The first steps were once written with sqlite-utils' `create`; they
are spelled out here with the same tables, columns, types, keys and index names, so stores made before and after
agree. Every table lives here, whichever layer's rows it
holds: the engine's snapshots, deals and refreshes, the alerts' episodes, outbox and job runs.
"""

from __future__ import annotations

from collections.abc import Callable

from salesintel.engine.ingest import DEAL_COLUMNS
from salesintel.engine.missing import MISSING_WORDS
from salesintel.engine.store.connections import SqlConnection

MAYBE_PLACEHOLDER_COLUMNS = ("industry", "region", "product_type", "lead_source", "deal_stage")
"""Text columns that stores written before placeholders became missing values may hold "Unknown" in (cleared by a
migration)."""


def _create(conn: SqlConnection, table: str, body: str) -> None:
    conn.execute(conn.ddl(f"CREATE TABLE {table} (\n    {body}\n)"))


def _create_core_tables(conn: SqlConnection) -> None:
    _create(
        conn,
        "snapshots",
        "id INTEGER PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL, layout TEXT, taken_at TEXT NOT NULL,"
        " loaded_at TEXT NOT NULL, rows_read INTEGER, rows_loaded INTEGER, rows_rejected INTEGER",
    )
    conn.execute("CREATE UNIQUE INDEX idx_snapshots_sha256 ON snapshots (sha256)")
    _create(
        conn,
        "deals",
        "snapshot_id INTEGER REFERENCES snapshots(id), line INTEGER, deal_id TEXT, deal_name TEXT, created_date TEXT,"
        " closed_date TEXT, sales_rep_id TEXT, industry TEXT, region TEXT, product_type TEXT, lead_source TEXT,"
        " deal_stage TEXT, deal_amount FLOAT, sales_cycle_days INTEGER, outcome TEXT,"
        " PRIMARY KEY (snapshot_id, deal_id)",
    )
    _create(
        conn,
        "rejects",
        "snapshot_id INTEGER REFERENCES snapshots(id), line INTEGER, deal_id TEXT, reason TEXT, raw TEXT,"
        " PRIMARY KEY (snapshot_id, line)",
    )
    _create(
        conn,
        "refreshes",
        "id INTEGER PRIMARY KEY, snapshot_id INTEGER REFERENCES snapshots(id), as_of TEXT, computed_at TEXT,"
        " metrics TEXT",
    )


def _create_model_tables(conn: SqlConnection) -> None:
    _create(
        conn,
        "models",
        "id INTEGER PRIMARY KEY, snapshot_id INTEGER REFERENCES snapshots(id), as_of TEXT, trained_at TEXT,"
        " has_skill INTEGER, train_from TEXT, train_to TEXT, deals INTEGER, examples INTEGER, summary TEXT,"
        " pipeline BLOB",
    )
    conn.execute("CREATE INDEX idx_models_snapshot_id_as_of ON models (snapshot_id, as_of)")
    conn.execute("ALTER TABLE refreshes ADD COLUMN model_id INTEGER")
    _create(
        conn,
        "scores",
        "refresh_id INTEGER REFERENCES refreshes(id), deal_id TEXT, p_win FLOAT, risk FLOAT, method TEXT,"
        " model_id INTEGER, reasons TEXT, deal_amount FLOAT, age_days INTEGER, deal_stage TEXT, sales_rep_id TEXT,"
        " deal_name TEXT, PRIMARY KEY (refresh_id, deal_id)",
    )
    conn.execute("CREATE INDEX idx_scores_deal_id ON scores (deal_id)")


def _create_alert_tables(conn: SqlConnection) -> None:
    """Alert episodes, the outbox of messages to deliver, claims of scheduled runs, and Slack user ids."""
    _create(
        conn,
        "alerts",
        "id INTEGER PRIMARY KEY, key TEXT NOT NULL, rule TEXT NOT NULL, deal_id TEXT NOT NULL, episode INTEGER,"
        " state TEXT NOT NULL, control INTEGER, risk FLOAT, last_sent_risk FLOAT, sends INTEGER, first_at TEXT,"
        " last_sent_at TEXT, snoozed_until TEXT, acked_by TEXT, acked_at TEXT, resolved_at TEXT, resolution TEXT,"
        " recipients TEXT, payload TEXT, updated_at TEXT",
    )
    conn.execute("CREATE UNIQUE INDEX idx_alerts_key ON alerts (key)")
    conn.execute("CREATE INDEX idx_alerts_deal_id_rule_episode ON alerts (deal_id, rule, episode)")
    _create(
        conn,
        "outbox",
        "id INTEGER PRIMARY KEY, dedupe_key TEXT NOT NULL, alert_id INTEGER, kind TEXT NOT NULL, target TEXT NOT NULL,"
        " text TEXT, blocks TEXT, status TEXT NOT NULL, attempts INTEGER, next_attempt_at TEXT, last_error TEXT,"
        " created_at TEXT, sent_at TEXT, slack_channel TEXT, slack_ts TEXT, note TEXT",
    )
    conn.execute("CREATE UNIQUE INDEX idx_outbox_dedupe_key ON outbox (dedupe_key)")
    conn.execute("CREATE INDEX idx_outbox_status_next_attempt_at ON outbox (status, next_attempt_at)")
    _create(
        conn,
        "job_runs",
        "job TEXT, fire_time TEXT, status TEXT, claimed_at TEXT, finished_at TEXT, note TEXT,"
        " PRIMARY KEY (job, fire_time)",
    )
    _create(conn, "slack_users", "rep_id TEXT PRIMARY KEY, slack_id TEXT, email TEXT, looked_up_at TEXT")


def _index_deals_by_id(conn: SqlConnection) -> None:
    """A deal across snapshots (stage history) is looked up by id alone."""
    conn.execute("CREATE INDEX idx_deals_deal_id_snapshot_id ON deals (deal_id, snapshot_id)")


def _add_extra_fields(conn: SqlConnection) -> None:
    """Extra CRM fields (declared per layout) ride along as JSON per deal; scores gain their explanation."""
    for table, column in (("snapshots", "fields"), ("deals", "extras"), ("scores", "detail")):
        conn.execute(conn.ddl(f"ALTER TABLE {table} ADD COLUMN {column} TEXT"))


def _placeholders_to_null(conn: SqlConnection) -> None:
    """Deals stored before placeholders became missing values: "Unknown", "N/A", "-" … become NULL, once."""
    words = sorted(MISSING_WORDS)
    marks = ", ".join("?" for _ in words)
    for column in MAYBE_PLACEHOLDER_COLUMNS:
        conn.execute(f"UPDATE deals SET {column} = NULL WHERE lower(trim({column})) IN ({marks})", words)


DEALS_TABLE = """CREATE TABLE {name} (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id), line INTEGER NOT NULL, deal_id TEXT NOT NULL,
    deal_name TEXT, created_date TEXT, closed_date TEXT, sales_rep_id TEXT, industry TEXT, region TEXT,
    product_type TEXT, lead_source TEXT, deal_stage TEXT, deal_amount FLOAT, sales_cycle_days INTEGER, outcome TEXT,
    extras TEXT,
    PRIMARY KEY (snapshot_id, line)
) WITHOUT ROWID"""


def _lean_deals(conn: SqlConnection) -> None:
    """Deals keyed by (snapshot, line) in a WITHOUT ROWID table, plus one unique index (deal_id, snapshot_id).

    Before, a rowid table carried two more b-trees: the (snapshot_id, deal_id) primary key and the deal-id index. A
    snapshot's rows arrive in line order, so the table itself is filled by appending; the unique index keeps a deal
    id once per snapshot and serves every lookup by id (`deal`, `stage_since`), while scans of one snapshot
    (`deals`, `closed_between`, `outcomes`, `find_deal_id`) walk the table's key prefix. Same columns, same order.
    """
    columns = ", ".join(("snapshot_id", *DEAL_COLUMNS, "extras"))
    conn.execute(conn.ddl(DEALS_TABLE.format(name="deals_lean")))
    conn.execute(f"INSERT INTO deals_lean ({columns}) SELECT {columns} FROM deals ORDER BY snapshot_id, line")
    conn.execute("DROP TABLE deals")
    conn.execute("ALTER TABLE deals_lean RENAME TO deals")
    conn.execute("CREATE UNIQUE INDEX idx_deals_deal_id_snapshot_id ON deals (deal_id, snapshot_id)")


def _add_snapshot_frames(conn: SqlConnection) -> None:
    """Each snapshot's validated deals as one columnar blob (see `engine.deal_frames`), for fast bulk reads.

    Snapshots stored before this step have none and are read from their rows; nothing is back-filled here, so
    opening an old store stays quick.
    """
    conn.execute(
        conn.ddl(
            "CREATE TABLE snapshot_frames (snapshot_id INTEGER PRIMARY KEY REFERENCES snapshots(id),"
            " format TEXT NOT NULL, data BLOB NOT NULL)"
        )
    )


def _drop_unused_score_index(conn: SqlConnection) -> None:
    """Scores are read by refresh (and deal) through their primary key; the extra deal-id index cost a b-tree insert
    per open deal on every refresh and served no query."""
    conn.execute("DROP INDEX IF EXISTS idx_scores_deal_id")


def _shared_reasons(conn: SqlConnection) -> None:
    """Each refresh's distinct reasons, written once; its scores refer to them by position with their own effect
    (see `engine.scoring.ScoredDeals`), rather than repeating the same sentences in every open deal's row."""
    conn.execute(
        conn.ddl(
            "CREATE TABLE IF NOT EXISTS refresh_reasons (refresh_id INTEGER PRIMARY KEY REFERENCES refreshes(id),"
            " catalogue TEXT NOT NULL)"
        )
    )


def _held_snapshots(conn: SqlConnection) -> None:
    """A snapshot can be stored without being promoted (see `engine.snapshot_guard`): only promoted snapshots are
    read by refreshes. Each keeps the facts the guard compares the next one with. Existing snapshots are promoted."""
    have = conn.columns("snapshots")
    for column, declaration in (("promoted", "INTEGER NOT NULL DEFAULT 1"), ("held_reason", "TEXT"), ("facts", "TEXT")):
        if column not in have:  # re-run safely on a store rewound to an earlier version
            conn.execute(conn.ddl(f"ALTER TABLE snapshots ADD COLUMN {column} {declaration}"))


def _leases_and_claims(conn: SqlConnection) -> None:
    """Several processes on one store: a lease row names the one that runs the scheduler and delivery (renewed with
    each tick, taken over when it expires), and an outbox row being sent names the process that claimed it and until
    when, so after a crash only expired claims are recovered."""
    conn.execute(
        conn.ddl(
            "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at TEXT NOT NULL,"
            " acquired_at TEXT NOT NULL)"
        )
    )
    have = conn.columns("outbox")
    for column in ("claimed_by", "claim_expires_at"):
        if column not in have:
            conn.execute(conn.ddl(f"ALTER TABLE outbox ADD COLUMN {column} TEXT"))


def _accepted_signatures(conn: SqlConnection) -> None:
    """The signatures of accepted Slack requests, for refusing a replay (see `engine.store.replay_memory`). Used on
    PostgreSQL, where replicas on several machines share the database; a SQLite store keeps them in a small file
    beside it instead, whose one-row writes never wait behind a refresh's long write."""
    conn.execute(
        conn.ddl("CREATE TABLE IF NOT EXISTS accepted_signatures (signature TEXT PRIMARY KEY, at REAL NOT NULL)")
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_accepted_signatures_at ON accepted_signatures (at)")


def _alert_feedback(conn: SqlConnection) -> None:
    """What each recipient said of an alert ("Useful" / "Not useful"): one answer per person, the latest kept."""
    conn.execute(
        conn.ddl(
            "CREATE TABLE IF NOT EXISTS alert_feedback (alert_id INTEGER NOT NULL REFERENCES alerts(id),"
            " user_id TEXT NOT NULL, useful INTEGER NOT NULL, at TEXT NOT NULL, PRIMARY KEY (alert_id, user_id))"
        )
    )


def _outbox_attachments(conn: SqlConnection) -> None:
    """Files a message carries (a report's charts: PNG as base64, with title and alt text), as JSON."""
    if "attachments" not in conn.columns("outbox"):
        conn.execute(conn.ddl("ALTER TABLE outbox ADD COLUMN attachments TEXT"))


def _threshold_changes(conn: SqlConnection) -> None:
    """Threshold changes made from feedback, each with its reason and evidence (`alerts.tuning`)."""
    conn.execute(
        conn.ddl(
            "CREATE TABLE IF NOT EXISTS threshold_changes (id INTEGER PRIMARY KEY, rule TEXT NOT NULL,"
            " decided_at TEXT NOT NULL, threshold_offset REAL NOT NULL, old_threshold REAL, new_threshold REAL,"
            " min_threshold REAL NOT NULL, max_threshold REAL NOT NULL, reason TEXT NOT NULL, evidence TEXT)"
        )
    )


MIGRATIONS: list[Callable[[SqlConnection], None]] = [
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
    _accepted_signatures,
    _alert_feedback,
    _outbox_attachments,
    _threshold_changes,
]
