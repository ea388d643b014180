"""A snapshot's deals as one Parquet blob, so a refresh reads a million deals in a fraction of a second.

`Store.deals` used to be the slowest read of a refresh: a million rows fetched as Python tuples, then turned into
columns again by pandas. The store now keeps, beside the rows, the validated deals frame in Parquet (written in the
same transaction as the rows, see `Store.save_snapshot`), and `Store.deals` decodes that instead.

Both paths must hand the engine the same frame, down to the dtypes. The SQL path's dtypes come from pandas'
inference over what SQLite returns, so they depend on the data: an integer column with a NULL is float64, a column
that is NULL in every row is object holding None, text is `str`. `decode` reproduces exactly those rules from the
Arrow types (tests/test_deal_frames.py compares both paths on every kind of column, with and without gaps), then both
paths finish the frame with the same function, `finish`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from salesintel.engine.distinct import per_distinct
from salesintel.engine.settings import CANONICAL_FIELDS

FORMAT = "parquet-v1"
"""What `snapshot_frames.format` says: Parquet of the columns below, one Arrow type per kind of column."""

TEXT_COLUMNS = tuple(column for column in CANONICAL_FIELDS if column not in ("deal_amount", "sales_cycle_days"))
"""Stored as text in SQLite and in Parquet; dates are YYYY-MM-DD text in both, parsed by `finish`."""
ARROW_TYPES = {
    "line": pa.int64(),
    "deal_amount": pa.float64(),
    "sales_cycle_days": pa.int64(),
    **{name: pa.string() for name in TEXT_COLUMNS},
}
EXTRA_TYPES = {"category": pa.string(), "number": pa.float64(), "boolean": pa.bool_(), "date": pa.string()}
"""Extra fields by kind, as the validator hands them over (a date field is YYYY-MM-DD text, like in the JSON)."""


@dataclass(frozen=True)
class Shared:
    """A column as codes into its distinct values (`values[-1]` is None, for code -1: missing)."""

    codes: np.ndarray
    values: np.ndarray


def encode(
    deals: pd.DataFrame, columns: tuple[str, ...], fields: dict[str, dict], shared: dict[str, Shared | None]
) -> bytes:
    """The validated deals (core `columns` then the extra `fields`) as Parquet bytes, missing values as nulls.

    `deals` must be in line order (the validator's). Columns with `shared` codes are written as dictionaries
    (Parquet keeps them as such, and building them again from a million strings is most of a plain write).
    """
    arrays = {name: _arrow(deals[name], ARROW_TYPES[name], shared.get(name)) for name in columns}
    for name, spec in fields.items():
        values = deals[name].astype(object).where(deals[name].notna(), None)
        arrays[name] = pa.array(values, type=EXTRA_TYPES[spec["kind"]], from_pandas=True)
    table = pa.table(arrays)
    dictionaries = [name for name in table.column_names if pa.types.is_dictionary(table.schema.field(name).type)]
    sink = pa.BufferOutputStream()
    # No compression and no statistics: the blob is read whole, never filtered, and writing must stay cheap.
    pq.write_table(table, sink, compression="none", use_dictionary=dictionaries, write_statistics=False)
    return sink.getvalue().to_pybytes()


def _arrow(column: pd.Series, kind: pa.DataType, shared: Shared | None) -> pa.Array:
    if shared is None:
        return pa.array(column, type=kind, from_pandas=True)
    indices = pa.array(shared.codes.astype(np.int32), mask=shared.codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(shared.values[:-1], type=kind))


def decode(data: bytes, columns: tuple[str, ...], fields: dict[str, dict]) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """The core columns as `pd.read_sql_query` would have typed them, and each extra field's values as the JSON
    path hands them to `typed_extra`."""
    table = pq.read_table(pa.BufferReader(data))
    frame = pd.DataFrame({name: _as_sql_would(table.column(name)) for name in columns})
    extras = {name: _as_sql_would(table.column(name)) for name in fields}
    return frame, extras


def _as_sql_would(column: pa.ChunkedArray) -> pd.Series:
    """A column as pandas infers it from SQLite's rows: all NULL → object None; else Arrow's own conversion, which
    matches (text → `str` with NaN, integers with a gap → float64, booleans with a gap → object)."""
    if column.null_count == len(column):
        return pd.Series([None] * len(column), dtype=object)
    if pa.types.is_dictionary(column.type):  # text written as codes: decoded straight to codes and values
        combined = column.unify_dictionaries().combine_chunks()
        codes = combined.indices.fill_null(-1).to_numpy().astype(np.intp)
        values = combined.dictionary.to_numpy(zero_copy_only=False).astype(object)
        if len(set(values)) == len(values) and not any(v is None for v in values):
            return pd.Series(pd.Categorical.from_codes(codes, categories=pd.Index(values, dtype=object)))
        return pd.Series(np.append(values, np.nan)[codes], dtype=object)
    if pa.types.is_string(column.type):
        values = column.to_numpy(zero_copy_only=False).astype(object)
        if column.null_count:
            values[column.is_null().to_numpy(zero_copy_only=False)] = np.nan
        return pd.Series(values, dtype=object)
    return column.to_pandas()


def finish(frame: pd.DataFrame, extras: dict[str, pd.Series], fields: dict[str, dict]) -> pd.DataFrame:
    """Parse the dates and add the extra fields in their promised dtypes (see `Store.deals`) — one code path for
    the SQL rows and the Parquet blob, so the two cannot drift apart."""
    for column in ("created_date", "closed_date"):
        frame[column] = _dates(frame[column])
    for name, spec in fields.items():
        values = extras.get(name)
        if values is None:
            values = pd.Series(None, index=frame.index, dtype=object)
        frame[name] = typed_extra(values.set_axis(frame.index), spec["kind"])
    for column in frame.columns:
        if column in CATEGORY_COLUMNS or fields.get(column, {}).get("kind") == "category":
            frame[column] = _categories(frame[column])
        elif isinstance(frame[column].dtype, (pd.StringDtype, pd.CategoricalDtype)):
            frame[column] = _shared_objects(frame[column])
    return frame


CATEGORY_COLUMNS = ("sales_rep_id", "industry", "region", "product_type", "lead_source", "deal_stage", "outcome")
"""Text columns with a handful of values, held as pandas categoricals (with the extra `category` fields)."""


def _categories(column: pd.Series) -> pd.Series:
    """A text column as a categorical whose categories (plain strings) are sorted, as grouping sorts them.

    Every refresh filters, groups and compares these columns many times; as codes into a few values that is
    integer work, where text (Arrow-backed or Python strings) is hashed or copied at every step."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, uniques = column.cat.codes.to_numpy(), np.asarray(column.cat.categories, dtype=object)
    else:
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        uniques = np.asarray(uniques, dtype=object)
    order = np.argsort(uniques.astype(str), kind="stable")
    rank = np.empty(len(order) + 1, dtype=np.intp)
    rank[order] = np.arange(len(order))
    rank[-1] = -1  # code -1 (missing) stays missing
    categories = pd.Index(uniques[order], dtype=object)
    return pd.Series(
        pd.Categorical.from_codes(rank[codes], categories=categories), index=column.index, name=column.name
    )


def _dates(column: pd.Series) -> pd.Series:
    """YYYY-MM-DD text parsed as pandas parses it, each distinct date once (a snapshot spans a few thousand days,
    and mapping a million parsed strings back to their rows cost more than parsing)."""
    parsed = per_distinct(column, lambda days: pd.to_datetime(pd.Series(days)).to_numpy(), np.datetime64("NaT"))
    return pd.Series(parsed, index=column.index, name=column.name)


def _shared_objects(column: pd.Series) -> pd.Series:
    """Text as plain Python strings (missing: NaN), one object per distinct value shared by its rows.

    Every refresh filters, groups and compares these columns many times; on pandas' Arrow-backed string dtype each
    filter copies the text and each NumPy conversion builds new strings, which together cost seconds at a million
    deals. Object columns of shared strings are filtered as pointers."""
    return pd.Series(
        per_distinct(column, lambda texts: texts, np.nan), index=column.index, dtype=object, name=column.name
    )


def typed_extra(values: pd.Series, kind: str) -> pd.Series:
    """An extra field's values as read back, in the dtype its kind promises (see `Store.deals`)."""
    if kind == "number":
        return pd.to_numeric(values, errors="coerce").astype(float)
    if kind == "boolean":
        return values.astype(object).where(values.notna(), None).astype("boolean")
    if kind == "date":
        return pd.to_datetime(values, format="ISO8601", errors="coerce")
    return values
