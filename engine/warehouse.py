"""A snapshot read from a data warehouse instead of a CSV file: any SQLAlchemy URL (PostgreSQL, Snowflake, BigQuery,
Redshift… with that dialect's driver installed) and a query whose columns a layout maps, as a CSV export's would be.

The query's rows go through the same `Validator` as a file's, chunk by chunk: the same checks, the same rejects
with reasons, the same snapshot guard after. Each value is first written as a CSV export would show it (dates as
the layout's date format or ISO, booleans as true/false, missing as empty), so a warehouse and a file holding the
same deals give the same snapshot. Rows are numbered as in a CSV export of the result: the header is line 1.

The snapshot's identity (`sha256`) is a hash of the header and of the rows' text taken as a set (the sum of each
row's own hash), so a query whose result has not changed since the last pull loads nothing new, even when the
warehouse returns its rows in another order (a query without ORDER BY may).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import pandas as pd

from salesintel.engine.ingest import IngestError, ParsedSnapshot
from salesintel.engine.layouts import LayoutError, choose
from salesintel.engine.settings import IngestSettings
from salesintel.engine.url_redaction import redact_url, scrub
from salesintel.engine.validator import Validator

ROW_DIGEST_MODULUS = 2**256

BATCH_ROWS = 50_000
"""Rows fetched and validated at a time: a million-deal result never exists as Python objects at once."""


@dataclass(frozen=True)
class WarehouseSource:
    url: str
    """A SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db or snowflake://…"""
    query: str
    layout: str | None = None
    """The layout mapping the query's columns (default: ingest.layout, usually auto)."""

    def __str__(self) -> str:
        return f"warehouse {redact_url(self.url)}"


def read_warehouse(
    source: WarehouseSource, settings: IngestSettings, progress: Callable[[int], None] | None = None
) -> ParsedSnapshot:
    """Run the query and validate its rows; `progress` is told the rows read since its last call."""
    import sqlalchemy
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = sqlalchemy.create_engine(source.url)
    except (SQLAlchemyError, ImportError, ValueError) as error:
        raise IngestError(f"{source}: not a usable SQLAlchemy URL ({scrub(str(error), source.url)})") from None
    try:
        with engine.connect() as connection:
            result = connection.execution_options(stream_results=True).execute(sqlalchemy.text(source.query))
            return _validate(source, settings, list(result.keys()), result.partitions(BATCH_ROWS), progress)
    except SQLAlchemyError as error:
        first_line = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise IngestError(f"{source}: the query failed ({scrub(first_line, source.url)})") from None
    finally:
        engine.dispose()


def _validate(source, settings: IngestSettings, names: list[str], batches, progress) -> ParsedSnapshot:
    header = [str(name).strip() for name in names]
    requested = source.layout or settings.layout
    try:
        resolved = choose(requested, settings.all_layouts(), header)
    except LayoutError as error:
        raise IngestError(f"{source}: {error}") from error
    date_format = resolved.layout.date_format
    validator = Validator(resolved, header, settings.cycle_days_tolerance)
    rows_digest = 0  # the sum of the rows' own digests: the same rows in another order are the same snapshot
    line = 1
    for rows in batches:
        raw = pd.DataFrame([[_text(value, date_format) for value in row] for row in rows], dtype=object)
        if not len(raw):
            continue
        raw.columns = range(len(header))
        for cells in raw.itertuples(index=False):
            row = hashlib.sha256("\x1f".join(cells).encode()).digest()
            rows_digest = (rows_digest + int.from_bytes(row, "big")) % ROW_DIGEST_MODULUS
        validator.add(raw, np.arange(line + 1, line + 1 + len(raw)))
        line += len(raw)
        if progress:
            progress(len(raw))
    if validator.rows_seen == 0:
        raise IngestError(f"{source}: the query returned no rows")
    identity = hashlib.sha256("\x1f".join(header).encode() + rows_digest.to_bytes(32, "big"))
    return ParsedSnapshot.validated(str(source), identity.hexdigest(), resolved, validator)


def _text(value, date_format: str | None) -> str:
    """A value as a CSV export would write it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        if date_format:
            return value.strftime(date_format)
        if isinstance(value, datetime) and value.tzinfo is None and value.time() == datetime.min.time():
            return value.date().isoformat()  # a date kept as a timestamp: shown (and named in a reject) as the date
        return value.isoformat()
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, Decimal):
        return "" if value.is_nan() else format(value, "f")
    return str(value)
