"""Named bands for continuous deal attributes (amount, cycle length), so they can be cut by like a segment."""

from __future__ import annotations

import pandas as pd


def _money(value: float) -> str:
    return f"${value / 1000:g}k" if value >= 1000 else f"${value:g}"


def amount_band(amounts: pd.Series, edges: list[float]) -> pd.Series:
    """'<$10k', '$10k–25k', ..., '≥$50k' for the configured edges."""
    labels = [f"<{_money(edges[0])}"]
    labels += [f"{_money(low)}–{_money(high)[1:]}" for low, high in zip(edges, edges[1:])]
    labels += [f"≥{_money(edges[-1])}"]
    return _cut(amounts, edges, labels)


def cycle_band(days: pd.Series, edges: list[int]) -> pd.Series:
    """'<30 days', '30–59 days', ..., '≥90 days' for the configured edges."""
    labels = [f"<{edges[0]} days"]
    labels += [f"{low}–{high - 1} days" for low, high in zip(edges, edges[1:])]
    labels += [f"≥{edges[-1]} days"]
    return _cut(days, edges, labels)


def number_band(values: pd.Series, edges: list[float]) -> pd.Series:
    """'<3', '3–8', '≥8' for the given edges (a plain number field's bands); no edges means one band, 'any'."""
    if not edges:
        return pd.Series("any", index=values.index, dtype=object).where(values.notna(), None)
    labels = [f"<{edges[0]:g}"]
    labels += [f"{low:g}–{high:g}" for low, high in zip(edges, edges[1:])]
    labels += [f"≥{edges[-1]:g}"]
    return _cut(values, edges, labels)


def _cut(values: pd.Series, edges: list[float], labels: list[str]) -> pd.Series:
    bins = [-float("inf"), *edges, float("inf")]
    banded = pd.cut(pd.to_numeric(values), bins=bins, labels=labels, right=False)
    return banded.astype(object).where(banded.notna(), None)
