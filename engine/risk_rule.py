"""One meaning of "at risk", for every surface: real-time alerts, reports, /deal-risk, /pipeline and App Home.

A deal is at risk when the rule is active, the deal is live (not stale — likely dead) and its risk is above the
threshold. The threshold is configured, or (`auto`) chosen on the model's time-ordered holdout so that the rule
flags `target_share` of open deals. Either way the rule is measured on that holdout — share flagged, precision
(loss rate of the flagged), recall (share of losses flagged) and lift over the base loss rate, each with a 95%
interval — and it speaks only when the scores have skill and the flagged deals really lose more often: lift at
least `min_lift` with its interval above 1. Otherwise it stays silent and says why: flagging 46% of a pipeline
with a lift of 1.06 is noise, not a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from salesintel.engine.records import ScoredDeal
from salesintel.engine.settings import RiskRuleSettings
from salesintel.engine.stats import wilson

BOOTSTRAP = 200
TUNED_RULE = "high_value_at_risk"
"""The alert rule whose feedback tunes this threshold (the real-time rule: `alerts.rules.HIGH_VALUE_AT_RISK`)."""


def rule_outcome(risk: np.ndarray, lost: np.ndarray, deals: np.ndarray, threshold: float, seed: int = 0) -> dict:
    """Share flagged, precision, recall and lift (with 95% intervals) of "risk > threshold" on known outcomes.

    Intervals of the lift resample deals (a deal may have several rows, e.g. landmarks), not rows.
    """
    flagged = risk > threshold
    n, lost_total, flagged_n = len(risk), int(lost.sum()), int(flagged.sum())
    base = lost_total / n if n else None
    precision = wilson(int((lost & flagged).sum()), flagged_n)
    recall = wilson(int((lost & flagged).sum()), lost_total)
    share = wilson(flagged_n, n)
    lift = _lift_interval(flagged, lost, deals, seed) if flagged_n and base else (None, None, None)
    return {
        "threshold": threshold,
        "n": n,
        "flagged": flagged_n,
        "share_flagged": share.to_dict(),
        "base_loss_rate": base,
        "precision": precision.to_dict(),
        "recall": recall.to_dict(),
        "lift": {"value": lift[0], "low": lift[1], "high": lift[2]},
    }


def _lift_interval(flagged: np.ndarray, lost: np.ndarray, deals: np.ndarray, seed: int) -> tuple:
    value = lost[flagged].mean() / lost.mean()
    _, index = np.unique(deals, return_inverse=True)
    groups = index.max() + 1
    flagged_lost = np.bincount(index, weights=(flagged & lost).astype(float), minlength=groups)
    flagged_all = np.bincount(index, weights=flagged.astype(float), minlength=groups)
    lost_all = np.bincount(index, weights=lost.astype(float), minlength=groups)
    rows = np.bincount(index, minlength=groups).astype(float)
    rng = np.random.default_rng(seed)
    lifts = []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, groups, groups)
        f, fl, la, r = flagged_all[pick].sum(), flagged_lost[pick].sum(), lost_all[pick].sum(), rows[pick].sum()
        if f and la:
            lifts.append((fl / f) / (la / r))
    if not lifts:
        return float(value), None, None
    low, high = np.percentile(lifts, [2.5, 97.5])
    return float(value), float(low), float(high)


@dataclass(frozen=True)
class Tuning:
    """The latest feedback-tuned change of the threshold (`alerts.tuning`): added to the chosen threshold, kept
    within the bounds it was decided under."""

    offset: float
    low: float
    high: float
    change_id: int
    decided_at: str


def choose_risk_rule(
    has_skill: bool,
    holdout_risk: np.ndarray | None,
    holdout_lost: np.ndarray | None,
    holdout_deals: np.ndarray | None,
    settings: RiskRuleSettings,
    seed: int = 0,
    no_skill_reason: str = "the scores have no skill",
    tuning: Tuning | None = None,
) -> dict:
    """The rule for one refresh: its threshold, whether it speaks, why (or why not), and its holdout figures.

    With `tuning`, the threshold is the chosen one plus the tuned offset (within its bounds), and it is that
    threshold the holdout measures and the lift test judges: feedback can move the threshold, never past what the
    holdout supports. The holdout is also measured a step either side (`neighbours`), which tuning reads."""
    source = "configured" if settings.min_risk != "auto" else "auto"
    configured = None if settings.min_risk == "auto" else float(settings.min_risk)
    rule = {
        "threshold": configured,
        "source": source,
        "target_share": settings.target_share,
        "min_lift": settings.min_lift,
        "holdout": None,
    }
    if not has_skill or holdout_risk is None or not len(holdout_risk):
        return {
            **rule,
            "active": False,
            "reason": f"No deal is called at risk: {no_skill_reason}, so a high risk score would not mean a "
            f"deal is likelier to be lost than any other.",
        }
    chosen = configured if configured is not None else float(np.quantile(holdout_risk, 1 - settings.target_share))
    threshold = chosen
    outcome = rule_outcome(holdout_risk, holdout_lost, holdout_deals, chosen, seed)
    needed = required_lift(outcome["base_loss_rate"], settings.min_lift)
    if tuning is not None and tuning.offset:
        # Within the bounds, or no farther out than the rule's own threshold: tuning may step toward the bounds
        tuned = min(max(chosen + tuning.offset, min(tuning.low, chosen)), max(tuning.high, chosen))
        rule["tuned"] = {
            "offset": tuning.offset,
            "chosen_threshold": chosen,
            "bounds": [tuning.low, tuning.high],
            "change": tuning.change_id,
            "decided_at": tuning.decided_at,
        }
        tuned_outcome = rule_outcome(holdout_risk, holdout_lost, holdout_deals, tuned, seed)
        if _speaks(tuned_outcome, needed) or not _speaks(outcome, needed):
            threshold, outcome = tuned, tuned_outcome
            source = f"{source}, tuned by feedback"
            rule["source"] = source
        else:  # a new model's holdout no longer supports the tuned threshold: the rule's own, rather than silence
            rule["tuned"]["set_aside"] = (
                f"the feedback-tuned threshold {tuned:.0%} no longer passes the lift test on this model's holdout"
            )
    rule.update(threshold=threshold, holdout=outcome)
    rule["neighbours"] = {
        side: _with_verdict(rule_outcome(holdout_risk, holdout_lost, holdout_deals, threshold + step, seed), needed)
        for side, step in (("lower", -settings.neighbour_step), ("higher", settings.neighbour_step))
        if 0 < threshold + step < 1
    }
    lift = outcome["lift"]
    how = (
        f"on the holdout (the deals that closed last, scored at each age they were open), risk > {threshold:.0%} "
        f"flagged {outcome['share_flagged']['rate']:.0%} of them"
        if outcome["flagged"]
        else f"on the holdout, no deal's risk exceeded {threshold:.0%}"
    )
    if not outcome["flagged"] or lift["low"] is None:
        return {**rule, "active": False, "reason": f"No deal is called at risk: {how}."}
    figures = f"lift {lift['value']:.2f}, 95% CI {lift['low']:.2f}–{lift['high']:.2f}"
    rule["required_lift"] = needed
    if not _speaks(outcome, needed):
        return {
            **rule,
            "active": False,
            "reason": f"No deal is called at risk: {how}, and those deals were lost little more often than "
            f"average ({figures}; needed {needed:.2f} with the interval above 1).",
        }
    aside = (rule.get("tuned") or {}).get("set_aside")
    return {
        **rule,
        "active": True,
        "reason": f"At risk means risk > {threshold:.0%} ({source}): {how}, which were lost more often than "
        f"average ({figures}) and held {outcome['recall']['rate']:.0%} of the losses."
        + (f" Not tuned: {aside}." if aside else ""),
    }


def _speaks(outcome: dict, needed: float) -> bool:
    """The rule's test on the holdout: something flagged, and those deals lost at least `needed` times as often as
    average, with the lift's interval above 1."""
    lift = outcome["lift"]
    return bool(outcome["flagged"]) and lift["low"] is not None and lift["value"] >= needed and lift["low"] > 1


def _with_verdict(outcome: dict, needed: float) -> dict:
    return {**outcome, "speaks": _speaks(outcome, needed)}


def required_lift(base_loss_rate: float, min_lift: float) -> float:
    """`min_lift`, or half the way to the largest lift possible when losses are so common that `min_lift` cannot
    be reached (with a 74% base loss rate no rule can do better than 1/0.74 = 1.35)."""
    ceiling = 1 / base_loss_rate if base_loss_rate else float("inf")
    return min(min_lift, (1 + ceiling) / 2)


def is_at_risk(score: ScoredDeal, rule: dict | None) -> bool:
    """The one test of "at risk" every surface uses, for one score (`at_risk` is the same test for many)."""
    if not rule or not rule.get("active"):
        return False
    return not score.stale and score.risk > rule["threshold"]


def at_risk(risk: np.ndarray, stale: np.ndarray, rule: dict | None) -> np.ndarray:
    """`is_at_risk` for many scores at once, as arrays: an active rule, risk above its threshold, and not stale."""
    if not rule or not rule.get("active"):
        return np.zeros(len(risk), dtype=bool)
    return ~np.asarray(stale, dtype=bool) & (np.asarray(risk, dtype=float) > rule["threshold"])


def in_realtime_population(stale: np.ndarray, amount: np.ndarray, min_amount: float | None) -> np.ndarray:
    """The deals the real-time rule looks at: live (not stale) and, unless `min_amount` is None, worth more than it.
    A stale deal is reported apart (likely dead), never alerted one by one."""
    live = ~np.asarray(stale, dtype=bool)
    if min_amount is None:
        return live
    return live & (np.asarray(amount, dtype=float) > min_amount)


def high_value_at_risk(
    risk: np.ndarray, stale: np.ndarray, amount: np.ndarray, rule: dict | None, min_amount: float | None
) -> np.ndarray:
    """The real-time alert rule, as arrays: in its population (`in_realtime_population`) and at risk by the refresh's
    one risk rule (`at_risk`). `alerts.rules` alerts on it; `engine.backtest` measures it."""
    return in_realtime_population(stale, amount, min_amount) & at_risk(risk, stale, rule)


def as_measured(rule: dict) -> dict:
    """The rule as a backtest measures it: active even when it is silent (its threshold still set), so the reader
    sees what it would have flagged and why it stays silent."""
    return {**rule, "active": rule.get("threshold") is not None}
