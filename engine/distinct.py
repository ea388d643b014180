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
