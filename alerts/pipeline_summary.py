"""Decide what the pipeline summary shows from a refresh's metrics; `pipeline_summary.txt.j2` says it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from salesintel.alerts.render import render_text
from salesintel.engine.records import MetricsSummary
from salesintel.engine.segments import SegmentResult

COMPACT_ROWS = 6
"""Segments per dimension shown in the compact summary: the lowest and highest win rates, significant ones always."""


def segment_sections(segments: Sequence[SegmentResult], show_all: bool) -> list[dict]:
    """Segments grouped by dimension, sorted by win rate; long dimensions trimmed to their extremes."""
    sections = []
    titles = {s.dimension: s.label or s.dimension for s in segments}
    for dimension, title in titles.items():
        rows = sorted(
            (s for s in segments if s.dimension == dimension),
            key=lambda s: (s.rate.rate is None, s.rate.rate or 0),
        )
        if not rows:
            continue
        hidden = 0
        if not show_all and len(rows) > COMPACT_ROWS:
            half = COMPACT_ROWS // 2
            keep = {id(r) for r in rows[:half] + rows[-half:]} | {id(r) for r in rows if r.status == "significant"}
            hidden = len(rows) - len(keep)
            rows = [r for r in rows if id(r) in keep]
        sections.append({"title": title, "rows": rows, "hidden": hidden})
    return sections


def velocity_statement(velocity: Mapping, alpha: float) -> str:
    p = velocity["p_value"]
    if p is None:
        return "not enough won and lost deals to compare"
    verdict = "a real difference" if p <= alpha else "no real difference"
    return f"Mann–Whitney p={p:.3f}: {verdict}" if p >= 0.001 else f"Mann–Whitney p<0.001: {verdict}"


def render_pipeline_summary(metrics: MetricsSummary, show_all: bool = False) -> str:
    return render_text(
        "pipeline_summary.txt.j2",
        m=metrics,
        sections=segment_sections(metrics.segments, show_all),
        velocity_verdict=velocity_statement(metrics.velocity, metrics.settings["fdr_q"]),
        drivers=top_drivers(metrics.model),
    )


def top_drivers(model: Mapping, limit: int = 5) -> list:
    """The significant drivers, or when there are none the few closest to it, so a reader sees why not."""
    drivers = model.get("drivers") or []
    significant = [d for d in drivers if d["status"] == "significant"]
    return significant[:limit] if significant else drivers[: min(limit, 3)]
