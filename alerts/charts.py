"""Charts for the weekly and monthly reports, rendered to PNG with matplotlib (headless, the Agg backend).

Each chart comes with alt text that states its numbers, built from the same figures it plots, so a screen reader (or
Slack's search) says what the picture shows. Pure: figures in, bytes and text out; nothing is read or written here.

- win rate by month of close, with its 95% interval (the refresh's trend);
- win rate by creation cohort (the month deals were created), with its 95% band and how much of each cohort has
  closed: a young cohort's rate speaks only for its fast deals, and is drawn hollow until half of it has closed;
- open pipeline value by stage and age (the refresh's scores);
- the risk distribution of open deals, with the "at risk" threshold when the rule is active;
- the monthly report's first anomalous segment against its own baseline, each with its interval.
"""

from __future__ import annotations

import functools
import io
import threading
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display: render to memory only

import matplotlib.pyplot as plt  # noqa: E402

from salesintel.engine.stats import wilson  # noqa: E402

AGE_BANDS = ((0, 30, "<30 days"), (30, 90, "30–90 days"), (90, 10**9, "90+ days"))
_DRAWING = threading.Lock()
"""pyplot keeps global state (the current figure): the dashboard's request threads and the scheduler draw one at a
time."""


def _one_at_a_time(draw):
    @functools.wraps(draw)
    def drawn(*args, **kwargs):
        with _DRAWING:
            return draw(*args, **kwargs)

    return drawn


@dataclass(frozen=True)
class Chart:
    name: str
    """A file name without extension, e.g. "win_rate"."""
    title: str
    alt: str
    png: bytes


def report_charts(kind: str, trend, scores, risk_rule: dict, anomalies: list) -> list[Chart]:
    """The charts a report of `kind` carries (weekly: four; monthly: those and the anomaly, when there is one)."""
    charts = [win_rate_chart(trend), cohort_chart(trend), pipeline_chart(scores), risk_chart(scores, risk_rule)]
    if kind == "monthly" and anomalies:
        charts.append(anomaly_chart(anomalies[0]))
    return [chart for chart in charts if chart is not None]


@_one_at_a_time
def win_rate_chart(trend) -> Chart | None:
    months = [t for t in trend if t["win_rate"]["n"]]
    if not months:
        return None
    figure, axes = plt.subplots(figsize=(7, 3.2))
    rates = _rates_with_band(axes, [(t["period"], t["win_rate"]) for t in months], "Win rate by month of close")
    axes.plot(range(len(rates)), rates, "o", color="C0", label="win rate")
    axes.legend(loc="lower left", fontsize=8)
    parts = [
        f"{t['period']} {t['win_rate']['rate']:.0%} ({t['win_rate']['low']:.0%}–{t['win_rate']['high']:.0%},"
        f" n={t['win_rate']['n']})"
        for t in months
    ]
    alt = "Win rate by month of close with its 95% interval: " + "; ".join(parts) + "."
    return Chart("win_rate", "Win rate by month of close", alt, _png(figure))


COHORT_MOSTLY_CLOSED = 0.5
"""A cohort is drawn solid once this share of its deals has closed."""


@_one_at_a_time
def cohort_chart(trend) -> Chart | None:
    """Win rate of each month's new deals (closed ones, as known at the as-of date), with its 95% band."""
    cohorts = [(t["period"], t["cohort"]) for t in trend if t.get("cohort") and t["cohort"]["win_rate"]["n"]]
    if not cohorts:
        return None
    figure, axes = plt.subplots(figsize=(7, 3.2))
    rates = _rates_with_band(
        axes, [(period, c["win_rate"]) for period, c in cohorts], "Win rate by month of creation (cohort)"
    )
    solid = [i for i, (_, c) in enumerate(cohorts) if (c["decided_share"] or 0) >= COHORT_MOSTLY_CLOSED]
    young = [i for i in range(len(cohorts)) if i not in solid]
    axes.plot(solid, [rates[i] for i in solid], "o", color="C0", label="cohort mostly closed")
    if young:
        axes.plot(young, [rates[i] for i in young], "o", mfc="white", color="C0", label="under half closed")
    axes.legend(loc="lower left", fontsize=8)
    parts = [
        f"{period} {c['win_rate']['rate']:.0%} ({c['win_rate']['low']:.0%}–{c['win_rate']['high']:.0%},"
        f" n={c['win_rate']['n']} closed of {c['created']} created, {c['decided_share']:.0%})"
        for period, c in cohorts
    ]
    alt = (
        "Win rate of deals by the month they were created, closed deals only, with the 95% interval: "
        + "; ".join(parts)
        + ". A cohort with under half its deals closed speaks only for its fast deals."
    )
    return Chart("cohorts", "Win rate by creation cohort", alt, _png(figure))


@_one_at_a_time
def calibration_chart(bins) -> Chart | None:
    """Predicted against observed win rate on the holdout, per bin: a calibrated model sits on the diagonal."""
    bins = [b for b in bins or () if b.get("n")]
    if not bins:
        return None
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    axes.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], "o-", label="holdout")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("predicted P(win)")
    axes.set_ylabel("observed win rate")
    axes.set_title("Calibration on the time-ordered holdout", fontsize=10)
    axes.legend(fontsize=8)
    parts = [f"predicted {b['predicted']:.0%} → observed {b['observed']:.0%} (n={b['n']})" for b in bins]
    alt = "Calibration on the holdout, by bin: " + "; ".join(parts) + "."
    return Chart("calibration", "Calibration on the holdout", alt, _png(figure))


@_one_at_a_time
def pipeline_chart(scores) -> Chart | None:
    live = [s for s in scores if not s.stale]
    if not live:
        return None
    stages = sorted({s.deal_stage or "stage not known" for s in live})
    values = {
        label: [
            sum(s.deal_amount for s in live if (s.deal_stage or "stage not known") == stage and lo <= s.age_days < hi)
            for stage in stages
        ]
        for lo, hi, label in AGE_BANDS
    }
    figure, axes = plt.subplots(figsize=(7, 3.2))
    bottom = [0.0] * len(stages)
    for label, amounts in values.items():
        axes.bar(stages, amounts, bottom=bottom, label=label)
        bottom = [b + a for b, a in zip(bottom, amounts)]
    axes.set_title("Open pipeline value by stage and age")
    axes.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"${v / 1000:,.0f}k"))
    axes.legend(fontsize=8)
    parts = []
    for i, stage in enumerate(stages):
        bands = ", ".join(f"{label} ${values[label][i] / 1000:,.0f}k" for _, _, label in AGE_BANDS if values[label][i])
        parts.append(f"{stage} ${bottom[i] / 1000:,.0f}k ({bands})")
    alt = f"Open pipeline value by stage and age, {len(live)} live deals: " + "; ".join(parts) + "."
    return Chart("pipeline", "Open pipeline by stage and age", alt, _png(figure))


@_one_at_a_time
def risk_chart(scores, risk_rule: dict) -> Chart | None:
    risks = [s.risk for s in scores if not s.stale]
    if not risks:
        return None
    edges = [i / 10 for i in range(11)]
    counts = [sum(1 for r in risks if lo <= r < hi or (hi == 1.0 and r == 1.0)) for lo, hi in zip(edges, edges[1:])]
    figure, axes = plt.subplots(figsize=(7, 3.2))
    axes.bar([f"{lo:.0%}–{hi:.0%}" for lo, hi in zip(edges, edges[1:])], counts)
    axes.tick_params(axis="x", labelsize=7, rotation=45)
    threshold = risk_rule.get("threshold") if risk_rule.get("active") else None
    if threshold is not None:
        axes.axvline(threshold * 10 - 0.5, color="red", linestyle="--", label=f"at risk above {threshold:.0%}")
        axes.legend(fontsize=8)
    axes.set_title("Risk of open deals")
    parts = [f"{lo:.0%}–{hi:.0%}: {n}" for lo, hi, n in zip(edges, edges[1:], counts) if n]
    rule = f"; at risk above {threshold:.0%}" if threshold is not None else "; no deal is called at risk"
    alt = f"Risk of {len(risks)} open live deals, by band: " + ", ".join(parts) + rule + "."
    return Chart("risk", "Risk of open deals", alt, _png(figure))


@_one_at_a_time
def anomaly_chart(anomaly: dict) -> Chart | None:
    """The anomalous segment's win rate, recent against its own baseline, each with its 95% (Wilson) interval."""
    signal = (anomaly.get("signals") or {}).get("win_rate")
    if not signal or not signal.get("n_recent") or not signal.get("n_baseline"):
        return None
    name = anomaly.get("label") or "segment"
    windows = [
        wilson(round(signal[rate] * signal[n]), signal[n])
        for rate, n in (("baseline", "n_baseline"), ("recent", "n_recent"))
    ]
    rates = [w.rate for w in windows]
    errors = [[w.rate - w.low for w in windows], [w.high - w.rate for w in windows]]
    figure, axes = plt.subplots(figsize=(5, 3.2))
    axes.bar(["baseline", "recent"], rates, yerr=errors, capsize=6)
    axes.set_ylim(0, 1)
    axes.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes.set_title(f"{name}: recent against its baseline", fontsize=10)
    base, recent = windows
    alt = (
        f"{name}: win rate {recent.rate:.0%} recently ({recent.low:.0%}–{recent.high:.0%}, n={recent.n})"
        f" against {base.rate:.0%} in its baseline ({base.low:.0%}–{base.high:.0%}, n={base.n})."
    )
    return Chart("anomaly", f"{name} against its baseline", alt, _png(figure))


def _rates_with_band(axes, points: list[tuple[str, dict]], title: str) -> list[float]:
    """A rate per period (a line) with its 95% interval (a band), on a 0–100% axis; returns the rates."""
    rates = [rate["rate"] for _, rate in points]
    positions = range(len(points))
    axes.fill_between(
        positions, [r["low"] for _, r in points], [r["high"] for _, r in points], alpha=0.2, label="95% interval"
    )
    axes.plot(positions, rates, color="C0")
    axes.set_xticks(positions, [period for period, _ in points], rotation=45, ha="right", fontsize=8)
    axes.set_ylim(0, 1)
    axes.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes.set_title(title)
    return rates


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()
