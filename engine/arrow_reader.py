"""Read a CSV export with pyarrow in large batches, numbering every row with its line in the file.

pyarrow parses many times faster than Python's csv module but does not say which line a row came from. We know it
anyway when every record is one physical line: a first pass over the bytes (which also hashes the file) lists the
non-blank lines, and the n-th row pyarrow returns is the n-th non-blank line after the header. When that does not
hold — a quoted cell with a line break, a row of the wrong width, bytes that are not UTF-8, an encoding pyarrow does
not read — `batches` returns False before anything is kept, and the caller reads the file with the csv module, whose
line numbers and messages are exact in every case.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv

BLOCK_BYTES = 32 << 20
"""Bytes per pyarrow block (about 360,000 rows of a typical export): large enough to parse in parallel and
validate with few pandas calls — and few batches, as each batch looks its deal ids up among all earlier ones — small
enough that the raw text of one batch is all that is held beside the deals. (16 MiB read a 1M-row file about 0.5 s
slower, measured with bench/ingest_scale.py's file.)"""
UTF8_NAMES = {"utf-8", "utf8", "utf-8-sig", "utf_8", "utf_8_sig"}


@dataclass(frozen=True)
class FileScan:
    """One pass over a file's bytes: its sha256 and the numbers of its non-blank lines after the first."""

    sha256: str
    size: int
    data_lines: np.ndarray
    """1-based line numbers of the non-blank physical lines after the header line (line 1)."""


def scan(path: Path) -> FileScan:
    """Hash the file and find its non-blank lines (empty, or only a carriage return, is blank) in one read."""
    digest = hashlib.sha256()
    blank_flags: list[np.ndarray] = []
    carry_len, carry_first, size = 0, 0, 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK_BYTES), b""):
            digest.update(block)
            size += len(block)
            data = np.frombuffer(block, dtype=np.uint8)
            ends = np.flatnonzero(data == 10)
            if len(ends):
                starts = np.concatenate(([0], ends[:-1] + 1))
                lengths = ends - starts
                first_bytes = data[np.minimum(starts, len(data) - 1)]
                if carry_len:
                    lengths[0] += carry_len
                    first_bytes[0] = carry_first
                blank_flags.append((lengths == 0) | ((lengths == 1) & (first_bytes == 13)))
                tail = len(data) - ends[-1] - 1
                carry_len, carry_first = tail, (data[ends[-1] + 1] if tail else 0)
            elif len(data):
                carry_first = carry_first if carry_len else data[0]
                carry_len += len(data)
    if carry_len:  # a last line without a line break
        blank_flags.append(np.array([carry_len == 1 and carry_first == 13]))
    blank = np.concatenate(blank_flags) if blank_flags else np.zeros(0, dtype=bool)
    numbers = np.flatnonzero(~blank) + 1
    return FileScan(digest.hexdigest(), size, numbers[numbers > 1])


def batches(
    path: Path,
    width: int,
    encoding: str,
    lines: np.ndarray,
    add: Callable[[pd.DataFrame, np.ndarray], None],
    progress: Callable[[int], None] | None = None,
) -> bool:
    """Parse the rows after the header with pyarrow and hand each batch to `add` with its line numbers.

    Returns False if the rows cannot be numbered exactly (see the module's docstring): the caller then throws away
    what `add` received and reads the file another way. Batches are handed over as they are parsed, so only one
    batch of raw text is held at a time. Cells are text exactly as in the file (quotes removed, nothing stripped or
    turned into nulls).
    """
    if encoding.lower() not in UTF8_NAMES:
        return False
    size, total_rows, offset, reported = path.stat().st_size, max(len(lines), 1), 0, 0
    try:
        for frame in _frames(path, width):
            if offset + len(frame) > len(lines):
                return False  # a bare carriage return ended a record: more rows than non-blank lines
            add(frame, lines[offset : offset + len(frame)])
            offset += len(frame)
            if progress is not None:  # bytes in proportion to rows: batches do not say where they end
                done = size * offset // total_rows
                progress(done - reported)
                reported = done
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False  # a row of the wrong width, bytes that are not UTF-8, ...: the csv module says which line
    if progress is not None and size > reported:
        progress(size - reported)
    return offset == len(lines)  # fewer rows than lines: a quoted cell spans lines


def _frames(path: Path, width: int) -> Iterator[pd.DataFrame]:
    """The file's rows as DataFrames of pyarrow-backed text, columns numbered by position."""
    names = [str(i) for i in range(width)]
    reader = pv.open_csv(
        path,
        read_options=pv.ReadOptions(column_names=names, skip_rows=1, block_size=BLOCK_BYTES),
        parse_options=pv.ParseOptions(newlines_in_values=True, ignore_empty_lines=True),
        convert_options=pv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    with reader:
        for batch in reader:
            yield pd.DataFrame({i: batch.column(i).to_pandas() for i in range(width)})
