"""Match a CSV header to a CRM layout: which export column feeds which canonical field."""

from __future__ import annotations

from dataclasses import dataclass

from salesintel.engine.settings import Layout

REQUIRED_FIELDS = ("deal_id", "created_date", "sales_rep_id", "deal_amount")
"""Fields without which a row is not a deal; the outcome is required too, as a column or as flags."""


OPTIONAL_FIELDS = {
    "deal_name": "deals are shown by id only",
    "industry": "no win rates, drivers or reasons by industry",
    "region": "no win rates, drivers or reasons by region",
    "product_type": "no win rates, drivers or reasons by product",
    "lead_source": "no win rates, drivers or reasons by lead source",
    "deal_stage": "no stage in answers, no pipeline by stage and no stalled-deal alerts",
    "sales_cycle_days": "none lost: days to close are computed from the created and closed dates",
}
"""Canonical fields a file may lack, and what their absence disables (ingest says so for each one absent)."""


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
    absent: tuple[str, ...] = ()
    """One sentence per optional field or declared extra field the file lacks, saying what that disables."""

    def columns_present(self) -> tuple[str, ...]:
        """The canonical fields (and extra fields) this file has a column for."""
        extras = [n for n, spec in self.layout.fields.items() if any(c in self.header_index for c in spec.candidates())]
        return tuple(sorted({*self.index, *extras}))


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
    used = {header[i]: field for field, i in index.items()}
    used |= {c: c for c in (flags.closed, flags.won)} if flags else {}
    for name, spec in layout.fields.items():
        found = next((c for c in spec.candidates() if c in position), None)
        if found is not None:
            used[found] = name
    for column, field in used.items():
        places = [i + 1 for i, cell in enumerate(header) if cell == column]
        if len(places) > 1:
            raise LayoutError(
                f"column {column!r} appears {len(places)} times in the header (columns "
                f"{', '.join(map(str, places))}): which one holds {field} is ambiguous; rename or remove the copy"
            )
    return ResolvedLayout(
        name=layout_name,
        layout=layout,
        index=index,
        closed_flag_index=position[flags.closed] if flags else None,
        won_flag_index=position[flags.won] if flags else None,
        header_index=position,
        absent=_absent(layout, index, position),
    )


def _absent(layout: Layout, index: dict[str, int], position: dict[str, int]) -> tuple[str, ...]:
    """Fields the layout maps (or declares) that the file has no column for; a field the layout leaves out on purpose
    is not news on every ingest."""
    said = []
    for field, disables in OPTIONAL_FIELDS.items():
        if field in layout.columns and field not in index and field not in layout.defaults:
            said.append(f"{field}: no column ({' or '.join(layout.candidates(field)) or field}); {disables}")
    for name, spec in layout.fields.items():
        if not any(c in position for c in spec.candidates()):
            said.append(f"{name}: no column ({' or '.join(spec.candidates())}); the extra field {name} is not used")
    return tuple(said)


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
