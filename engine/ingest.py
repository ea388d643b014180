"""Read a CRM snapshot file into validated deals and rejected rows, writing nothing anywhere.

Every data row ends up in exactly one of two places: `deals` (valid) or `rejects` (with its line number, the
raw row and every reason it failed), so rows read = loaded + rejected always holds. Problems with the file as a
whole (unreadable, empty, missing columns) raise `IngestError` before anything is returned.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from engine.layouts import LayoutError, ResolvedLayout, choose
from engine.missing import as_missing
from engine.settings import IngestSettings

CHUNK_ROWS = 50_000
DEAL_COLUMNS = (
    "line", "deal_id", "deal_name", "created_date", "closed_date", "sales_rep_id", "industry", "region",
    "product_type", "lead_source", "deal_stage", "deal_amount", "sales_cycle_days", "outcome",
)  # fmt: skip
TRUE_WORDS = {"true", "1", "yes", "y", "t"}
FALSE_WORDS = {"false", "0", "no", "n", "f"}


class IngestError(Exception):
    """The file as a whole cannot be loaded; the message names the file and the problem."""


@dataclass(frozen=True)
class Reject:
    line: int
    deal_id: str
    reasons: tuple[str, ...]
    raw: dict[str, str]


@dataclass
class ParsedSnapshot:
    """What one file holds after validation: valid deals (canonical columns) and rejected rows."""

    source: str
    sha256: str
    layout: str
    deals: pd.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    fields: dict[str, dict] = field(default_factory=dict)
    """Extra fields of the layout (name → its declaration); their values are columns of `deals` by that name."""

    @property
    def rows_read(self) -> int:
        return len(self.deals) + len(self.rejects)

    def top_reasons(self, limit: int = 5) -> list[tuple[str, int]]:
        """The most common rejection reasons, grouped by kind (values stripped), most frequent first."""
        kinds = Counter(_reason_kind(reason) for reject in self.rejects for reason in reject.reasons)
        return kinds.most_common(limit)


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_snapshot(
    path: Path,
    settings: IngestSettings,
    layout: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ParsedSnapshot:
    """Parse and validate `path`; `progress` is called with the bytes consumed since its last call."""
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    if not path.is_file():
        raise IngestError(f"{path}: not a file")
    try:
        sha256 = file_sha256(path)
    except OSError as error:
        raise IngestError(f"{path}: cannot read ({error.strerror})") from error
    layouts = settings.all_layouts()
    requested = layout or settings.layout
    encoding = layouts[requested].encoding if requested in layouts else "utf-8-sig"
    try:
        with path.open(encoding=encoding, newline="") as handle:
            lines = _counting_lines(handle, progress)
            reader = csv.reader(lines)
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise IngestError(f"{path}: empty file (no header row)")
            header = [cell.strip() for cell in header]
            try:
                resolved = choose(requested, layouts, header)
            except LayoutError as error:
                raise IngestError(f"{path}: {error}") from error
            validator = _Validator(resolved, header, settings.cycle_days_tolerance)
            for chunk in _chunks(reader, len(header)):
                validator.add(chunk)
    except UnicodeDecodeError as error:
        raise IngestError(f"{path}: not {encoding} text (byte {error.start}: {error.reason})") from error
    except csv.Error as error:
        raise IngestError(f"{path}: not a readable CSV file ({error})") from error
    if validator.rows_seen == 0:
        raise IngestError(f"{path}: has a header but no data rows")
    fields = {name: spec.model_dump() for name, spec in resolved.layout.fields.items()}
    return ParsedSnapshot(str(path), sha256, resolved.name, validator.deals(), validator.rejects, fields)


def _counting_lines(handle, progress: Callable[[int], None] | None) -> Iterator[str]:
    if progress is None:
        yield from handle
        return
    pending = 0
    for line in handle:
        pending += len(line)
        if pending >= 1 << 20:
            progress(pending)
            pending = 0
        yield line
    progress(pending)


@dataclass
class _RawChunk:
    lines: list[int]
    rows: list[list[str]]
    bad_width: list[tuple[int, list[str]]]


def _chunks(reader, width: int) -> Iterator[_RawChunk]:
    chunk = _RawChunk([], [], [])
    last_line = reader.line_num
    for row in reader:
        start, last_line = last_line + 1, reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line is no row at all
        if len(row) != width:
            chunk.bad_width.append((start, row))
        else:
            chunk.lines.append(start)
            chunk.rows.append(row)
        if len(chunk.rows) >= CHUNK_ROWS:
            yield chunk
            chunk = _RawChunk([], [], [])
    yield chunk


class _Validator:
    """Accumulates valid deals and rejects over chunks, remembering deal ids across chunks for duplicates."""

    def __init__(self, resolved: ResolvedLayout, header: list[str], cycle_tolerance: int):
        self.resolved = resolved
        self.header = header
        self.cycle_tolerance = cycle_tolerance
        self.first_line_of: dict[str, int] = {}
        self.frames: list[pd.DataFrame] = []
        self.rejects: list[Reject] = []
        self.rows_seen = 0

    def add(self, chunk: _RawChunk) -> None:
        self.rows_seen += len(chunk.rows) + len(chunk.bad_width)
        for line, row in chunk.bad_width:
            raw = dict(zip(self.header, row)) if len(row) < len(self.header) else {"_row": ",".join(row)}
            reason = f"wrong number of fields: expected {len(self.header)}, found {len(row)}"
            self.rejects.append(Reject(line, row[0] if row else "", (reason,), raw))
        if not chunk.rows:
            return
        raw = pd.DataFrame(chunk.rows, columns=range(len(self.header)), dtype=object)
        deals, reasons = self._validate(raw, np.asarray(chunk.lines))
        bad = reasons.map(bool).to_numpy()
        for position in np.flatnonzero(bad):
            row = chunk.rows[position]
            self.rejects.append(
                Reject(int(chunk.lines[position]), deals["deal_id"].iat[position], tuple(reasons.iat[position]),
                       dict(zip(self.header, row)))
            )  # fmt: skip
        self.frames.append(deals.loc[~bad])

    def deals(self) -> pd.DataFrame:
        columns = [*DEAL_COLUMNS, *self.resolved.layout.fields]
        if not self.frames:
            return pd.DataFrame(columns=columns)
        return pd.concat(self.frames, ignore_index=True).loc[:, columns]

    def _text(self, raw: pd.DataFrame, field: str) -> pd.Series:
        if field in self.resolved.index:
            return raw[self.resolved.index[field]].astype(str).str.strip()
        return pd.Series(self.resolved.layout.defaults.get(field, ""), index=raw.index, dtype=object)

    def _validate(self, raw: pd.DataFrame, lines: np.ndarray) -> tuple[pd.DataFrame, pd.Series]:
        reasons = pd.Series([[] for _ in range(len(raw))], index=raw.index, dtype=object)

        def fail(mask: pd.Series, message: Callable[[int], str]) -> None:
            for position in np.flatnonzero(mask.to_numpy()):
                reasons.iat[position].append(message(position))

        out = pd.DataFrame({"line": lines}, index=raw.index)
        out["deal_id"] = self._text(raw, "deal_id")
        fail(out["deal_id"] == "", lambda i: "deal_id is empty")
        self._flag_duplicates(out, lines, fail)
        out["deal_name"] = self._text(raw, "deal_name")
        out["sales_rep_id"] = self._text(raw, "sales_rep_id")
        fail(out["sales_rep_id"] == "", lambda i: "sales_rep_id is empty")
        for segment in ("industry", "region", "product_type", "lead_source", "deal_stage"):
            out[segment] = as_missing(self._text(raw, segment))
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
        fail(outcome.isna() & closed.notna(), lambda i: f"closed_date is set but the deal is open: {closed_text.iat[i]}")
        early = closed.notna() & created.notna() & (closed < created)
        fail(early, lambda i: f"closed before created: closed {closed_text.iat[i]}, created {created_text.iat[i]}")
        out["created_date"] = created.dt.strftime("%Y-%m-%d")
        out["closed_date"] = closed.dt.strftime("%Y-%m-%d")
        out["outcome"] = outcome

        amount_text = self._text(raw, "deal_amount")
        amount = pd.to_numeric(amount_text.str.replace(r"[$,\s]", "", regex=True), errors="coerce")
        fail(amount_text == "", lambda i: "deal_amount is empty")
        fail((amount_text != "") & amount.isna(), lambda i: f"deal_amount is not a number: {amount_text.iat[i]!r}")
        fail(amount < 0, lambda i: f"deal_amount is negative: {amount_text.iat[i]}")
        out["deal_amount"] = amount.astype(float)

        cycle_text = self._text(raw, "sales_cycle_days")
        cycle = pd.to_numeric(cycle_text, errors="coerce")
        fail((cycle_text != "") & cycle.isna(), lambda i: f"sales_cycle_days is not a number: {cycle_text.iat[i]!r}")
        actual = (closed - created).dt.days
        off = cycle.notna() & actual.notna() & ((cycle - actual).abs() > self.cycle_tolerance)
        fail(off, lambda i: f"sales_cycle_days disagrees with the dates: {cycle_text.iat[i]} given, "
                            f"{int(actual.iat[i])} from created to closed")  # fmt: skip
        out["sales_cycle_days"] = cycle.where(cycle.notna(), actual).astype("Int64")
        return out, reasons

    def _extra_fields(self, raw: pd.DataFrame, out: pd.DataFrame, fail) -> None:
        """The layout's extra columns, each checked against its kind; placeholders are missing, never rejects.

        Values land as: category → text, number → float, boolean → True/False (object), date → "YYYY-MM-DD"
        (like created_date), with None/NaN for missing. A column the file lacks gives None on every deal.
        """
        for name, spec in self.resolved.layout.fields.items():
            position = next((self.resolved.header_index[c] for c in spec.candidates() if c in self.resolved.header_index), None)
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
        cleaned = text.where(text.isna(), text.astype(str).str.replace(r"[$,\s%]", "", regex=True))
        number = pd.to_numeric(cleaned, errors="coerce")
        bad = text.notna() & (number.isna() | ~np.isfinite(number.fillna(0)))
        fail(bad, lambda i: f"{name} is not a number: {text.iat[i]!r}")
        return number.where(~bad).astype(float)

    @staticmethod
    def _boolean_field(name: str, text: pd.Series, fail) -> pd.Series:
        lowered = text.astype(object).where(text.isna(), text.astype(str).str.lower())
        value = pd.Series(np.where(lowered.isin(TRUE_WORDS), True, np.where(lowered.isin(FALSE_WORDS), False, None)),
                          index=text.index, dtype=object)  # fmt: skip
        fail(text.notna() & value.isna(), lambda i: f"{name} is not true/false: {text.iat[i]!r}")
        return value

    def _date_field(self, name: str, text: pd.Series, fail) -> pd.Series:
        parsed = self._dates(text.astype(object).where(text.notna(), ""))
        fail(text.notna() & parsed.isna(), lambda i: f"{name} is not a date: {text.iat[i]!r}")
        return parsed.dt.strftime("%Y-%m-%d").astype(object).where(parsed.notna(), None)

    def _flag_duplicates(self, out: pd.DataFrame, lines: np.ndarray, fail) -> None:
        first = self.first_line_of
        duplicate = np.zeros(len(out), dtype=bool)
        first_lines = np.zeros(len(out), dtype=np.int64)
        for position, (deal_id, line) in enumerate(zip(out["deal_id"].to_numpy(), lines)):
            if not deal_id:
                continue
            seen = first.setdefault(deal_id, int(line))
            if seen != line:
                duplicate[position], first_lines[position] = True, seen
        fail(pd.Series(duplicate, index=out.index),
             lambda i: f"duplicate deal_id: {out['deal_id'].iat[i]} already on line {first_lines[i]}")  # fmt: skip

    def _dates(self, text: pd.Series) -> pd.Series:
        parsed = pd.to_datetime(
            text.where(text != ""), format=self.resolved.layout.date_format or "ISO8601", errors="coerce", utc=True
        )
        return parsed.dt.tz_convert(None).dt.normalize()

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
        value = pd.Series(np.where(text.isin(TRUE_WORDS), True, np.where(text.isin(FALSE_WORDS), False, None)),
                          index=raw.index, dtype=object)  # fmt: skip
        fail(value.isna(), lambda i: f"{column} is not true/false: {raw[index].iat[i]!r}")
        return value
