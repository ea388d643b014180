"""The store: snapshots, deals, rejects, refreshes, models and alert state, in one SQLite file (WAL mode, the
default) or one PostgreSQL database (for several replicas; see `engine.store.connections`).

`Store` is the only owner of a connection: every query of every layer is a method here or on one of its row
collections (`store.alerts`, `store.outbox`, `store.job_runs`), and `Store.transaction()` is the one way to make
several writes land together.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime
from itertools import repeat
from pathlib import Path
from typing import Protocol

import numpy as np
import orjson
import pandas as pd
import sqlite_utils

from salesintel.engine import deal_frames
from salesintel.engine.ingest import DEAL_COLUMNS, ParsedSnapshot
from salesintel.engine.records import MetricsSummary, Reason, ScoredDeal
from salesintel.engine.store.alert_rows import AlertRows
from salesintel.engine.store.connections import PostgresConnection, SqliteConnection, StoreTarget, connect
from salesintel.engine.store.job_runs import JobRunRows
from salesintel.engine.store.lease_rows import LeaseRows
from salesintel.engine.store.outbox_rows import OutboxRows
from salesintel.engine.store.records import (
    Refresh,
    Snapshot,
    StoredModel,
    StoreError,
    model_from_row,
    reason_from_json,
    refresh_from_row,
    score_from_row,
)
from salesintel.engine.store.schema import MIGRATIONS
from salesintel.engine.store.transactions import transaction


class Store:
    """All reads and writes of salesintel's state; nothing outside this package touches the database.

    `conn` is the connection for the store's own modules. On SQLite, `db` is the same connection through sqlite-utils,
    for tests that inspect the file or make it look like an older release's (None on PostgreSQL); product code goes
    through methods and the row collections.
    """

    def __init__(self, conn: SqliteConnection | PostgresConnection, target: StoreTarget):
        self.conn = conn
        self.target = target
        self.db = sqlite_utils.Database(conn.raw) if isinstance(conn, SqliteConnection) else None
        self.alerts = AlertRows(conn)
        self.outbox = OutboxRows(conn)
        self.job_runs = JobRunRows(conn)
        self.leases = LeaseRows(conn)
        self._refreshes: dict[tuple, Refresh] = {}
        self._snapshots: dict[tuple, Snapshot] = {}
        self._catalogues: dict[tuple, list[Reason]] = {}

    @classmethod
    def open(cls, where: Path | str | StoreTarget, migrate: bool = True) -> Store:
        """Open (creating if needed) the store at `where` — a SQLite path, `sqlite:///path` or `postgresql://…` —
        and bring its schema up to date (unless `migrate` is False: then a store behind this release is refused)."""
        target = where if isinstance(where, StoreTarget) else StoreTarget.parse(where)
        store = cls(connect(target), target)
        try:
            if migrate:
                store._migrate(target)
            elif store.schema_version != len(MIGRATIONS):
                raise StoreError(
                    f"{target}: schema version {store.schema_version}, this salesintel needs {len(MIGRATIONS)}:"
                    " run `salesintel migrate`"
                )
        except BaseException:
            store.close()
            raise
        return store

    @staticmethod
    def versions(where: Path | str | StoreTarget) -> tuple[int, int]:
        """(the store's schema version, this release's) without changing anything (0 for a new store)."""
        target = where if isinstance(where, StoreTarget) else StoreTarget.parse(where)
        if target.path is not None and not target.path.exists():
            return 0, len(MIGRATIONS)
        conn = connect(target)
        try:
            return conn.schema_version(), len(MIGRATIONS)
        finally:
            conn.close()

    @property
    def schema_version(self) -> int:
        return self.conn.schema_version()

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self.conn.dialect

    def _migrate(self, path: StoreTarget) -> None:
        """Run the steps this store has not seen, each in its own transaction. The version is read inside that
        transaction (which holds the write lock), so processes starting together on one store never run a step
        twice: the second waits, then finds it done."""
        if self.schema_version > len(MIGRATIONS):
            raise StoreError(f"{path}: schema version {self.schema_version} is newer than this salesintel knows")
        if self.schema_version == len(MIGRATIONS):
            # Up to date: no write lock. Taking it anyway made a request thread opening its connection wait while
            # a refresh was writing its results (it holds the lock for that whole write).
            return
        while True:
            with transaction(self.conn, migration=True):
                version = self.schema_version
                if version >= len(MIGRATIONS):
                    return
                MIGRATIONS[version](self.conn)
                self.conn.set_schema_version(version + 1)

    def close(self) -> None:
        self.conn.close()

    def _rows(self, sql: str, params: list = ()) -> list[dict]:
        """Rows as dicts, straight from the connection: the hot paths of an answer (sqlite-utils' `rows_where`
        first looks the table up in the schema, which under load took a fifth of a `/deal-risk` answer)."""
        cursor = self.conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def transaction(self):
        """A block of writes that lands whole or not at all (see `transaction`)."""
        return transaction(self.conn)

    # snapshots -----------------------------------------------------------------------------------------

    def snapshot_by_sha256(self, sha256: str) -> Snapshot | None:
        rows = self._rows("SELECT * FROM snapshots WHERE sha256 = ?", [sha256])
        return Snapshot.from_row(rows[0]) if rows else None

    def latest_snapshot(self) -> Snapshot | None:
        """The newest promoted snapshot: the one refreshes read (a held one is never it).

        Decoded once and kept, like a refresh (every answer asks how old the data is): a snapshot row only ever
        changes when a held one is accepted, and both of the columns that changes are in the key."""
        key = self.conn.execute(
            "SELECT id, promoted, held_reason FROM snapshots WHERE promoted = 1 ORDER BY taken_at DESC, id DESC LIMIT 1"
        ).fetchone()
        if key is None:
            return None
        if key not in self._snapshots:
            self._snapshots = {key: self.snapshot(key[0])}
        return self._snapshots[key]

    def latest_held_snapshot(self, source: str) -> Snapshot | None:
        """The newest snapshot from `source` that the guard held and nobody accepted yet."""
        rows = self._rows(
            "SELECT * FROM snapshots WHERE promoted = 0 AND source = ? ORDER BY taken_at DESC, id DESC LIMIT 1",
            [source],
        )
        return Snapshot.from_row(rows[0]) if rows else None

    def snapshot(self, snapshot_id: int) -> Snapshot | None:
        rows = self._rows("SELECT * FROM snapshots WHERE id = ?", [snapshot_id])
        return Snapshot.from_row(rows[0]) if rows else None

    def promote_snapshot(self, snapshot_id: int) -> Snapshot:
        """Accept a held snapshot: refreshes read it from now on (if it is the newest)."""
        with self.transaction():
            self.conn.execute("UPDATE snapshots SET promoted = 1, held_reason = NULL WHERE id = ?", [snapshot_id])
        return self.snapshot(snapshot_id)

    def save_snapshot(
        self, parsed: ParsedSnapshot, taken_at: datetime, loaded_at: datetime, held_reason: str | None = None
    ) -> Snapshot:
        """Write a snapshot with all its deals, their columnar copy and its rejects in one transaction: all of it
        lands, or none. With `held_reason` it is stored but not promoted (see `engine.snapshot_guard`)."""
        deals = parsed.deals
        if not deals["line"].is_monotonic_increasing:  # the validator's order already; the copy relies on it
            deals = deals.sort_values("line", kind="stable").reset_index(drop=True)
        names = list(parsed.fields)
        # deal_id is distinct within a snapshot (the validator rejects repeats): nothing to share
        shared = {name: None if name == "deal_id" else _shared_values(deals[name]) for name in DEAL_COLUMNS}
        deals = _without_nul(deals, shared)
        frame_blob = deal_frames.encode(deals, DEAL_COLUMNS, parsed.fields, shared) if len(deals) else None
        with self.conn.bulk_load(), self.transaction():
            cursor = self.conn.execute(
                "INSERT INTO snapshots (source, sha256, layout, taken_at, loaded_at, rows_read, rows_loaded,"
                " rows_rejected, fields, promoted, held_reason, facts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " RETURNING id",
                [
                    parsed.source,
                    parsed.sha256,
                    parsed.layout,
                    taken_at.isoformat(),
                    loaded_at.isoformat(),
                    parsed.rows_read,
                    len(deals),
                    len(parsed.rejects),
                    json.dumps(parsed.fields),
                    int(held_reason is None),
                    held_reason,
                    json.dumps(dataclasses.asdict(parsed.facts())),
                ],
            )
            snapshot_id = cursor.fetchone()[0]
            # Without extra fields the extras column is left to its default (NULL): one value fewer to bind per row.
            stored = [*DEAL_COLUMNS, "extras"] if names else list(DEAL_COLUMNS)
            for start in range(0, len(deals), INSERT_SLICE):
                part = deals.iloc[start : start + INSERT_SLICE]
                columns = [_sql_values(part[column], shared[column], start) for column in DEAL_COLUMNS]
                if names:
                    columns.append(_extras_json(part, names))
                self.conn.bulk_insert("deals", ["snapshot_id", *stored], zip(repeat(snapshot_id), *columns))
            if frame_blob is not None:
                self.conn.execute(
                    "INSERT INTO snapshot_frames (snapshot_id, format, data) VALUES (?, ?, ?)",
                    [snapshot_id, deal_frames.FORMAT, frame_blob],
                )
            self.conn.bulk_insert(
                "rejects",
                ["snapshot_id", "line", "deal_id", "reason", "raw"],
                (
                    (snapshot_id, r.line, nul_shown(r.deal_id), "; ".join(r.reasons), json.dumps(r.raw))
                    for r in parsed.rejects
                ),
            )
        return Snapshot.from_row(self._rows("SELECT * FROM snapshots WHERE id = ?", [snapshot_id])[0])

    def deals(self, snapshot_id: int) -> pd.DataFrame:
        """The snapshot's deals in line order with dates parsed; `outcome` is NaN for deals open when it was taken.

        Extra fields come back typed by their kind: number → float64, boolean → pandas `boolean` (True/False/<NA>),
        date → datetime64 at midnight like created_date (so date arithmetic works the same on both), category →
        a pandas categorical, as are owner, industry, region, product, lead source, stage and outcome (other text is
        object); missing values are NaN/<NA>/NaT/None. A categorical takes no value outside its categories: fill
        or assign on `.astype(object)`.

        Read from the snapshot's columnar copy when it has one (every snapshot saved since schema version 8), else
        from its rows; the two give the same frame (see `engine.deal_frames`).
        """
        snapshot = self.snapshot(snapshot_id)
        fields = snapshot.fields if snapshot is not None else {}
        row = self.conn.execute(
            "SELECT format, data FROM snapshot_frames WHERE snapshot_id = ?", [snapshot_id]
        ).fetchone()
        if row is not None and row[0] == deal_frames.FORMAT:
            frame, extras = deal_frames.decode(row[1], DEAL_COLUMNS, fields)
        else:
            frame, extras = self._deals_from_rows(snapshot_id, fields)
        return deal_frames.finish(frame, extras, fields)

    def _deals_from_rows(self, snapshot_id: int, fields: dict) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
        """The SQL path: rows as pandas types them, and each extra field's values parsed from its JSON."""
        names = [*DEAL_COLUMNS, "extras"]
        cursor = self.conn.execute(
            f"SELECT {', '.join(names)} FROM deals WHERE snapshot_id = ? ORDER BY line", [snapshot_id]
        )
        frame = pd.DataFrame.from_records(cursor.fetchall(), columns=names, coerce_float=True)
        extras = frame.pop("extras")
        if not fields:
            return frame, {}
        parsed = pd.DataFrame([json.loads(text) if text else {} for text in extras], index=frame.index)
        return frame, {name: parsed[name] for name in fields if name in parsed}

    def rejects(self, snapshot_id: int) -> list[dict]:
        return self._rows("SELECT * FROM rejects WHERE snapshot_id = ? ORDER BY line", [snapshot_id])

    # refreshes -----------------------------------------------------------------------------------------

    def save_refresh(
        self,
        snapshot_id: int,
        as_of: date,
        computed_at: datetime,
        metrics: Callable[[], MetricsSummary],
        model_id: int | None = None,
        scores: ScoreColumns | None = None,
    ) -> tuple[int, MetricsSummary]:
        """Write a refresh and its scores in one transaction, so readers never see half a refresh; return its id and
        the metrics written.

        `metrics` is called once the scores are written, inside the transaction, so a caller can let slow work
        elsewhere (a forked step) overlap the writing. Whatever it raises rolls everything back."""
        with self.transaction():
            cursor = self.conn.execute(
                "INSERT INTO refreshes (snapshot_id, as_of, computed_at, metrics, model_id) VALUES (?, ?, ?, ?, ?)"
                " RETURNING id",
                [snapshot_id, as_of.isoformat(), computed_at.isoformat(), "{}", model_id],
            )
            refresh_id = cursor.fetchone()[0]
            if scores is not None and len(scores):
                catalogue = [reason.to_dict() for reason in scores.catalogue]
                self.conn.execute(
                    "INSERT INTO refresh_reasons (refresh_id, catalogue) VALUES (?, ?)",
                    [refresh_id, orjson.dumps(catalogue).decode()],
                )
                self.conn.bulk_insert("scores", ["refresh_id", *SCORE_COLUMNS], _score_rows(refresh_id, scores))
            values = metrics()
            # allow_nan=False: `metrics --json` must be JSON every tool can read, never NaN or Infinity
            self.conn.execute(
                "UPDATE refreshes SET metrics = ? WHERE id = ?",
                [json.dumps(values.to_json(), allow_nan=False), refresh_id],
            )
        return refresh_id, values

    def latest_refresh(self, as_of: date | None = None) -> Refresh | None:
        """The newest snapshot's refresh for `as_of` (the newest computed for that date), or without a date the one
        with the newest as-of date: computing an old date for a backtest does not make it "the latest"."""
        where, params = ("WHERE as_of = ?", [as_of.isoformat()]) if as_of else ("", [])
        # The newest snapshot's refreshes come first: a replay of a later date on an older snapshot never shadows it.
        return self._refresh_where(f"{where} ORDER BY snapshot_id DESC, as_of DESC, id DESC LIMIT 1", params)

    def refresh_on_or_before(self, as_of: date) -> Refresh | None:
        """The newest refresh whose as-of date is on or before `as_of` (e.g. last week's, for a change)."""
        return self._refresh_where("WHERE as_of <= ? ORDER BY as_of DESC, id DESC LIMIT 1", [as_of.isoformat()])

    def _refresh_where(self, clause: str, params: list) -> Refresh | None:
        """The refresh a query picks, decoded once and kept: a refresh never changes after it is written, and its
        metrics are large (decoding them took most of a `/deal-risk` answer's time). The key is the id and when it
        was computed (an id a rolled-back refresh had can be given again). Not the metrics' length: SQLite reads
        the whole text to count it, which cost 0.1 ms per answer; a test that rewrites a refresh in place, as an
        older release would have written it, opens the store again as that release's successor would."""
        key = self.conn.execute(f"SELECT id, computed_at FROM refreshes {clause}", params).fetchone()
        if key is None:
            return None
        cached = self._refreshes.get(key)
        if cached is None:
            row = self._rows("SELECT * FROM refreshes WHERE id = ?", [key[0]])[0]
            cached = refresh_from_row(row)
            self._refreshes[key] = cached
            while len(self._refreshes) > REFRESHES_KEPT:
                self._refreshes.pop(next(iter(self._refreshes)))
        return cached

    def closed_between(self, snapshot_id: int, after: date, until: date, outcome: str | None = None) -> list[dict]:
        """Deals of a snapshot closed in (after, until], optionally with one outcome."""
        sql = "SELECT * FROM deals WHERE snapshot_id = ? AND closed_date > ? AND closed_date <= ?"
        params = [snapshot_id, after.isoformat(), until.isoformat()]
        if outcome:
            sql, params = sql + " AND outcome = ?", [*params, outcome]
        return self._rows(sql + " ORDER BY closed_date, line", params)

    def outcomes(self, snapshot_id: int, until: date) -> dict[str, str]:
        """deal_id → Won/Lost for deals of the snapshot closed on or before `until`."""
        rows = self.conn.execute(
            "SELECT deal_id, outcome FROM deals WHERE snapshot_id = ? AND outcome IS NOT NULL AND closed_date <= ?",
            [snapshot_id, until.isoformat()],
        ).fetchall()
        return dict(rows)

    def stage_since(self, snapshot_id: int, as_of: date, deal_id: str | None = None) -> dict[str, date]:
        """deal → the first day a snapshot (taken by `as_of`) showed it in the stage it has in `snapshot_id`.

        Needs several snapshots to say anything: with one, every deal entered its stage when it was taken.
        Gaps (a deal that left the stage and came back) are not detected.
        """
        rows = self.conn.execute(
            "SELECT current.deal_id, MIN(s.taken_at) FROM deals AS current"
            " JOIN deals AS earlier ON earlier.deal_id = current.deal_id AND earlier.deal_stage = current.deal_stage"
            " JOIN snapshots AS s ON s.id = earlier.snapshot_id"
            " WHERE current.snapshot_id = ? AND current.outcome IS NULL AND substr(s.taken_at, 1, 10) <= ?"
            " AND s.promoted = 1"
            + (" AND current.deal_id = ?" if deal_id else "")
            + " GROUP BY current.deal_id HAVING COUNT(DISTINCT s.id) > 1",
            [snapshot_id, as_of.isoformat(), *([deal_id] if deal_id else [])],
        ).fetchall()
        return {found: datetime.fromisoformat(taken).date() for found, taken in rows}

    def score(self, refresh_id: int, deal_id: str) -> ScoredDeal | None:
        rows = self._rows("SELECT * FROM scores WHERE refresh_id = ? AND deal_id = ?", [refresh_id, deal_id])
        return score_from_row(rows[0], self._reason_catalogue(refresh_id)) if rows else None

    def scores(self, refresh_id: int) -> list[ScoredDeal]:
        """All scores of a refresh, highest risk first."""
        catalogue = self._reason_catalogue(refresh_id)
        rows = self._rows("SELECT * FROM scores WHERE refresh_id = ? ORDER BY risk DESC, deal_id", [refresh_id])
        return [score_from_row(r, catalogue) for r in rows]

    def _reason_catalogue(self, refresh_id: int) -> list[Reason]:
        """The distinct reasons a refresh's scores refer to (none for refreshes written before they were shared);
        kept per refresh like the refresh itself."""
        query = "SELECT length(catalogue) FROM refresh_reasons WHERE refresh_id = ?"
        size = self.conn.execute(query, [refresh_id]).fetchone()
        if size is None:
            return []
        key = (refresh_id, size[0])
        if key not in self._catalogues:
            row = self.conn.execute(
                "SELECT catalogue FROM refresh_reasons WHERE refresh_id = ?", [refresh_id]
            ).fetchone()
            self._catalogues = {key: [reason_from_json(value) for value in orjson.loads(row[0])]}
        return self._catalogues[key]

    def deal(self, snapshot_id: int, deal_id: str) -> dict | None:
        rows = self._rows("SELECT * FROM deals WHERE snapshot_id = ? AND deal_id = ?", [snapshot_id, deal_id])
        return rows[0] if rows else None

    def find_deal_id(self, snapshot_id: int, deal_id: str) -> str | None:
        """The stored spelling of `deal_id`, matched exactly first, then ignoring case."""
        for clause in ("deal_id = ?", "lower(deal_id) = lower(?)"):
            row = self.conn.execute(
                f"SELECT deal_id FROM deals WHERE snapshot_id = ? AND {clause} LIMIT 1", [snapshot_id, deal_id]
            ).fetchone()
            if row:
                return row[0]
        return None

    # models --------------------------------------------------------------------------------------------

    def save_model(
        self, snapshot_id: int, as_of: date, trained_at: datetime, summary: dict, pipeline: bytes
    ) -> StoredModel:
        with self.transaction():
            cursor = self.conn.execute(
                "INSERT INTO models (snapshot_id, as_of, trained_at, has_skill, train_from, train_to, deals, examples,"
                " summary, pipeline) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [
                    snapshot_id,
                    as_of.isoformat(),
                    trained_at.isoformat(),
                    int(summary["has_skill"]),
                    summary["train_from"],
                    summary["train_to"],
                    summary["deals"],
                    summary["examples"],
                    json.dumps(summary),
                    pipeline,
                ],
            )
            model_id = cursor.fetchone()[0]
        return self.model(model_id)

    def model(self, model_id: int) -> StoredModel | None:
        rows = self._rows("SELECT * FROM models WHERE id = ?", [model_id])
        return model_from_row(rows[0]) if rows else None

    def latest_model(self, as_of: date, not_before: date, snapshot_id: int | None = None) -> StoredModel | None:
        """The newest model trained as of a date in [not_before, as_of] (on `snapshot_id`, if given): never one that
        saw data after `as_of`."""
        where, params = "as_of <= ? AND as_of >= ?", [as_of.isoformat(), not_before.isoformat()]
        if snapshot_id is not None:
            where, params = where + " AND snapshot_id = ?", [*params, snapshot_id]
        rows = self._rows(f"SELECT * FROM models WHERE {where} ORDER BY as_of DESC, id DESC LIMIT 1", params)
        return model_from_row(rows[0]) if rows else None

    # retention ---------------------------------------------------------------------------------------------

    def prune(self, keep_snapshots: int, keep_since: datetime) -> dict[str, int]:
        """Delete all but the `keep_snapshots` newest promoted snapshots (held ones older than the oldest kept go
        too), with their deals, columnar copies, rejects, refreshes, scores, reasons and models; and sent messages
        and scheduled-run records older than `keep_since`. One transaction; counts of rows deleted by table. Alert
        state is kept (an episode may outlive its snapshot). Call `vacuum` after to give the space back."""
        kept = [
            r[0]
            for r in self.conn.execute(
                "SELECT id FROM snapshots WHERE promoted = 1 ORDER BY taken_at DESC, id DESC LIMIT ?", [keep_snapshots]
            ).fetchall()
        ]
        if not kept:
            return {}
        oldest_kept = min(kept)
        kept_marks = ", ".join("?" for _ in kept)
        query = f"SELECT id FROM snapshots WHERE id < ? AND id NOT IN ({kept_marks})"
        old = [r[0] for r in self.conn.execute(query, [oldest_kept, *kept]).fetchall()]
        counts: dict[str, int] = {}
        with self.transaction():
            if old:
                marks = ", ".join("?" for _ in old)
                refreshes = f"SELECT id FROM refreshes WHERE snapshot_id IN ({marks})"
                for table, where in (
                    ("scores", f"refresh_id IN ({refreshes})"),
                    ("refresh_reasons", f"refresh_id IN ({refreshes})"),
                    ("refreshes", f"snapshot_id IN ({marks})"),
                    ("models", f"snapshot_id IN ({marks})"),
                    ("deals", f"snapshot_id IN ({marks})"),
                    ("snapshot_frames", f"snapshot_id IN ({marks})"),
                    ("rejects", f"snapshot_id IN ({marks})"),
                    ("snapshots", f"id IN ({marks})"),
                ):
                    params = old * where.count(f"({marks})")
                    counts[table] = self.conn.execute(f"DELETE FROM {table} WHERE {where}", params).rowcount
            since = keep_since.isoformat()
            counts["outbox"] = self.conn.execute(
                "DELETE FROM outbox WHERE status IN ('sent', 'digested', 'failed') AND created_at < ?", [since]
            ).rowcount
            counts["job_runs"] = self.conn.execute("DELETE FROM job_runs WHERE claimed_at < ?", [since]).rowcount
        self._refreshes.clear()
        self._snapshots.clear()
        return {table: n for table, n in counts.items() if n}

    def size_bytes(self) -> int:
        """What the store takes on disk: the SQLite file, or the PostgreSQL database."""
        if self.target.path is not None:
            return self.target.path.stat().st_size
        return int(self.conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])

    def vacuum(self) -> None:
        """Give deleted pages back to the file system (on SQLite this rewrites the file and needs as much free space
        as it; on PostgreSQL it is a plain VACUUM, which makes the space reusable)."""
        self.conn.vacuum()

    # Slack users ----------------------------------------------------------------------------------------

    def slack_users(self) -> dict[str, str]:
        """person (rep or manager id) → Slack user id, as looked up by email or set with `salesintel users set`."""
        return dict(self.conn.execute("SELECT rep_id, slack_id FROM slack_users").fetchall())

    def save_slack_user(self, person: str, slack_id: str, email: str | None, now: datetime) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO slack_users (rep_id, slack_id, email, looked_up_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (rep_id) DO UPDATE SET slack_id = excluded.slack_id, email = excluded.email,"
                " looked_up_at = excluded.looked_up_at",
                [person, slack_id, email, now.isoformat()],
            )

    def models(self) -> list[dict]:
        return self._rows(
            "SELECT id, snapshot_id, as_of, trained_at, has_skill, train_from, train_to, deals,"
            " examples FROM models ORDER BY id"
        )


SCORE_COLUMNS = (
    "deal_id",
    "p_win",
    "risk",
    "method",
    "model_id",
    "reasons",
    "deal_amount",
    "age_days",
    "deal_stage",
    "sales_rep_id",
    "deal_name",
    "detail",
)


class ScoreColumns(Protocol):
    """What the store needs of a refresh's scores (`engine.scoring.ScoredDeals` has it): columns of equal length,
    a catalogue of distinct reasons, and per deal the (catalogue position, effect) pairs of the reasons it shows."""

    method: str
    model_id: int | None
    base_p_win: float | None
    deal_id: list
    p_win: np.ndarray
    deal_amount: np.ndarray
    age_days: np.ndarray
    deal_stage: list
    sales_rep_id: list
    deal_name: list
    age_p_win: list
    standing: list
    summary: list
    stale: np.ndarray
    reason_refs: list
    catalogue: list

    def __len__(self) -> int: ...


def _score_rows(refresh_id: int, scores: ScoreColumns) -> Iterator[tuple]:
    """One row per deal; its reasons as JSON [[catalogue position, effect], …] and its explanation as JSON, by orjson
    (a refresh writes one per open deal: the standard library's encoder took most of the time of saving a
    million-deal refresh)."""
    p_win = scores.p_win.tolist()
    base = scores.base_p_win
    for deal_id, probability, amount, age, stage, rep, name, age_rate, standing, summary, stale, refs in zip(
        scores.deal_id,
        p_win,
        scores.deal_amount.tolist(),
        scores.age_days.tolist(),
        scores.deal_stage,
        scores.sales_rep_id,
        scores.deal_name,
        scores.age_p_win,
        scores.standing,
        scores.summary,
        scores.stale.tolist(),
        scores.reason_refs,
    ):
        detail = {"base_p_win": base, "age_p_win": age_rate, "standing": standing, "summary": summary, "stale": stale}
        yield (
            refresh_id,
            deal_id,
            probability,
            1 - probability,
            scores.method,
            scores.model_id,
            orjson.dumps(refs).decode(),
            amount,
            age,
            stage,
            rep,
            name,
            orjson.dumps(detail).decode(),
        )


INSERT_SLICE = 100_000
"""Deals turned into Python values at a time when a snapshot is written: all in one transaction, but a million deals
never exist as Python objects at once."""


def _shared_values(column: pd.Series) -> deal_frames.Shared | None:
    """A text column that repeats a handful of values (dates, stages, regions) as codes into its distinct values:
    the rows then share one Python object per value when bound, rather than one new string per cell, and the
    Parquet copy stores the same codes as a dictionary. None for numbers and for mostly distinct columns (ids)."""
    if column.dtype.kind in "iufb" and not column.hasnans:
        return None
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    if len(uniques) * 2 > len(column):
        return None
    values = np.empty(len(uniques) + 1, dtype=object)
    values[:-1] = uniques.astype(object)
    values[-1] = None  # code -1 (missing) picks the last slot
    return deal_frames.Shared(codes, values)


NUL_SHOWN_AS = "\ufffd"
"""What a NUL byte in a stored text becomes (the Unicode replacement character): PostgreSQL's text cannot hold one,
and the same snapshot must read the same from either store. A NUL in a deal id is already a reject; in a name or a
picklist value it is a mangled export, shown with this mark rather than failing the whole snapshot."""


def nul_shown(text):
    """`text` with NUL bytes marked (see `NUL_SHOWN_AS`); anything else as it is."""
    return text.replace("\x00", NUL_SHOWN_AS) if isinstance(text, str) and "\x00" in text else text


def _without_nul(deals: pd.DataFrame, shared: dict[str, deal_frames.Shared | None]) -> pd.DataFrame:
    """`deals` (a copy when needed) and `shared` with NUL bytes in text marked (see `NUL_SHOWN_AS`). A shared
    column's few distinct values are checked, not its rows; other text columns by a vectorised search."""
    copied = False
    for values in shared.values():
        if values is not None:
            values.values[:] = [nul_shown(v) for v in values.values]
    for name in DEAL_COLUMNS:
        column = deals[name]
        if name == "deal_id" or shared.get(name) is not None or column.dtype.kind in "iufbM":
            continue  # an id with a NUL is a reject already
        text = column.astype(object)
        if text.str.contains("\x00", regex=False, na=False).any():
            if not copied:
                deals, copied = deals.copy(), True
            deals[name] = text.map(nul_shown)
    return deals


def _sql_values(column: pd.Series, shared: deal_frames.Shared | None, start: int) -> list:
    """A slice of a column (the whole column's `shared` codes from `start` on) as the Python values sqlite3 binds,
    missing values as None."""
    if shared is not None:
        return shared.values[shared.codes[start : start + len(column)]].tolist()
    if column.dtype.kind in "iufb" and not column.hasnans:
        return column.tolist()
    return column.astype(object).where(column.notna(), None).tolist()


def _extras_json(deals: pd.DataFrame, names: list[str]) -> list[str | None]:
    """One JSON object per deal with its extra fields (missing values left out), or None without extra fields."""
    if not names:
        return [None] * len(deals)
    values = deals[names].astype(object).where(deals[names].notna(), None)
    return [json.dumps({k: v for k, v in zip(names, row) if v is not None}) for row in values.itertuples(index=False)]


REFRESHES_KEPT = 4
"""Decoded refreshes a store keeps (the latest, last week's for a change, a pinned date…)."""


class ThreadLocalStore:
    """One Store (one connection) per thread, for the service's listener, scheduler and delivery threads.

    Neither a sqlite3 nor a psycopg connection may interleave transactions from several threads; on SQLite, WAL lets
    the connections of one file read while another writes.
    """

    def __init__(self, where: Path | str | StoreTarget):
        self.target = where if isinstance(where, StoreTarget) else StoreTarget.parse(where)
        self._local = threading.local()
        self._opened: list[Store] = []
        self._lock = threading.Lock()
        Store.open(self.target).close()  # create and migrate once, up front

    @property
    def path(self) -> Path | None:
        """The SQLite file (None on PostgreSQL)."""
        return self.target.path

    def get(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is not None and store.conn.lost:
            # The server went away (a restart, a failover, an idle connection cut): the request that found out has
            # failed; this thread's next one gets a new connection instead of failing forever.
            with self._lock:
                self._opened.remove(store)
            store.close()
            store = None
        if store is None:
            store = self._local.store = Store.open(self.target)
            with self._lock:
                self._opened.append(store)
        return store

    def close(self) -> None:
        """Close every thread's store once the threads are done with them (the service's last step): on SQLite, so
        the write-ahead log is checkpointed into the store file."""
        with self._lock:
            opened, self._opened = self._opened, []
        for store in opened:
            store.close()
