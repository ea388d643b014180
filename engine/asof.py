"""Replaying a snapshot as of a date: what was history and what was the open pipeline, with nothing from later.

This is the one place the as-of cut is made, so every metric, feature and score downstream sees the same past.
A deal closed on or before the date is history. A deal created on or before it and not closed by then is open,
and everything that was only known after the date (outcome, close date, cycle length) is blanked for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

FUTURE_ONLY_COLUMNS = ("outcome", "closed_date", "sales_cycle_days")
"""What an open deal cannot know yet: these are blanked for the open pipeline."""


@dataclass(frozen=True)
class AsOfView:
    """The snapshot seen from `as_of`.

    `stage_known` says whether the CRM stage of an open deal is its stage *at* the date: true only when the
    snapshot was taken on or before the date. Replaying an older date from a newer snapshot would otherwise
    show a deal's later (often final) stage, which leaks its future.
    """

    as_of: date
    history: pd.DataFrame
    open: pd.DataFrame
    stage_known: bool
    open_in_snapshot: np.ndarray
    """Per row of `open`: whether the deal was still open when the snapshot was taken (the rest closed after the
    as-of date). A mask, not a set of ids: looking a hundred thousand ids up in a set took 0.2 s a refresh."""


def data_span(deals: pd.DataFrame, as_of: date) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The first and last event (a creation or a close) on or before `as_of`, or None without any deal by then."""
    cut = pd.Timestamp(as_of)
    created = deals.loc[deals["created_date"] <= cut, "created_date"]
    if created.empty:
        return None
    closed = deals.loc[deals["closed_date"].notna() & (deals["closed_date"] <= cut), "closed_date"]
    return created.min(), max(created.max(), closed.max()) if len(closed) else created.max()


def view_as_of(deals: pd.DataFrame, as_of: date, snapshot_taken: date) -> AsOfView:
    """Split `deals` (as `Store.deals` returns them) into history and open pipeline as of the end of `as_of`."""
    cut = pd.Timestamp(as_of)
    closed_by_then = deals["closed_date"].notna() & (deals["closed_date"] <= cut) & deals["outcome"].notna()
    created_by_then = deals["created_date"] <= cut
    history = deals[closed_by_then]  # new frames already: copy-on-write (pandas 3) keeps `deals` untouched
    history["won"] = history["outcome"].eq("Won")
    open_deals = deals[created_by_then & ~closed_by_then]
    still_open = open_deals["outcome"].isna().to_numpy(dtype=bool)
    for column in FUTURE_ONLY_COLUMNS:
        open_deals[column] = None if column == "outcome" else pd.NA
    open_deals["closed_date"] = pd.NaT
    stage_known = snapshot_taken <= as_of
    if not stage_known:
        open_deals["deal_stage"] = None
    open_deals["age_days"] = (cut - open_deals["created_date"]).dt.days.astype(int)
    return AsOfView(as_of, history.reset_index(drop=True), open_deals.reset_index(drop=True), stage_known, still_open)
