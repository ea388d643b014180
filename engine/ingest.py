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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from salesintel.engine import arrow_reader
from salesintel.engine.layouts import LayoutError, ResolvedLayout, choose
from salesintel.engine.settings import IngestSettings
from salesintel.engine.snapshot_guard import SnapshotFacts
from salesintel.engine.validator import DEAL_COLUMNS, FALSE_WORDS, TRUE_WORDS, Reject, Validator

__all__ = [
    "DEAL_COLUMNS",
    "FALSE_WORDS",
    "TRUE_WORDS",
    "IngestError",
    "ParsedSnapshot",
    "Reject",
    "file_sha256",
    "read_snapshot",
]

CHUNK_ROWS = 50_000
"""Rows per validation chunk when the file is read with the csv module."""


class IngestError(Exception):
    """The file as a whole cannot be loaded; the message names the file and the problem."""


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
    absent: tuple[str, ...] = ()
    """The optional columns the file lacks, each with what that disables (see `engine.layouts.OPTIONAL_FIELDS`)."""
    columns: tuple[str, ...] = ()
    """The canonical and extra fields the file had a column for."""

    @classmethod
    def validated(cls, source: str, sha256: str, resolved: ResolvedLayout, validator: Validator) -> ParsedSnapshot:
        """What a validator made of a whole source (a file, a warehouse query) read with `resolved`."""
        fields = {name: spec.model_dump() for name, spec in resolved.layout.fields.items()}
        return cls(
            source,
            sha256,
            resolved.name,
            validator.deals(),
            validator.rejects,
            fields,
            resolved.absent,
            resolved.columns_present(),
        )

    def facts(self) -> SnapshotFacts:
        return SnapshotFacts.of(self.rows_read, self.deals, self.columns)

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
    """Parse and validate `path`; `progress` is called with the bytes consumed since its last call.

    The rows are parsed by pyarrow when it can number them exactly (every record on one line), else by the csv
    module (see `engine.arrow_reader`); both feed the same validator, so deals, rejects and messages are the same.
    """
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    if not path.is_file():
        raise IngestError(f"{path}: not a file")
    try:
        scan = arrow_reader.scan(path)
    except OSError as error:
        raise IngestError(f"{path}: cannot read ({error.strerror})") from error
    layouts = settings.all_layouts()
    requested = layout or settings.layout
    encoding = layouts[requested].encoding if requested in layouts else "utf-8-sig"
    header, resolved = _header(path, encoding, requested, layouts)
    validator = Validator(resolved, header, settings.cycle_days_tolerance)
    if not arrow_reader.batches(path, len(header), encoding, scan.data_lines, validator.add, progress):
        validator = Validator(resolved, header, settings.cycle_days_tolerance)
        _read_with_csv_module(path, encoding, validator, progress)
    if validator.rows_seen == 0:
        raise IngestError(f"{path}: has a header but no data rows")
    return ParsedSnapshot.validated(str(path), scan.sha256, resolved, validator)


def _header(path: Path, encoding: str, requested: str, layouts: dict) -> tuple[list[str], ResolvedLayout]:
    """The file's first record, stripped, and the layout it fits; a file without one is an IngestError."""
    with _reading(path, encoding):
        with path.open(encoding=encoding, newline="") as handle:
            header = next(csv.reader(handle), None)
    if header is None or not any(cell.strip() for cell in header):
        raise IngestError(f"{path}: empty file (no header row)")
    header = [cell.strip() for cell in header]
    try:
        return header, choose(requested, layouts, header)
    except LayoutError as error:
        raise IngestError(f"{path}: {error}") from error


@contextmanager
def _reading(path: Path, encoding: str) -> Iterator[None]:
    """Turns decoding and CSV syntax errors into an IngestError naming the file."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise IngestError(f"{path}: not {encoding} text (byte {error.start}: {error.reason})") from error
    except csv.Error as error:
        raise IngestError(f"{path}: not a readable CSV file ({error})") from error


def _read_with_csv_module(
    path: Path, encoding: str, validator: Validator, progress: Callable[[int], None] | None
) -> None:
    """The exact reader: Python's csv module, numbering rows by the line each starts on, in chunks."""
    with _reading(path, encoding):
        with path.open(encoding=encoding, newline="") as handle:
            reader = csv.reader(_counting_lines(handle, progress))
            next(reader, None)  # the header, read already
            for chunk in _chunks(reader, len(validator.header)):
                for line, row in chunk.bad_width:
                    validator.add_bad_width(line, row)
                if chunk.rows:
                    raw = pd.DataFrame(chunk.rows, columns=range(len(validator.header)), dtype=object)
                    validator.add(raw, np.asarray(chunk.lines))


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
