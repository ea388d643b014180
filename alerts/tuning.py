"""Feedback that tunes the product: the brief's "adaptive thresholds, user feedback", within bounds, never silently.

What recipients said of the real-time alerts ("Useful" / "Not useful"), the control group's outcome and the
holdout (the backtest the risk rule is chosen on) decide together whether the one "at risk" threshold moves a step:

- **raise** (fewer alerts) when most answers say "Not useful" beyond chance (the useful share's 95% interval is
  below one half), unless the control group shows alerts help (alerted deals won significantly more often than
  held-back ones), and only if the holdout still supports the higher threshold (its lift test passes there);
- **lower** (more alerts) when most answers say "Useful" beyond chance (the interval is above one half), unless
  the control group, with enough closed deals, shows no significant benefit, and only if the holdout supports the lower
  threshold;
- otherwise **keep**; always keep on fewer than `min_answers` answers, while the rule is silent, or when the
  step would leave the bounds (`min_threshold`–`max_threshold`, and at most `max_offset` from the threshold the
  rule chooses itself).

A change is a row in `threshold_changes` (with its reason and evidence), and is announced in the same transaction
on the ops channel and to the configured owner; the refresh applies it (`engine.risk_rule.Tuning`), so every
surface's "at risk" moves together and says "(auto, tuned by feedback)". Only answers given since the last change
count toward the next one. `salesintel alerts thresholds` lists the changes; `--reset` returns to the rule's own
threshold, recorded and announced the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from salesintel.alerts.formatting import rate
from salesintel.alerts.ledger import AlertLedger
from salesintel.alerts.outbox import Outbox
from salesintel.alerts.render import Message, escape_mrkdwn
from salesintel.alerts.routing import report_target
from salesintel.alerts.rules import HIGH_VALUE_AT_RISK
from salesintel.alerts.runs import AlertEnvironment, control_group, latest_refresh
from salesintel.alerts.settings import TuningSettings
from salesintel.engine.stats import wilson

log = logging.getLogger("salesintel.tuning")
RAISE, LOWER, KEEP = "raise", "lower", "keep"
SIGNIFICANT_P = 0.05


@dataclass(frozen=True)
class Decision:
    action: str
    offset: float
    """The offset after this decision (the same as before when kept)."""
    old_threshold: float | None
    new_threshold: float | None
    reason: str
    evidence: dict


def decide(rule: dict, offset: float, useful: int, not_useful: int, control: dict | None, settings: TuningSettings):
    """What feedback, the control group and the holdout say about the threshold now in force (`rule`, a refresh's
    risk rule, whose threshold already includes the tuned offset). The new offset is measured from the rule's own
    threshold (`rule["tuned"]["chosen_threshold"]`), so the next refresh applies exactly the threshold verified
    and announced here. Pure."""
    threshold = rule.get("threshold")
    answers = useful + not_useful
    share = wilson(useful, answers)
    evidence = {
        "useful": useful,
        "not_useful": not_useful,
        "useful_share": share.to_dict(),
        "control": dict(control) if control else None,
        "threshold": threshold,
        "offset": offset,
    }

    def keep(why: str) -> Decision:
        return Decision(KEEP, offset, threshold, threshold, why, evidence)

    if not rule.get("active") or threshold is None:
        return keep("the rule is silent (the holdout does not support it): nothing to tune")
    if answers < settings.min_answers:
        return keep(f"{answers} answers since the last change; {settings.min_answers} needed")
    helps, no_help = _control_verdict(control)
    if share.high < 0.5:
        action, side, step = RAISE, "higher", settings.step
        if helps:
            return keep(f"most answers say Not useful, but the control group shows alerts help ({helps})")
    elif share.low > 0.5:
        action, side, step = LOWER, "lower", -settings.step
        if no_help:
            return keep(f"most answers say Useful, but the control group shows no significant benefit ({no_help})")
    else:
        return keep(f"the useful share {rate(share)} is not clearly above or below one half")
    own = (rule.get("tuned") or {}).get("chosen_threshold", threshold)
    new_threshold = round(threshold + step, 6)
    new_offset = round(new_threshold - own, 6)
    if _leaves(new_threshold, threshold, settings.min_threshold, settings.max_threshold) or (
        abs(new_offset) > settings.max_offset + 1e-9 and abs(new_offset) > abs(threshold - own)
    ):
        return keep(
            f"{'raising' if action == RAISE else 'lowering'} it to {new_threshold:.0%} would leave its bounds "
            f"({settings.min_threshold:.0%}–{settings.max_threshold:.0%}, at most ±{settings.max_offset:.0%} from "
            "the rule's own threshold)"
        )
    if "neighbours" not in rule:
        return keep("this refresh did not measure the holdout either side of the threshold (an older release's)")
    neighbour = rule["neighbours"].get(side)
    evidence["holdout_at_new_threshold"] = neighbour
    if not neighbour or not neighbour.get("speaks"):
        return keep(f"on the holdout, risk > {new_threshold:.0%} would not pass the rule's lift test")
    lift = neighbour["lift"]
    verb = "raised" if action == RAISE else "lowered"
    said = "Not useful" if action == RAISE else "Useful"
    count = not_useful if action == RAISE else useful
    reason = (
        f"{count} of {answers} answers said {said} (useful {rate(share)}); on the holdout, risk > "
        f"{new_threshold:.0%} flags {neighbour['share_flagged']['rate']:.0%} of deals with lift {lift['value']:.2f} "
        f"(95% CI {lift['low']:.2f}–{lift['high']:.2f}); control group: {_control_words(control)}"
    )
    return Decision(action, new_offset, threshold, new_threshold, f"{verb}: {reason}", evidence)


def _leaves(new: float, current: float, low: float, high: float) -> bool:
    """True when `new` is outside [low, high] and no nearer to them than `current` (a step back toward the bounds
    is always allowed)."""
    tolerance = 1e-9
    outside = new < low - tolerance or new > high + tolerance
    distance = max(low - new, new - high, 0.0)
    return outside and distance >= max(low - current, current - high, 0.0) - tolerance


def _control_verdict(control: dict | None) -> tuple[str | None, str | None]:
    """(why alerts help, why they show no benefit): at most one set, and only with enough closed deals."""
    if not control or not control.get("enough") or control.get("p_value") is None:
        return None, None
    words = _control_words(control)
    better = control["alerted"]["rate"] > control["control"]["rate"]
    return (words, None) if better and control["p_value"] < SIGNIFICANT_P else (None, words)


def _control_words(control: dict | None) -> str:
    if not control:
        return "no closed deals yet"
    alerted, held = control["alerted"], control["control"]
    figures = f"alerted deals won {_won(alerted)} vs {_won(held)} held back"
    if not control.get("enough"):
        return f"{figures}, too few to compare (needs {control['min_sample']} each)"
    return f"{figures}, p={control['p_value']:.3f}"


def _won(rate: dict) -> str:
    return f"{rate['rate']:.0%} (n={rate['n']})" if rate.get("rate") is not None else "none closed yet (n=0)"


def tuning_run(env: AlertEnvironment, now: datetime) -> str:
    """Decide, and when the threshold moves, record the change and queue its announcements in one transaction."""
    settings = env.settings.realtime.tuning
    refresh = latest_refresh(env.store)
    rule = refresh.metrics.risk_rule
    changes = env.store.alerts.threshold_changes(HIGH_VALUE_AT_RISK)
    offset = changes[-1].threshold_offset if changes else 0.0
    today = now.astimezone(env.timezone).date()
    if refresh.as_of < today:
        return (
            f"kept: the latest refresh is of {refresh.as_of} (pinned or replayed); feedback tunes only the threshold "
            "of a refresh as of today"
        )
    applied = (rule.get("tuned") or {}).get("change")
    expected = changes[-1].id if changes and changes[-1].threshold_offset else None
    if changes and applied != expected:
        return f"kept: change #{changes[-1].id} waits for the next refresh to apply it"
    since = now - timedelta(days=settings.window_days)
    if changes and changes[-1].decided_at > since:
        since = changes[-1].decided_at
    useful, not_useful = AlertLedger(env.store).feedback_summary(since)["rules"].get(HIGH_VALUE_AT_RISK, (0, 0))
    control = control_group(env.store, refresh)
    decision = decide(rule, offset, useful, not_useful, control, settings)
    if decision.action == KEEP:
        log.info("threshold kept", extra={"event": "threshold_kept", "why": decision.reason})
        return f"kept at {threshold_words(decision.old_threshold)}: {decision.reason}"
    record_change(
        env,
        now,
        decision.offset,
        decision.old_threshold,
        decision.new_threshold,
        decision.reason,
        {
            **decision.evidence,
            "as_of": refresh.as_of.isoformat(),
            "since": since.isoformat(),
        },
    )
    return f"{decision.action} to {threshold_words(decision.new_threshold)}: {decision.reason}"


def record_change(
    env: AlertEnvironment,
    now: datetime,
    offset: float,
    old: float | None,
    new: float | None,
    reason: str,
    evidence: dict,
) -> int:
    """One threshold change and its announcements (ops channel, and the owner when configured), together."""
    settings = env.settings.realtime.tuning
    bounds = (settings.min_threshold, settings.max_threshold)
    with env.store.transaction():
        change_id = env.store.alerts.record_threshold_change(
            HIGH_VALUE_AT_RISK, now, offset, old, new, bounds, reason, evidence
        )
        message = announcement(change_id, old, new, reason)
        outbox = Outbox(env.store)
        targets = [report_target("ops", env.settings.routing)]
        if settings.owner:
            targets.append(f"user:{settings.owner}")
        for target in targets:
            outbox.enqueue(f"tuning:{change_id}:{target}", "ops", target, message, now)
    log.warning(
        "threshold changed",
        extra={"event": "threshold_changed", "change": change_id, "old": old, "new": new, "reason": reason},
    )
    return change_id


def announcement(change_id: int, old: float | None, new: float | None, reason: str) -> Message:
    text = (
        f":gear: The real-time alert threshold ({HIGH_VALUE_AT_RISK}) moves from {threshold_words(old)} to "
        f"{threshold_words(new)} at the next refresh (change #{change_id}). "
        f"{escape_mrkdwn(reason[0].upper() + reason[1:])}. Every "
        'surface\'s "at risk" follows it. History: `salesintel alerts thresholds`; undo: '
        "`salesintel alerts thresholds --reset`."
    )
    return Message(text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


def threshold_words(value: float | None) -> str:
    """A threshold as the announcements and `salesintel alerts thresholds` print it."""
    return "none" if value is None else f"{value:.0%}"
