"""Whether a newly loaded snapshot may replace the current one: sanity checks against the previous snapshot.

A bad or partial export must not become the truth. A file whose every row was rejected, one that holds far fewer
deals or far less open pipeline than the snapshot before it (a filtered report, a half-copied file), or one whose
columns changed (a field the previous export had is gone) is stored, so it can be inspected, but not promoted:
refreshes keep using the previous snapshot until someone accepts it (`salesintel ingest PATH --accept`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from salesintel.engine.settings import IngestSettings

if TYPE_CHECKING:
    from salesintel.engine.ingest import ParsedSnapshot
    from salesintel.engine.store import Snapshot, Store


@dataclass(frozen=True)
class SnapshotFacts:
    """What the guard compares: enough to recognise a partial or broken export."""

    rows_read: int
    deals: int
    open_value: float
    """Sum of the open deals' amounts: the pipeline a partial export loses."""
    columns: tuple[str, ...]
    """The canonical fields the file had a column for."""

    @classmethod
    def of(cls, rows_read: int, deals: pd.DataFrame, columns: tuple[str, ...]) -> SnapshotFacts:
        open_deals = deals["outcome"].isna() if len(deals) else pd.Series(dtype=bool)
        value = float(deals.loc[open_deals, "deal_amount"].sum()) if len(deals) else 0.0
        return cls(rows_read, len(deals), value, tuple(sorted(columns)))


def guard_problems(new: SnapshotFacts, previous: SnapshotFacts | None, settings: IngestSettings) -> list[str]:
    """Why `new` should not replace `previous` (empty: promote it)."""
    problems = []
    if new.deals == 0:
        problems.append(f"every row was rejected ({new.rows_read:,} read, none loaded)")
    if previous is None:
        return problems
    allowed = settings.max_drop_share
    if previous.deals and new.deals and new.deals < (1 - allowed) * previous.deals:
        problems.append(
            f"deal count dropped from {previous.deals:,} to {new.deals:,} ({1 - new.deals / previous.deals:.0%}, "
            f"more than the {allowed:.0%} allowed by ingest.max_drop_share)"
        )
    if previous.open_value > 0 and new.deals and new.open_value < (1 - allowed) * previous.open_value:
        problems.append(
            f"open pipeline value dropped from {previous.open_value:,.0f} to {new.open_value:,.0f} "
            f"({1 - new.open_value / previous.open_value:.0%}, more than the {allowed:.0%} allowed)"
        )
    lost = sorted(set(previous.columns) - set(new.columns))
    if previous.columns and lost and new.deals:
        problems.append(f"the columns changed: {', '.join(lost)} present before, missing now")
    return problems


@dataclass(frozen=True)
class GuardedSave:
    snapshot: Snapshot
    """As stored: promoted, or held with its reason."""
    problems: list[str]
    """What the guard found (also when `accept` promoted it anyway)."""
    previous: Snapshot | None
    """The snapshot in use before: still in use when this one is held."""


def save_guarded(
    store: Store, parsed: ParsedSnapshot, taken: datetime, now: datetime, settings: IngestSettings, accept: bool
) -> GuardedSave:
    """Store `parsed`, promoted unless the guard finds problems and `accept` is not given."""
    previous = store.latest_snapshot()
    problems = guard_problems(parsed.facts(), previous.guard_facts() if previous else None, settings)
    held = "; ".join(problems) if problems and not accept else None
    return GuardedSave(store.save_snapshot(parsed, taken, now, held), problems, previous)
