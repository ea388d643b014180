"""Work done once per distinct value of a column and spread back to its rows.

A million deals carry a few dozen industries, a few thousand dates and a few hundred ages: turning each cell into
text, parsing it or looking it up costs seconds, while doing it per distinct value and taking the results by code
costs milliseconds. Several steps of a refresh do exactly this; they share this one function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


def per_distinct(values: Any, convert: Callable[[np.ndarray], Any], missing: Any) -> np.ndarray:
    """`convert` applied once to the distinct values of `values` (an object array of them, in order of first
    appearance; it returns one result per value), spread back to every row; missing values get `missing`."""
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    converted = np.asarray(convert(np.asarray(distinct, dtype=object)))
    return np.append(converted, np.array([missing], dtype=converted.dtype))[codes]


def text_codes(values: Any, missing: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(each value's code among the distinct values as text, those texts). Each distinct value becomes text once;
    values that read the same share a code. A missing value reads `missing`, or gets code -1 when it is None."""
    value_codes, distinct = pd.factorize(values, use_na_sentinel=True)
    texts = [str(value) for value in np.asarray(distinct, dtype=object)]
    text_of, levels = pd.factorize(np.array(texts + ([missing] if missing is not None else []), dtype=object))
    if missing is None:
        text_of = np.append(text_of, -1)
    return text_of[value_codes], np.asarray(levels, dtype=object)  # code -1 (missing) picks the last slot


def counts_by_level(codes: np.ndarray, levels: np.ndarray, won: np.ndarray, name: str) -> pd.DataFrame:
    """Wins ("sum": booleans counted as integers, else in `won`'s type) and rows ("count") per level that occurs,
    levels sorted, as grouping `won` by the level text would give them; rows with code -1 are left out."""
    kept_rows = codes >= 0
    codes = codes[kept_rows]
    present = np.bincount(codes, minlength=len(levels))
    wins = np.bincount(codes, weights=won[kept_rows], minlength=len(levels))
    wins = wins.astype(np.int64 if won.dtype == bool else won.dtype)
    occurs = present > 0
    counts = pd.DataFrame(
        {"sum": wins[occurs], "count": present[occurs].astype(np.int64)},
        index=pd.Index(levels[occurs], dtype=object, name=name),
    )
    return counts.sort_index()
