"""Check rows of a CRM export against a layout, vectorised: each row becomes a deal or a reject with every reason.

The validator sees the file in chunks of raw text cells (a DataFrame whose columns are the file's column positions)
with each row's line number, whichever reader produced them (`engine.ingest` reads with pyarrow, or with Python's
csv module when only that can number the lines exactly). It remembers deal ids across chunks to flag duplicates.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from salesintel.engine.layouts import ResolvedLayout
from salesintel.engine.missing import as_missing
from salesintel.engine.settings import CANONICAL_FIELDS

DEAL_COLUMNS = ("line", *CANONICAL_FIELDS)
TRUE_WORDS = {"true", "1", "yes", "y", "t"}
FALSE_WORDS = {"false", "0", "no", "n", "f"}

# Python's `\s` spelled out: pandas runs a pattern with `\s` through Python's re one cell at a time (RE2's `\s`
# misses Unicode spaces), while an explicit class runs in pyarrow over the whole column, with the same result.
_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
AMOUNT_NOISE = f"[$,{_WHITESPACE}]"
NUMBER_NOISE = f"[$,%{_WHITESPACE}]"
PLAIN_NUMBER = r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?"
"""Numbers that pyarrow and pandas parse to the same float; anything else goes through `pd.to_numeric`."""
ISO_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"


INVISIBLE_PATTERN = "[\\x00-\\x1f\\x7f\\x{200b}-\\x{200f}\\x{2060}\\x{feff}]"
INVISIBLE = re.compile("[\\x00-\\x1f\\x7f\\u200b-\\u200f\\u2060\\ufeff]")
"""Characters a reader cannot see in an id (control, zero-width, byte-order mark): two ids that look the same but
differ by one are rejected rather than loaded as two deals."""


@dataclass(frozen=True)
class Reject:
    line: int
    deal_id: str
    reasons: tuple[str, ...]
    raw: dict[str, str]


class Validator:
    """Accumulates valid deals and rejects over chunks, remembering deal ids across chunks for duplicates."""

    def __init__(self, resolved: ResolvedLayout, header: list[str], cycle_tolerance: int):
        self.resolved = resolved
        self.header = header
        self.cycle_tolerance = cycle_tolerance
        self.seen_ids: list[pa.Array] = []
        self.seen_lines: list[np.ndarray] = []
        """Every deal id seen in earlier chunks, and the line it was first seen on."""
        self.frames: list[pd.DataFrame] = []
        self.rejects: list[Reject] = []
        self.rows_seen = 0

    def add_bad_width(self, line: int, row: list[str]) -> None:
        """A row with the wrong number of cells: rejected as it stands, never validated."""
        self.rows_seen += 1
        raw = dict(zip(self.header, row)) if len(row) < len(self.header) else {"_row": ",".join(row)}
        reason = f"wrong number of fields: expected {len(self.header)}, found {len(row)}"
        self.rejects.append(Reject(line, row[0] if row else "", (reason,), raw))

    def add(self, raw: pd.DataFrame, lines: np.ndarray) -> None:
        """Validate one chunk: `raw` holds text cells by column position, `lines` each row's line number."""
        self.rows_seen += len(raw)
        if not len(raw):
            return
        raw = raw.reset_index(drop=True)
        reasons: dict[int, list[str]] = {}
        deals = self._validate(raw, np.asarray(lines, dtype=np.int64), reasons)
        bad = np.zeros(len(raw), dtype=bool)
        bad[list(reasons)] = True
        for position in sorted(reasons):
            row = [raw[column].iat[position] for column in range(len(self.header))]
            self.rejects.append(
                Reject(
                    int(lines[position]),
                    deals["deal_id"].iat[position],
                    tuple(reasons[position]),
                    dict(zip(self.header, row)),
                )
            )
        self.frames.append(deals.loc[~bad])

    def deals(self) -> pd.DataFrame:
        columns = [*DEAL_COLUMNS, *self.resolved.layout.fields]
        if not self.frames:
            return pd.DataFrame(columns=columns)
        frame = self.frames[0] if len(self.frames) == 1 else pd.concat(self.frames, ignore_index=True)
        return frame.reset_index(drop=True).loc[:, columns]

    def _text(self, raw: pd.DataFrame, field: str) -> pd.Series:
        if field in self.resolved.index:
            return raw[self.resolved.index[field]].astype(str).str.strip()
        return pd.Series(self.resolved.layout.defaults.get(field, ""), index=raw.index, dtype=object)

    def _validate(self, raw: pd.DataFrame, lines: np.ndarray, reasons: dict[int, list[str]]) -> pd.DataFrame:
        def fail(mask: pd.Series, message: Callable[[int], str]) -> None:
            for position in np.flatnonzero(np.asarray(mask, dtype=bool)):
                reasons.setdefault(int(position), []).append(message(position))

        out = pd.DataFrame({"line": lines}, index=raw.index)
        out["deal_id"] = self._text(raw, "deal_id")
        fail(out["deal_id"] == "", lambda i: "deal_id is empty")
        ids = pa.array(out["deal_id"], type=pa.string())
        invisible = pc.match_substring_regex(ids, INVISIBLE_PATTERN).to_numpy(zero_copy_only=False)
        fail(
            invisible,
            lambda i: (
                "deal_id contains an invisible or control character "
                f"(U+{ord(INVISIBLE.search(out['deal_id'].iat[i]).group()):04X}): {out['deal_id'].iat[i]!r}"
            ),
        )
        self._flag_duplicates(out, lines, fail)
        out["deal_name"] = self._text(raw, "deal_name")
        out["sales_rep_id"] = self._text(raw, "sales_rep_id")
        fail(out["sales_rep_id"] == "", lambda i: "sales_rep_id is empty")
        for segment in ("industry", "region", "product_type", "lead_source", "deal_stage"):
            out[segment] = _as_missing_by_value(self._text(raw, segment))
        self._extra_fields(raw, out, fail)

        created_text = self._text(raw, "created_date")
        created = self._dates(created_text)
        fail(created_text == "", lambda i: "created_date is empty")
        fail((created_text != "") & created.isna(), lambda i: f"created_date is not a date: {created_text.iat[i]!r}")

        outcome = self._outcome(raw, fail)
        closed_text = self._text(raw, "closed_date")
        is_closed = outcome.isin(["Won", "Lost"])
        if self.resolved.layout.outcome_flags is not None:
            closed_text = closed_text.where(is_closed, "")  # an open opportunity's CloseDate is only a forecast
        closed = self._dates(closed_text)
        fail(is_closed & (closed_text == ""), lambda i: f"closed_date is empty: outcome is {outcome.iat[i]}")
        fail((closed_text != "") & closed.isna(), lambda i: f"closed_date is not a date: {closed_text.iat[i]!r}")
        fail(
            outcome.isna() & closed.notna(), lambda i: f"closed_date is set but the deal is open: {closed_text.iat[i]}"
        )
        early = closed.notna() & created.notna() & (closed < created)
        fail(early, lambda i: f"closed before created: closed {closed_text.iat[i]}, created {created_text.iat[i]}")
        out["created_date"] = self._iso_days(created, created_text)
        out["closed_date"] = self._iso_days(closed, closed_text)
        out["outcome"] = outcome

        amount_text = self._text(raw, "deal_amount")
        amount = numbers(amount_text.str.replace(AMOUNT_NOISE, "", regex=True))
        fail(amount_text == "", lambda i: "deal_amount is empty")
        fail((amount_text != "") & amount.isna(), lambda i: f"deal_amount is not a number: {amount_text.iat[i]!r}")
        fail(amount < 0, lambda i: f"deal_amount is negative: {amount_text.iat[i]}")
        fail(np.isinf(amount), lambda i: f"deal_amount is not a finite number: {amount_text.iat[i]!r}")
        out["deal_amount"] = amount.where(np.isfinite(amount)).astype(float)

        cycle_text = self._text(raw, "sales_cycle_days")
        cycle = numbers(cycle_text)
        fail((cycle_text != "") & cycle.isna(), lambda i: f"sales_cycle_days is not a number: {cycle_text.iat[i]!r}")
        fractional = cycle.notna() & (~np.isfinite(cycle) | (cycle != cycle.round()))
        fail(fractional, lambda i: f"sales_cycle_days is not a whole number of days: {cycle_text.iat[i]!r}")
        cycle = cycle.where(~fractional)
        actual = (closed - created).dt.days
        off = cycle.notna() & actual.notna() & ((cycle - actual).abs() > self.cycle_tolerance)
        fail(
            off,
            lambda i: (
                f"sales_cycle_days disagrees with the dates: {cycle_text.iat[i]} given, "
                f"{int(actual.iat[i])} from created to closed"
            ),
        )
        out["sales_cycle_days"] = cycle.where(cycle.notna(), actual).astype("Int64")
        return out

    def _extra_fields(self, raw: pd.DataFrame, out: pd.DataFrame, fail) -> None:
        """The layout's extra columns, each checked against its kind; placeholders are missing, never rejects.

        Values land as: category → text, number → float, boolean → True/False (object), date → "YYYY-MM-DD"
        (like created_date), with None/NaN for missing. A column the file lacks gives None on every deal.
        """
        for name, spec in self.resolved.layout.fields.items():
            position = next(
                (self.resolved.header_index[c] for c in spec.candidates() if c in self.resolved.header_index), None
            )
            if position is None:
                out[name] = None
                continue
            text = as_missing(raw[position].astype(str).str.strip())
            parse = getattr(self, f"_{spec.kind}_field")
            out[name] = parse(name, text, fail)

    @staticmethod
    def _category_field(name: str, text: pd.Series, fail) -> pd.Series:
        return text

    @staticmethod
    def _number_field(name: str, text: pd.Series, fail) -> pd.Series:
        present = text.notna()
        cleaned = pd.Series("", index=text.index, dtype="str")
        cleaned[present] = text[present].astype("str").str.replace(NUMBER_NOISE, "", regex=True)
        number = numbers(cleaned).where(present)
        bad = present & (number.isna() | ~np.isfinite(number.fillna(0)))
        fail(bad, lambda i: f"{name} is not a number: {text.iat[i]!r}")
        return number.where(~bad).astype(float)

    @staticmethod
    def _boolean_field(name: str, text: pd.Series, fail) -> pd.Series:
        lowered = text.astype(object).where(text.isna(), text.astype(str).str.lower())
        value = pd.Series(
            np.where(lowered.isin(TRUE_WORDS), True, np.where(lowered.isin(FALSE_WORDS), False, None)),
            index=text.index,
            dtype=object,
        )
        fail(text.notna() & value.isna(), lambda i: f"{name} is not true/false: {text.iat[i]!r}")
        return value

    def _date_field(self, name: str, text: pd.Series, fail) -> pd.Series:
        parsed = self._dates(text.astype(object).where(text.notna(), ""))
        fail(text.notna() & parsed.isna(), lambda i: f"{name} is not a date: {text.iat[i]!r}")
        return parsed.dt.strftime("%Y-%m-%d").astype(object).where(parsed.notna(), None)

    def _flag_duplicates(self, out: pd.DataFrame, lines: np.ndarray, fail) -> None:
        """A deal id seen before (in this chunk or an earlier one) rejects the row, naming the first line."""
        ids = out["deal_id"]
        # Ids that differ only in case are one deal to a reader (and to `/deal-risk d00005`): compared case-folded.
        encoded = pc.dictionary_encode(pc.utf8_lower(pa.array(ids, type=pa.string())))
        codes, uniques = encoded.indices.to_numpy(), encoded.dictionary
        _, first_position = np.unique(codes, return_index=True)  # codes number the ids in order of appearance
        first_line = lines[first_position]
        seen_before = np.zeros(len(uniques), dtype=bool)
        if self.seen_ids:
            # Look the earlier ids up in this chunk's ids, not the other way round: hashing all earlier ids grew
            # with every chunk (180k ids against 720k earlier ones: 0.32 s that way round, 0.14 s this way, measured).
            # Earlier ids are distinct, so each of this chunk's ids matches at most one of them.
            where = pc.index_in(pa.concat_arrays(self.seen_ids), value_set=uniques).to_numpy(zero_copy_only=False)
            hit = ~np.isnan(where)
            matched = where[hit].astype(np.int64)
            seen_before[matched] = True
            first_line = first_line.copy()
            first_line[matched] = np.concatenate(self.seen_lines)[hit]
        row_first = first_line[codes]
        duplicate = (ids != "").to_numpy() & (row_first != lines)
        fail(duplicate, lambda i: f"duplicate deal_id: {ids.iat[i]} already on line {row_first[i]}")
        new = ~seen_before & pc.not_equal(uniques, "").to_numpy(zero_copy_only=False)
        self.seen_ids.append(uniques.filter(pa.array(new)))
        self.seen_lines.append(first_line[new])

    def _dates(self, text: pd.Series) -> pd.Series:
        def parse(cells: pd.Series) -> pd.Series:
            parsed = pd.to_datetime(
                cells.where(cells != ""),
                format=self.resolved.layout.date_format or "ISO8601",
                errors="coerce",
                utc=True,
            )
            return parsed.dt.tz_convert(None).dt.normalize()

        return _per_distinct(text, parse)

    def _iso_days(self, parsed: pd.Series, text: pd.Series) -> pd.Series:
        """Parsed dates as YYYY-MM-DD text; an ISO day that parsed is already that text, so only the rest is
        formatted."""
        if self.resolved.layout.date_format is not None or not len(text):
            return parsed.dt.strftime("%Y-%m-%d")
        same = parsed.notna() & _per_distinct(text.astype(str), lambda cells: cells.str.fullmatch(ISO_DAY))
        days = text.astype(object).where(same)
        rest = parsed.notna() & ~same
        if rest.any():
            days[rest] = parsed[rest].dt.strftime("%Y-%m-%d")
        return days

    def _outcome(self, raw: pd.DataFrame, fail) -> pd.Series:
        """Won / Lost, or NaN for an open deal; unknown values are rejected with the accepted ones named."""
        layout = self.resolved.layout
        if layout.outcome_flags is not None:
            closed = self._flag(raw, self.resolved.closed_flag_index, layout.outcome_flags.closed, fail)
            won = self._flag(raw, self.resolved.won_flag_index, layout.outcome_flags.won, fail)
            outcome = pd.Series(np.where(won == True, "Won", "Lost"), index=raw.index, dtype=object)  # noqa: E712
            return outcome.where(closed == True)  # noqa: E712
        text = self._text(raw, "outcome")
        lowered = text.str.lower()
        mapping = {v.lower(): "Won" for v in layout.won_values}
        mapping |= {v.lower(): "Lost" for v in layout.lost_values}
        known = lowered.isin(list(mapping) + [v.lower() for v in layout.open_values])
        accepted = ", ".join(repr(v) for v in layout.won_values + layout.lost_values + layout.open_values)
        fail(~known, lambda i: f"unknown outcome: {text.iat[i]!r} (accepted: {accepted})")
        return lowered.map(mapping)

    def _flag(self, raw: pd.DataFrame, index: int | None, column: str, fail) -> pd.Series:
        text = raw[index].astype(str).str.strip().str.lower()
        value = pd.Series(
            np.where(text.isin(TRUE_WORDS), True, np.where(text.isin(FALSE_WORDS), False, None)),
            index=raw.index,
            dtype=object,
        )
        fail(value.isna(), lambda i: f"{column} is not true/false: {raw[index].iat[i]!r}")
        return value


def _per_distinct(text: pd.Series, compute: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`compute(text)` for an element-wise `compute`, run once per distinct cell: a million dates are a few
    thousand distinct days. Mostly distinct columns are computed as they stand."""
    codes, uniques = pd.factorize(text, use_na_sentinel=False)
    if len(uniques) * 2 > len(text):
        return compute(text)
    return compute(pd.Series(uniques, dtype=text.dtype)).take(codes).set_axis(text.index)


def _as_missing_by_value(text: pd.Series) -> pd.Series:
    """`as_missing(text)`, deciding once per distinct value: picklists hold a handful of values in a million cells,
    and the result shares one Python object per value instead of converting every cell."""
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    distinct = pd.Series(uniques, dtype=text.dtype)
    values = np.empty(len(uniques) + 1, dtype=object)
    values[:-1] = as_missing(distinct).to_numpy(dtype=object)
    values[-1] = None  # code -1: a missing cell
    return pd.Series(values[codes], index=text.index, dtype=object)


def numbers(text: pd.Series) -> pd.Series:
    """`pd.to_numeric(text, errors="coerce")`, faster: plain decimals are cast by pyarrow in one go and only the
    rest (empty cells, placeholders, exponents, bad values) go through pandas."""
    text = text.astype("str")
    plain = text.str.fullmatch(PLAIN_NUMBER).to_numpy(dtype=bool)
    result = np.full(len(text), np.nan)
    if plain.any():
        result[plain] = pa.array(text[plain], type=pa.string()).cast(pa.float64()).to_numpy(zero_copy_only=False)
    if not plain.all():
        rest = pd.to_numeric(text[~plain].astype(object), errors="coerce")
        result[~plain] = np.asarray(rest, dtype=float)
    return pd.Series(result, index=text.index)
