"""The model's fields as integer codes, fixed once on the training rows and reused by every fit and prediction.

Encoding text is the expensive part of fitting on a million deals: a refresh fits several models (candidate
families on a validation split, the winner again on all history, the drivers) and predicts several times, and
re-encoding the same strings for each costs more than the fits. Here every categorical dimension (including banded
numbers and the age band) becomes an int32 code array in one pass; code 0 is the level most common among
training rows (the reference a logistic regression drops), -1 a level never seen in training. Each family builds
its own design from the codes: a sparse one-hot for the logistic regression, a small float matrix with native
categories and raw numbers for gradient-boosted trees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import sparse

from salesintel.engine.distinct import per_distinct
from salesintel.engine.fields import FeatureSpace

MAX_TREE_CATEGORIES = 254
"""HistGradientBoostingClassifier takes at most 255 categories per feature; rarer levels beyond this share one code."""


@dataclass(frozen=True)
class Encoding:
    """Levels per categorical dimension (most common first) and the raw number fields, as fixed on training rows."""

    levels: dict[str, tuple[str, ...]]
    """dimension → levels; a level's position is its code."""
    numbers: tuple[str, ...]
    """Number fields (by field name) given raw to the trees, besides their band."""

    @classmethod
    def fit(cls, rows: pd.DataFrame, space: FeatureSpace, with_age: bool = True) -> Encoding:
        """Levels of every field of `space` (and the age band, for landmark rows), and its raw numbers (for the
        trees; a fit on one row per deal at creation, like the drivers', needs neither)."""
        dimensions = [*space.dimensions, "age_band"] if with_age else list(space.dimensions)
        levels = {d: tuple(str(v) for v in rows[d].value_counts(sort=True).index) for d in dimensions}
        numbers = tuple(f.name for f in space.fields if f.kind == "number") if with_age else ()
        return cls(levels, numbers)

    def codes(self, rows: pd.DataFrame) -> Coded:
        columns = {}
        for dimension, levels in self.levels.items():
            # Each distinct value is looked up once (a few dozen per field), not once per row; a value never seen
            # in training gets -1. (A Categorical built with fixed categories did the same per row, 3× slower, and
            # pandas deprecates it for values outside the categories.)
            columns[dimension] = per_distinct(rows[dimension].to_numpy(dtype=object), _codes_among(levels), -1)
        numbers = {name: rows[name].to_numpy(dtype=float) for name in self.numbers}
        landmark = rows["landmark"].to_numpy(dtype=float) if "landmark" in rows else np.zeros(len(rows))
        return Coded(self, columns, numbers, landmark)


def _codes_among(levels: tuple[str, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """Values → their position among `levels` as text (-1: a level never seen in training)."""
    position = {level: code for code, level in enumerate(levels)}
    return lambda values: np.array([position.get(str(value), -1) for value in values], dtype=np.int32)


@dataclass(frozen=True)
class Coded:
    """One set of rows, encoded: what every family's design is built from."""

    encoding: Encoding
    codes: dict[str, np.ndarray]
    numbers: dict[str, np.ndarray]
    landmark: np.ndarray
    design: sparse.csr_matrix | None = field(default=None, compare=False, repr=False)
    """The one-hot design, when built once for all rows (`with_design`): every subset taken then slices it."""

    def __len__(self) -> int:
        return len(self.landmark)

    def take(self, positions: np.ndarray) -> Coded:
        return Coded(
            self.encoding,
            {d: c[positions] for d, c in self.codes.items()},
            {n: v[positions] for n, v in self.numbers.items()},
            self.landmark[positions],
            self.design[positions] if self.design is not None else None,
        )

    def with_design(self) -> Coded:
        """These rows with their one-hot design built once: model selection fits and predicts the logistic
        regression on a dozen subsets of the same rows, and slicing the rows of one matrix is cheaper than
        building each (the result is the same matrix)."""
        return replace(self, design=self.one_hot())

    def with_level(self, dimension: str, code: int) -> Coded:
        """These rows with one dimension set to one level for all (what-if for one-field contributions)."""
        return Coded(
            self.encoding,
            {**self.codes, dimension: np.full(len(self), code, dtype=np.int32)},
            self.numbers,
            self.landmark,
        )

    def with_number(self, name: str, value: float) -> Coded:
        return Coded(self.encoding, self.codes, {**self.numbers, name: np.full(len(self), value)}, self.landmark)

    def one_hot(self) -> sparse.csr_matrix:
        """Indicator of every non-reference level (code ≥ 1); the reference and unseen levels are all zeros."""
        if self.design is not None:
            return self.design
        blocks = []
        for dimension, levels in self.encoding.levels.items():
            code = self.codes[dimension]
            width = max(len(levels) - 1, 0)
            present = np.flatnonzero(code >= 1)
            blocks.append(
                sparse.csr_matrix((np.ones(len(present)), (present, code[present] - 1)), shape=(len(self), width))
            )
        return sparse.hstack(blocks, format="csr") if blocks else sparse.csr_matrix((len(self), 0))

    def one_hot_names(self) -> list[tuple[str, str]]:
        return [(d, level) for d, levels in self.encoding.levels.items() for level in levels[1:]]

    def tree_matrix(self, tree_dimensions: tuple[str, ...]) -> np.ndarray:
        """Categorical codes (unseen → missing, rare → one shared code), raw numbers, and the landmark age."""
        columns = []
        for dimension in tree_dimensions:
            code = self.codes[dimension].astype(float)
            code[code < 0] = np.nan
            columns.append(np.minimum(code, MAX_TREE_CATEGORIES))
        columns += [self.numbers[name] for name in self.encoding.numbers]
        columns.append(self.landmark)
        return np.column_stack(columns) if columns else np.empty((len(self), 0))
