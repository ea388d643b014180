"""Segment anomalies for the monthly deep-dive: who departed from their own past beyond chance?

For each segment (and each pair, such as industry × region), the recent window is compared with the segment's own
baseline window just before it on three signals: win rate (Fisher's exact test), days to close (Mann–Whitney) and
volume of new deals relative to all new deals (Fisher's exact test on counts). Every test made goes into one
Benjamini–Hochberg family; a cell needs `min_sample` closed deals in both windows to be tested at all.
The hypothesis and next steps follow from which signals moved, and in which direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from itertools import combinations

import pandas as pd

from engine.settings import AnomalySettings
from engine.stats import benjamini_hochberg, fisher_vs_rest, mann_whitney, wilson

ANOMALY_FIELDS = ("industry", "region", "product_type", "lead_source")


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
        return {"cell": self.cell, "label": self.label, "signals": self.signals, "hypothesis": self.hypothesis,
                "next_steps": self.next_steps}  # fmt: skip


def find_anomalies(history: pd.DataFrame, created: pd.DataFrame, as_of: date, settings: AnomalySettings) -> dict:
    """`history`: deals closed by `as_of` (with `won`); `created`: every deal created by `as_of` (for volume)."""
    end = pd.Timestamp(as_of)
    recent_start = end - pd.Timedelta(days=settings.recent_days)
    base_start = recent_start - pd.Timedelta(days=settings.baseline_days)
    recent = history[history["closed_date"] > recent_start]
    base = history[(history["closed_date"] > base_start) & (history["closed_date"] <= recent_start)]
    created_recent = created[created["created_date"] > recent_start]
    created_base = created[(created["created_date"] > base_start) & (created["created_date"] <= recent_start)]
    cells = [(f,) for f in ANOMALY_FIELDS] + list(combinations(ANOMALY_FIELDS, 2))
    tests, candidates = [], []
    for fields in cells:
        recent_groups = dict(list(recent.groupby(list(fields))))
        volumes = (created_recent.groupby(list(fields)).size().to_dict(), created_base.groupby(list(fields)).size().to_dict(),
                   len(created_recent), len(created_base))  # fmt: skip
        for key, base_cell in base.groupby(list(fields)):
            key = key if isinstance(key, tuple) else (key,)
            recent_cell = recent_groups.get(key)
            if recent_cell is None or min(len(recent_cell), len(base_cell)) < settings.min_sample:
                continue
            anomaly = Anomaly(dict(zip(fields, map(str, key))))
            candidates.append(anomaly)
            tests += _signals(anomaly, _lookup(volumes, key), recent_cell, base_cell, settings)
    q_values = benjamini_hochberg([p for _, _, p in tests])
    for (anomaly, signal, _), q_value in zip(tests, q_values):
        anomaly.signals[signal]["q_value"] = q_value
        anomaly.signals[signal]["significant"] = q_value <= settings.fdr_q
    found = [a for a in candidates if any(s["significant"] for s in a.signals.values())]
    for anomaly in found:
        anomaly.hypothesis, anomaly.next_steps = explain(anomaly)
    found.sort(key=lambda a: min(s["q_value"] for s in a.signals.values()))
    return {"recent_window": [recent_start.date().isoformat(), as_of.isoformat()],
            "baseline_window": [base_start.date().isoformat(), recent_start.date().isoformat()],
            "cells_tested": len(candidates), "tests": len(tests), "anomalies": [a.to_dict() for a in found],
            "statement": _statement(len(candidates), len(tests), found, settings)}  # fmt: skip


def _lookup(volumes: tuple, key: tuple) -> tuple[int, int, int, int]:
    recent_counts, base_counts, recent_total, base_total = volumes
    single = key[0] if len(key) == 1 else key
    return int(recent_counts.get(single, 0)), int(base_counts.get(single, 0)), recent_total, base_total


def _signals(anomaly: Anomaly, volume: tuple[int, int, int, int], recent_cell, base_cell, settings):
    tests = []
    recent_rate = wilson(recent_cell["won"].sum(), len(recent_cell))
    base_rate = wilson(base_cell["won"].sum(), len(base_cell))
    p_win = fisher_vs_rest(int(recent_cell["won"].sum()), len(recent_cell),
                           int(recent_cell["won"].sum() + base_cell["won"].sum()), len(recent_cell) + len(base_cell))  # fmt: skip
    anomaly.signals["win_rate"] = {"recent": recent_rate.rate, "baseline": base_rate.rate, "n_recent": recent_rate.n,
                                   "n_baseline": base_rate.n, "p_value": p_win,
                                   "direction": "down" if recent_rate.rate < base_rate.rate else "up"}  # fmt: skip
    tests.append((anomaly, "win_rate", p_win))
    recent_days, base_days = recent_cell["sales_cycle_days"].astype(float), base_cell["sales_cycle_days"].astype(float)
    p_cycle = mann_whitney(recent_days.to_numpy(), base_days.to_numpy())
    anomaly.signals["cycle_days"] = {"recent": float(recent_days.median()), "baseline": float(base_days.median()),
                                     "n_recent": len(recent_days), "n_baseline": len(base_days), "p_value": p_cycle,
                                     "direction": "up" if recent_days.median() > base_days.median() else "down"}  # fmt: skip
    tests.append((anomaly, "cycle_days", p_cycle))
    count_recent, count_base, total_recent, total_base = volume
    if total_recent and total_base and count_base:
        share_recent, share_base = count_recent / total_recent, count_base / total_base
        ratio = (count_recent / settings.recent_days) / (count_base / settings.baseline_days)
        p_volume = fisher_vs_rest(count_recent, total_recent, count_recent + count_base, total_recent + total_base)
        anomaly.signals["volume"] = {"recent": share_recent, "baseline": share_base, "ratio": ratio,
                                     "n_recent": count_recent, "n_baseline": count_base, "p_value": p_volume,
                                     "direction": "up" if share_recent > share_base else "down"}  # fmt: skip
        tests.append((anomaly, "volume", p_volume))
    return tests


def explain(anomaly: Anomaly) -> tuple[str, list[str]]:
    """A hypothesis and next steps chosen by which signals moved significantly, and which way."""
    moved = {name: s["direction"] for name, s in anomaly.signals.items() if s.get("significant")}
    win, cycle, volume = moved.get("win_rate"), moved.get("cycle_days"), moved.get("volume")
    if win == "down" and cycle == "up":
        return ("Deals here now drag on and are then lost: a competitor, a new buying committee or weaker "
                "qualification.", ["Read the loss notes of this segment's recent deals",
                                   "Tighten exit criteria for Demo and Proposal", "Bring in an executive sponsor earlier"])  # fmt: skip
    if win == "down" and volume == "up":
        return ("More deals arrive but fewer convert: the new volume is likely lower-quality.",
                ["Check which lead sources grew", "Review qualification criteria for this segment"])
    if win == "down":
        return ("Conversion fell while pace and volume held: look at pricing, competition and product fit.",
                ["Compare recent won and lost deals' discounts and competitors", "Interview two lost buyers"])
    if win == "up":
        return ("Conversion rose beyond chance: something here works.",
                ["Find out what changed (people, messaging, offer)", "Try it in a similar segment"])
    if cycle == "up":
        return ("Deals are slowing without losing more often: likely longer procurement or approvals.",
                ["Map the buying process of open deals", "Forecast these deals later"])
    if volume == "down":
        return ("Fewer new deals enter this segment: a top-of-funnel change.", ["Check campaign and SDR coverage"])
    return ("This segment's mix changed.", ["Watch next month before acting"])


def _statement(cells: int, tests: int, found: list[Anomaly], settings: AnomalySettings) -> str:
    if not cells:
        return (f"No segment has {settings.min_sample}+ closed deals in both the last {settings.recent_days} days "
                f"and the {settings.baseline_days} days before: too little data to look for anomalies.")  # fmt: skip
    if not found:
        return (f"No segment departed from its own baseline beyond chance ({cells} segments and pairs, {tests} tests, "
                f"Benjamini–Hochberg false discovery rate {settings.fdr_q:.0%}).")  # fmt: skip
    return f"{len(found)} of {cells} segments and pairs departed from their own baseline beyond chance ({tests} tests)."
