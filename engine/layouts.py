"""Match a CSV header to a CRM layout: which export column feeds which canonical field."""

from __future__ import annotations

from dataclasses import dataclass

from salesintel.engine.settings import Layout

REQUIRED_FIELDS = ("deal_id", "created_date", "sales_rep_id", "deal_amount")
"""Fields without which a row is not a deal; the outcome is required too, as a column or as flags."""


class LayoutError(Exception):
    """The file's header fits no layout; the message names the missing columns."""


@dataclass(frozen=True)
class ResolvedLayout:
    """A layout bound to one file's header: canonical field -> column index in that file."""

    name: str
    layout: Layout
    index: dict[str, int]
    closed_flag_index: int | None
    won_flag_index: int | None
    header_index: dict[str, int]
    """Every column of the file by name (extra fields are looked up here)."""


def _missing_columns(layout: Layout, header: list[str]) -> list[str]:
    present = set(header)
    missing = []
    required = list(REQUIRED_FIELDS)
    if layout.outcome_flags is None:
        required += ["outcome", "closed_date"]
    else:
        required += ["closed_date"]
        missing += [c for c in (layout.outcome_flags.closed, layout.outcome_flags.won) if c not in present]
    for field in required:
        candidates = layout.candidates(field)
        if field in layout.defaults or any(c in present for c in candidates):
            continue
        missing.append(" or ".join(candidates) if candidates else field)
    return missing


def resolve(layout_name: str, layout: Layout, header: list[str]) -> ResolvedLayout:
    """Bind `layout` to `header`, or raise LayoutError naming every required column the header lacks."""
    missing = _missing_columns(layout, header)
    if missing:
        raise LayoutError(f"missing required column(s) {', '.join(missing)} (layout {layout_name})")
    position = {column: i for i, column in enumerate(header)}
    index = {}
    for field in layout.columns:
        found = next((c for c in layout.candidates(field) if c in position), None)
        if found is not None:
            index[field] = position[found]
    flags = layout.outcome_flags
    return ResolvedLayout(
        name=layout_name,
        layout=layout,
        index=index,
        closed_flag_index=position[flags.closed] if flags else None,
        won_flag_index=position[flags.won] if flags else None,
        header_index=position,
    )


def choose(requested: str, layouts: dict[str, Layout], header: list[str]) -> ResolvedLayout:
    """Pick the layout for a file: the requested one, or with `auto` the first whose columns the header has."""
    if requested != "auto":
        if requested not in layouts:
            raise LayoutError(f"unknown layout {requested!r}; configured: {', '.join(layouts)}")
        return resolve(requested, layouts[requested], header)
    for name, layout in layouts.items():
        if not _missing_columns(layout, header):
            return resolve(name, layout, header)
    closest = min(layouts, key=lambda name: len(_missing_columns(layouts[name], header)))
    return resolve(closest, layouts[closest], header)  # raises, naming what the closest layout lacks
