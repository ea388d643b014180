"""What counts as "no value" in a CRM cell: empty, or a placeholder such as "Unknown", "N/A" or "-".

CRMs fill unset picklists with placeholders; counted as a real level, "Unknown" becomes a segment with a win
rate and turns "insufficient data" counts wrong. Every text field goes through `as_missing` on the way in, and a
store migration clears the placeholders older releases stored, so a placeholder is a missing value everywhere.
"""

from __future__ import annotations

import pandas as pd

MISSING_WORDS = frozenset(
    {"", "unknown", "n/a", "na", "-", "--", "none", "null", "nil", "(none)", "not set", "(blank)", "?"}
)


def is_missing_word(text: pd.Series) -> pd.Series:
    """True where a stripped text cell is empty or a placeholder for "no value"."""
    return text.isna() | text.astype(str).str.strip().str.lower().isin(MISSING_WORDS)


def as_missing(text: pd.Series) -> pd.Series:
    """The same cells with placeholders replaced by None (object dtype)."""
    cleaned = text.astype(object).where(~is_missing_word(text), None)
    return cleaned
