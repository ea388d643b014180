"""What is said about one deal, built once: the `/deal-risk` answer and `salesintel risk` (`deal_content`), and the
facts the real-time alert shares with them (`deal_facts`). Slack, the terminal and (later) email only render it.

A `/deal-risk` request comes down through the layers once (`deal_risk_answer`): find the deal (engine), check the
viewer may see it and find the alert they may act on (here), build the content (here); the bot renders it.
"""

from __future__ import annotations

from dataclasses import dataclass

from salesintel.alerts.actions import recommended_actions
from salesintel.alerts.answer_memo import Memo, no_memo
from salesintel.alerts.ledger import AlertLedger
from salesintel.alerts.settings import RoutingSettings
from salesintel.alerts.visibility import Viewer, can_act_on_alert, can_see_deal, may_see_any_deal
from salesintel.engine.lookup import DealAnswer, DealLookupError, look_up
from salesintel.engine.records import MetricsSummary, ScoredDeal
from salesintel.engine.risk_rule import is_at_risk
from salesintel.engine.store import Alert, Refresh, Store


class NotVisible(Exception):
    """The viewer may not see this deal, or there is no such deal: the message is the same either way (an id
    that exists must not read differently from one that does not, or ids could be enumerated)."""


UNKNOWN_VIEWER = (
    "I don't know who you are in the CRM, so I can't show you any deal: ask an admin to add your Slack id under "
    "`alerts.routing.users`."
)


def not_found(typed: str) -> str:
    """What a viewer is told about a deal they may not see, and about one that does not exist."""
    return (
        f"I can't find a deal {typed} among the deals you can see. Check the id, or ask the deal's owner or their "
        "manager."
    )


@dataclass(frozen=True)
class DealRiskAnswer:
    content: dict
    """What is said (see `deal_content`)."""
    alert: Alert | None
    """The deal's open alert, when the viewer may act on it (its buttons are shown)."""


def deal_facts(score: ScoredDeal, metrics: MetricsSummary, stalled_detail: str | None = None) -> dict:
    """What every surface says about a deal: whether the one risk rule calls it at risk, how long won deals take,
    and what to do next."""
    velocity = metrics.velocity["won"]
    return {
        "s": score,
        "at_risk": is_at_risk(score, metrics.risk_rule),
        "typical_days": velocity["median"],
        "typical_n": velocity["n"],
        "actions": recommended_actions(score.reasons, stalled_detail, stale=bool(score.stale)),
    }


def deal_content(store: Store, refresh: Refresh, answer: DealAnswer) -> dict:
    """The `/deal-risk` and `salesintel risk` answer: the deal's facts, the risk rule and model behind them, and
    how long it has been in its stage (seen across snapshots)."""
    score = answer.score
    since = (
        store.stage_since(refresh.snapshot_id, refresh.as_of, score.deal_id).get(score.deal_id)
        if score.deal_stage
        else None
    )
    return {
        **deal_facts(score, refresh.metrics),
        "model": refresh.metrics.model,
        "as_of": refresh.as_of.isoformat(),
        "rule": refresh.metrics.risk_rule,
        "coverage": refresh.metrics.coverage,
        "stage_days": (refresh.as_of - since).days if since else None,
        "deal_name": answer.deal.get("deal_name"),
    }


def refresh_key(refresh: Refresh) -> tuple:
    """What names a refresh for a memo: its id, and when it was computed (an id a rolled-back refresh had may be
    given again)."""
    return (refresh.id, refresh.computed_at)


def deal_risk_answer(
    store: Store,
    refresh: Refresh,
    text: str,
    viewer: Viewer,
    routing: RoutingSettings,
    visibility: str,
    memo: Memo = no_memo,
) -> DealRiskAnswer:
    """The answer to `/deal-risk <text>` for this viewer. Raises `NotVisible` when the viewer may see no deal, or
    not this one, or it does not exist (one message for both: see `not_found`); `engine.lookup.DealLookupError`
    when the text is no deal id, or names a deal the viewer may see that is not open at the date.

    `memo` may keep the lookup and the content per refresh (they never change within one); who may see the deal
    and its alert are decided for every call."""
    if not may_see_any_deal(viewer, visibility):
        raise NotVisible(UNKNOWN_VIEWER)
    generation = refresh_key(refresh)
    try:
        answer = memo(("look_up", generation, text.strip()), lambda: look_up(store, refresh, text))
    except DealLookupError as error:
        hidden = error.owner is None or not can_see_deal(viewer, error.owner, routing, visibility)
        if error.typed is not None and hidden and not viewer.executive:
            raise NotVisible(not_found(error.typed)) from None
        raise
    score = answer.score
    if not can_see_deal(viewer, score.sales_rep_id, routing, visibility):
        raise NotVisible(not_found(answer.deal["deal_id"]))
    alert = next((a for a in AlertLedger(store).active_for_deal(score.deal_id) if not a.control), None)
    if alert and not can_act_on_alert(viewer, alert, routing):
        alert = None
    content = memo(("deal_content", generation, score.deal_id), lambda: deal_content(store, refresh, answer))
    return DealRiskAnswer(content, alert)
