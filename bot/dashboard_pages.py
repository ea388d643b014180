"""What each dashboard page shows, for one viewer: plain data from the store and the latest refresh, decided with
the same functions Slack's answers use (`alerts.visibility`, `alerts.reports`, `alerts.deal_answer`,
`alerts.rules.drift_problems`), so the dashboard can neither show more than Slack would nor say it differently.
Rendering to HTML is `bot.dashboard`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass

from salesintel.alerts.deal_answer import NotVisible, deal_risk_answer
from salesintel.alerts.email_render import blocks_fragment
from salesintel.alerts.ledger import AlertLedger
from salesintel.alerts.render import render_message
from salesintel.alerts.reports import at_risk, at_risk_totals, stale_deals, worth_a_look
from salesintel.alerts.rules import drift_problems
from salesintel.alerts.visibility import (
    Viewer,
    can_act_for,
    can_act_on_alert,
    can_see_deal,
    hides_rep_figures,
    may_see_any_deal,
)
from salesintel.bot.answers import BotContext, statement_for
from salesintel.engine.lookup import DealLookupError
from salesintel.engine.records import ScoredDeal
from salesintel.engine.store import Refresh

DEALS_PER_PAGE = 50


class NoRefresh(Exception):
    """Nothing loaded and refreshed yet."""


@dataclass(frozen=True)
class PageData:
    """What every page has: the refresh it speaks for, and whether the viewer is known at all."""

    refresh: Refresh
    known: bool
    stale: str | None


def page_data(ctx: BotContext, viewer: Viewer) -> PageData:
    refresh = ctx.refresh()
    if refresh is None:
        raise NoRefresh("No data yet: the CRM snapshot has not been loaded and refreshed.")
    return PageData(refresh, may_see_any_deal(viewer, ctx.settings.bot.visibility), ctx.stale())


def visible_scores(ctx: BotContext, viewer: Viewer, refresh: Refresh) -> list[ScoredDeal]:
    """The open deals this viewer may see, by the rule `/deal-risk` applies."""
    bot, routing = ctx.settings.bot, ctx.settings.alerts.routing
    if not may_see_any_deal(viewer, bot.visibility):
        return []
    return [s for s in ctx.scores(refresh) if can_see_deal(viewer, s.sales_rep_id, routing, bot.visibility)]


def overview(ctx: BotContext, viewer: Viewer) -> dict:
    page = page_data(ctx, viewer)
    metrics = page.refresh.metrics
    scores = visible_scores(ctx, viewer, page.refresh)
    return {
        "page": page,
        "totals": at_risk_totals(scores, metrics),
        "top": worth_a_look(scores, metrics)[:10],
        "rule": metrics.risk_rule,
        "overall": metrics.overall,
        "model": metrics.model,
        "as_of": page.refresh.as_of.isoformat(),
    }


def deals(ctx: BotContext, viewer: Viewer, offset: int) -> dict:
    page = page_data(ctx, viewer)
    metrics = page.refresh.metrics
    scores = visible_scores(ctx, viewer, page.refresh)
    ordered = worth_a_look(scores, metrics) + stale_deals(scores)  # stale ones last, marked
    offset = max(0, min(offset, max(0, len(ordered) - 1)))
    return {
        "page": page,
        "rule": metrics.risk_rule,
        "deals": ordered[offset : offset + DEALS_PER_PAGE],
        "offset": offset,
        "total": len(ordered),
        "per_page": DEALS_PER_PAGE,
        "at_risk": {s.deal_id for s in at_risk(ordered, metrics)},
        "as_of": page.refresh.as_of.isoformat(),
    }


def deal(ctx: BotContext, viewer: Viewer, deal_id: str) -> dict:
    """The `/deal-risk` answer itself, as HTML, and the deal's alert history the viewer may see. Raises
    `NotVisible` (the same words for a deal that does not exist) or `DealLookupError`."""
    page = page_data(ctx, viewer)
    routing, bot = ctx.settings.alerts.routing, ctx.settings.bot
    found = deal_risk_answer(ctx.store, page.refresh, deal_id, viewer, routing, bot.visibility, ctx.memo)
    score = found.content["s"]
    message = render_message(
        "answer_deal_risk", **found.content, stale=page.stale, owners={}, alert=None
    )  # no Slack buttons on a web page: acting on an alert stays in Slack, where it is recorded who did
    history = [
        a
        for a in AlertLedger(ctx.store).episodes_of_deal(score.deal_id)
        if not a.control and can_act_on_alert(viewer, a, routing)
    ]
    return {"page": page, "deal_id": score.deal_id, "answer_html": blocks_fragment(message.blocks), "alerts": history}


def winrates(ctx: BotContext, viewer: Viewer, field: str | None) -> dict:
    page = page_data(ctx, viewer)
    metrics = page.refresh.metrics
    hidden = hides_rep_figures(viewer, ctx.settings.alerts.routing, ctx.settings.bot.visibility)
    visible = [s for s in metrics.segments if not hidden(s)]
    fields: dict[str, str] = {}
    for segment in visible:
        fields.setdefault(segment.field, segment.label)
    chosen = field if field in fields else next(iter(fields), None)
    rows = sorted((s for s in visible if s.field == chosen), key=lambda s: s.rate.rate or 0)
    return {
        "page": page,
        "overall": metrics.overall,
        "statement": statement_for(metrics, hidden),
        "fields": fields,
        "field": chosen,
        "rows": rows,
        "settings": metrics.settings,
        "comparisons": metrics.comparisons,
        "excluded": metrics.fields.get("excluded", ()),
    }


def model(ctx: BotContext, viewer: Viewer) -> dict:
    page = page_data(ctx, viewer)
    metrics = page.refresh.metrics
    report = metrics.model
    evaluation = report.get("evaluation") or {}
    return {
        "page": page,
        "model": report,
        "evaluation": evaluation,
        "calibration": (evaluation.get("calibration") or {}).get("bins", ()),
        "calibration_error": (evaluation.get("calibration") or {}).get("expected_calibration_error"),
        "drift": metrics.drift,
        "drift_threshold": ctx.settings.alerts.drift_psi_threshold,
        "problems": drift_problems(metrics.drift, ctx.settings.alerts),
        "rule": metrics.risk_rule,
    }


ALERTS_PER_PAGE = 100
ALERTS_LOOKED_AT = 20_000
"""The alert history looks at this many newest episodes (years of alerts for a large team)."""


def alert_history(ctx: BotContext, viewer: Viewer, offset: int) -> dict:
    """Every alert (open or over) the viewer may act on, newest first, with who acknowledged or snoozed it."""
    page = page_data(ctx, viewer)
    routing = ctx.settings.alerts.routing
    ledger = AlertLedger(ctx.store)
    newest = ledger.audiences(ALERTS_LOOKED_AT)  # who may see each, without reading every payload
    visible = [i for i, recipients, control in newest if not control and can_act_for(viewer, recipients, routing)]
    offset = max(0, min(offset, max(0, len(visible) - 1)))
    return {
        "page": page,
        "alerts": ledger.by_ids(visible[offset : offset + ALERTS_PER_PAGE]),
        "offset": offset,
        "total": len(visible),
        "per_page": ALERTS_PER_PAGE,
        "cut": len(newest) == ALERTS_LOOKED_AT,
        "looked_at": ALERTS_LOOKED_AT,
    }


__all__ = ["DealLookupError", "NoRefresh", "NotVisible", "alert_history", "deal", "deals", "model", "overview"]
