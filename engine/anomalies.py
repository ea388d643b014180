"""Segment anomalies for the monthly deep-dive: who departed from their own past beyond chance?

For each segment (and each pair, such as industry × region), the recent window is compared with the segment's own
baseline window just before it on three signals: win rate (Fisher's exact test), days to close (Mann–Whitney) and
volume of new deals relative to all new deals (Fisher's exact test on counts). Every test made goes into one
Benjamini–Hochberg family; a cell needs `min_sample` closed deals in both windows to be tested at all.
The hypothesis and next steps follow from which signals moved, and in which direction.

Windows are trimmed to the dates the data covers. An export that ends before the as-of date leaves the recent
window partly empty; one that starts inside the baseline window holds, early on, only the deals that closed
quickly (the slow ones were created before the export begins), so the baseline of closed deals starts only once a
deal of the longest supported cycle could have been created inside the data. A window covered less than
`min_coverage` is not compared, and the statement says why. Volume is a segment's share of new deals, so its
ratio, its test and its direction are one number read three ways.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from itertools import combinations

import pandas as pd

from salesintel.engine.asof import data_span
from salesintel.engine.fields import FeatureSpace
from salesintel.engine.settings import AnomalySettings
from salesintel.engine.stats import benjamini_hochberg, fisher_vs_rest, mann_whitney, wilson

MAX_LEVELS = 12
"""Fields with more levels than this are not cut into pairs (too many cells for too few deals)."""


@dataclass
class Anomaly:
    cell: dict[str, str]
    signals: dict = field(default_factory=dict)
    """signal name → {recent, baseline, n_recent, n_baseline, p_value, q_value, significant, direction}"""
    hypothesis: str = ""
    next_steps: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " × ".join(self.cell.values())

    def to_dict(self) -> dict:
        return {
            "cell": self.cell,
            "label": self.label,
            "signals": self.signals,
            "hypothesis": self.hypothesis,
            "next_steps": self.next_steps,
        }


@dataclass(frozen=True)
class Windows:
    """The recent and baseline windows as compared: trimmed to the data, with covered days."""

    recent_start: pd.Timestamp
    recent_end: pd.Timestamp
    base_start: pd.Timestamp
    base_end: pd.Timestamp
    closed_base_start: pd.Timestamp
    recent_days: int
    base_days: int
    skipped: str | None


def trimmed_windows(
    as_of: date, first: pd.Timestamp, last: pd.Timestamp, supported_age: int | None, settings: AnomalySettings
) -> Windows:
    """Windows (start, end] cut to the data's dates, and why a comparison must be skipped (or None)."""
    end = pd.Timestamp(as_of)
    recent_start = end - pd.Timedelta(days=settings.recent_days)
    base_start = recent_start - pd.Timedelta(days=settings.baseline_days)
    recent_end = min(end, last)
    data_start = first - pd.Timedelta(days=1)
    closed_base_start = max(base_start, data_start + pd.Timedelta(days=supported_age or 0))
    base_start_trimmed = max(base_start, data_start)
    recent_days = max(0, (recent_end - max(recent_start, data_start)).days)
    base_days = max(0, (recent_start - closed_base_start).days)
    skipped = None
    if recent_days < settings.min_coverage * settings.recent_days:
        skipped = (
            f"the data ends on {last:%Y-%m-%d}, {(end - last).days} days before {as_of}: the last "
            f"{settings.recent_days} days hold {recent_days} days of data, too few to compare"
        )
    elif base_days < settings.min_coverage * settings.baseline_days:
        skipped = (
            f"the data starts on {first:%Y-%m-%d}: after allowing {supported_age or 0} days for the slowest "
            f"deals to have been created inside the export, {base_days} of the {settings.baseline_days} "
            f"baseline days before {recent_start:%Y-%m-%d} are covered, too few to compare"
        )
    return Windows(
        recent_start, recent_end, base_start_trimmed, recent_start, closed_base_start, recent_days, base_days, skipped
    )


def anomaly_fields(space: FeatureSpace, history: pd.DataFrame) -> list[str]:
    """Category fields of the feature space with few enough levels to cut by (owners are not segments here)."""
    return [
        info.name
        for info in space.fields
        if info.kind == "category" and info.name != "sales_rep_id" and history[info.name].nunique() <= MAX_LEVELS
    ]


def find_anomalies(
    history: pd.DataFrame, created: pd.DataFrame, as_of: date, settings: AnomalySettings, space: FeatureSpace
) -> dict:
    """`history`: deals closed by `as_of` (with `won`); `created`: every deal created by `as_of` (for volume)."""
    span = data_span(created, as_of)
    if span is None:
        return _empty(settings, "no deals were created by the as-of date")
    first, last = span
    windows = trimmed_windows(as_of, first, last, space.supported_age, settings)
    described = {
        "recent_window": [max(windows.recent_start, first).date().isoformat(), windows.recent_end.date().isoformat()],
        "baseline_window": [windows.closed_base_start.date().isoformat(), windows.base_end.date().isoformat()],
        "covered_days": {"recent": windows.recent_days, "baseline": windows.base_days},
    }
    if windows.skipped:
        return {**_empty(settings, windows.skipped), **described}
    fields = anomaly_fields(space, history)
    if not fields:
        return {
            **_empty(settings, "no field is left to cut segments by (every field was excluded from findings)"),
            **described,
        }
    # groups copy only what the tests read, and cut by categories (coded once, not per grouping)
    history = history[[*fields, "closed_date", "won", "sales_cycle_days"]].astype({f: "category" for f in fields})
    created = created[[*fields, "created_date"]].astype({f: "category" for f in fields})
    recent = history[history["closed_date"] > windows.recent_start]
    base = history[(history["closed_date"] > windows.closed_base_start) & (history["closed_date"] <= windows.base_end)]
    created_recent = created[created["created_date"] > windows.recent_start]
    created_base = created[
        (created["created_date"] > windows.base_start) & (created["created_date"] <= windows.base_end)
    ]
    cells = [(f,) for f in fields] + list(combinations(fields, 2))
    tests, candidates = [], []
    for cell_fields in cells:
        columns = list(cell_fields)
        recent_groups = dict(list(recent.dropna(subset=columns).groupby(columns, observed=True)))
        volumes = (
            created_recent.groupby(columns, observed=True).size().to_dict(),
            created_base.groupby(columns, observed=True).size().to_dict(),
            len(created_recent),
            len(created_base),
        )
        for key, base_cell in base.dropna(subset=columns).groupby(columns, observed=True):
            key = key if isinstance(key, tuple) else (key,)
            recent_cell = recent_groups.get(key)
            if recent_cell is None or min(len(recent_cell), len(base_cell)) < settings.min_sample:
                continue
            anomaly = Anomaly(dict(zip(cell_fields, map(str, key))))
            candidates.append(anomaly)
            tests += _signals(anomaly, _lookup(volumes, key), recent_cell, base_cell, windows)
    q_values = benjamini_hochberg([p for _, _, p in tests])
    for (anomaly, signal, _), q_value in zip(tests, q_values):
        anomaly.signals[signal]["q_value"] = q_value
        anomaly.signals[signal]["significant"] = q_value <= settings.fdr_q
    found = [a for a in candidates if any(s["significant"] for s in a.signals.values())]
    for anomaly in found:
        anomaly.hypothesis, anomaly.next_steps = explain(anomaly)
    found.sort(key=lambda a: min(s["q_value"] for s in a.signals.values()))
    return {
        **described,
        "cells_tested": len(candidates),
        "tests": len(tests),
        "skipped": None,
        "anomalies": [a.to_dict() for a in found],
        "statement": _statement(len(candidates), len(tests), found, settings),
    }


def _empty(settings: AnomalySettings, why: str) -> dict:
    return {
        "recent_window": None,
        "baseline_window": None,
        "covered_days": None,
        "cells_tested": 0,
        "tests": 0,
        "anomalies": [],
        "skipped": why,
        "statement": f"No anomaly check this time: {why}.",
    }


def _lookup(volumes: tuple, key: tuple) -> tuple[int, int, int, int]:
    recent_counts, base_counts, recent_total, base_total = volumes
    single = key[0] if len(key) == 1 else key
    return int(recent_counts.get(single, 0)), int(base_counts.get(single, 0)), recent_total, base_total


def _signals(anomaly: Anomaly, volume: tuple[int, int, int, int], recent_cell, base_cell, windows: Windows):
    tests = []
    recent_rate = wilson(recent_cell["won"].sum(), len(recent_cell))
    base_rate = wilson(base_cell["won"].sum(), len(base_cell))
    p_win = fisher_vs_rest(
        int(recent_cell["won"].sum()),
        len(recent_cell),
        int(recent_cell["won"].sum() + base_cell["won"].sum()),
        len(recent_cell) + len(base_cell),
    )
    anomaly.signals["win_rate"] = {
        "recent": recent_rate.rate,
        "baseline": base_rate.rate,
        "n_recent": recent_rate.n,
        "n_baseline": base_rate.n,
        "p_value": p_win,
        "direction": "down" if recent_rate.rate < base_rate.rate else "up",
    }
    tests.append((anomaly, "win_rate", p_win))
    recent_days, base_days = recent_cell["sales_cycle_days"].astype(float), base_cell["sales_cycle_days"].astype(float)
    p_cycle = mann_whitney(recent_days.to_numpy(), base_days.to_numpy())
    anomaly.signals["cycle_days"] = {
        "recent": float(recent_days.median()),
        "baseline": float(base_days.median()),
        "n_recent": len(recent_days),
        "n_baseline": len(base_days),
        "p_value": p_cycle,
        "direction": "up" if recent_days.median() > base_days.median() else "down",
    }
    tests.append((anomaly, "cycle_days", p_cycle))
    count_recent, count_base, total_recent, total_base = volume
    if total_recent and total_base and count_base:
        share_recent, share_base = count_recent / total_recent, count_base / total_base
        ratio = share_recent / share_base
        p_volume = fisher_vs_rest(count_recent, total_recent, count_recent + count_base, total_recent + total_base)
        per_day = (count_recent / max(windows.recent_days, 1), count_base / max(windows.base_days, 1))
        anomaly.signals["volume"] = {
            "recent": share_recent,
            "baseline": share_base,
            "ratio": ratio,
            "n_recent": count_recent,
            "n_baseline": count_base,
            "p_value": p_volume,
            "per_day_recent": per_day[0],
            "per_day_baseline": per_day[1],
            "direction": "up" if ratio > 1 else "down",
        }
        tests.append((anomaly, "volume", p_volume))
    return tests


def explain(anomaly: Anomaly) -> tuple[str, list[str]]:
    """A hypothesis and next steps chosen by which signals moved significantly, and which way."""
    moved = {name: s["direction"] for name, s in anomaly.signals.items() if s.get("significant")}
    win, cycle, volume = moved.get("win_rate"), moved.get("cycle_days"), moved.get("volume")
    if win == "down" and cycle == "up":
        return (
            "Deals here now drag on and are then lost: a competitor, a new buying committee or weaker qualification.",
            [
                "Read the loss notes of this segment's recent deals",
                "Tighten exit criteria for Demo and Proposal",
                "Bring in an executive sponsor earlier",
            ],
        )
    if win == "down" and volume == "up":
        return (
            "This segment takes a larger share of new deals but converts less: the extra volume is likely "
            "lower-quality.",
            ["Check which lead sources grew", "Review qualification criteria for this segment"],
        )
    if win == "down":
        return (
            "Conversion fell while pace and volume held: look at pricing, competition and product fit.",
            ["Compare recent won and lost deals' discounts and competitors", "Interview two lost buyers"],
        )
    if win == "up":
        return (
            "Conversion rose beyond chance: something here works.",
            ["Find out what changed (people, messaging, offer)", "Try it in a similar segment"],
        )
    if cycle == "up":
        return (
            "Deals are slowing without losing more often: likely longer procurement or approvals.",
            ["Map the buying process of open deals", "Forecast these deals later"],
        )
    if volume == "down":
        return (
            "This segment takes a smaller share of new deals: a top-of-funnel change.",
            ["Check campaign and SDR coverage"],
        )
    if volume == "up":
        return (
            "This segment takes a larger share of new deals while conversion and pace held.",
            ["Check that capacity follows the new volume"],
        )
    return ("This segment's mix changed.", ["Watch next month before acting"])


def _statement(cells: int, tests: int, found: list[Anomaly], settings: AnomalySettings) -> str:
    if not cells:
        return (
            f"No segment has {settings.min_sample}+ closed deals in both the last {settings.recent_days} days "
            f"and the {settings.baseline_days} days before: too little data to look for anomalies."
        )
    if not found:
        return (
            f"No segment departed from its own baseline beyond chance ({cells} segments and pairs, {tests} tests, "
            f"Benjamini–Hochberg false discovery rate {settings.fdr_q:.0%})."
        )
    return f"{len(found)} of {cells} segments and pairs departed from their own baseline beyond chance ({tests} tests)."
