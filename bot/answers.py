"""What the bot answers: slash commands and App Home, as Messages rendered from templates.

Listeners in `bot.app` only ack and pass the Message on; everything said is decided here from the store, the
viewer and the settings, so the terminal mode and Slack give the very same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property

from salesintel.alerts.answer_memo import Memo, no_memo
from salesintel.alerts.deal_answer import NotVisible, deal_risk_answer, refresh_key
from salesintel.alerts.ledger import AlertLedger
from salesintel.alerts.render import Message, render_message
from salesintel.alerts.reports import at_risk_totals, worth_a_look
from salesintel.alerts.routing import slack_mentions
from salesintel.alerts.rules import stale_data
from salesintel.alerts.visibility import (
    Viewer,
    can_act_on_alert,
    hides_rep_figures,
    may_see_any_deal,
    reps_in_scope,
)
from salesintel.bot.config import Settings
from salesintel.engine.lookup import DealLookupError
from salesintel.engine.records import MetricsSummary, ScoredDeal
from salesintel.engine.segments import SIGNIFICANT, findings_statement
from salesintel.engine.settings import MetricsSettings
from salesintel.engine.store import Alert, Refresh, Store

HELP = {
    "deal-risk": "`/deal-risk D01234` — a deal's risk, P(win), why, what to do next, and its alert buttons. "
    "The id may be typed in any case or pasted as a CRM link.",
    "pipeline": "`/pipeline` — your open pipeline (yours as a rep, your team's as a manager, everything for "
    "executives): count and value, revenue at risk, the riskiest deals.",
    "winrate": "`/winrate` — the overall win rate with its interval. `/winrate lead_source` (or industry, region, "
    "product, rep, deal size, or any field of your CRM layout) — every segment of that field, tested "
    "against the rest. `/winrate APAC` — one segment, and whether its difference is real.",
    "alerts": "`/alerts` — the open alerts you receive or manage, with their state.",
    "salesintel": "`/salesintel dashboard` — a sign-in link to the web dashboard (for you only, usable once, for a "
    "few minutes): your pipeline, at-risk deals and why, win rates with their intervals, the model's skill and "
    "calibration, drift, and your alerts' history. You see there what you may see here.",
}
FIELD_WORDS = {
    **{
        name: name
        for name in ("lead_source", "industry", "region", "product_type", "sales_rep_id", "deal_stage", "deal_amount")
    },
    "lead": "lead_source",
    "source": "lead_source",
    "product": "product_type",
    "rep": "sales_rep_id",
    "reps": "sales_rep_id",
    "owner": "sales_rep_id",
    "amount": "deal_amount",
    "size": "deal_amount",
    "deal size": "deal_amount",
    "amount_band": "deal_amount",
    "days": "sales_cycle_days",
    "cycle": "sales_cycle_days",
    "cycle_band": "sales_cycle_days",
    "stage": "deal_stage",
    "quarter": "closed_date",
    "close_quarter": "closed_date",
}
"""Words people type for a field; a field's own name and label work too."""


@dataclass(frozen=True)
class BotContext:
    store: Store
    settings: Settings
    now: datetime
    pinned_as_of: date | None = None
    memo: Memo = no_memo
    """Keeps what an answer derives from one refresh (see `alerts.answer_memo`); the service passes one per process."""
    dashboard_link: Callable[[str], str] | None = None
    """A sign-in link to the dashboard for a Slack user; None where no dashboard is served (terminal mode)."""

    def refresh(self) -> Refresh | None:
        return self.store.latest_refresh(self.pinned_as_of) if self.pinned_as_of else self.store.latest_refresh()

    def scores(self, refresh: Refresh) -> tuple[ScoredDeal, ...]:
        """Every open deal's score in `refresh`, read from the store once per refresh and process (the memo): each
        pipeline answer or dashboard page then filters them by who asks (20,000 deals: 17 ms a read, profiled)."""
        return self.memo(("scores", refresh_key(refresh)), lambda: tuple(self.store.scores(refresh.id)))

    def stale(self) -> str | None:
        snapshot = self.store.latest_snapshot()
        return stale_data(snapshot.taken_at, self.now, self.settings.alerts) if snapshot else None

    @cached_property
    def known_users(self) -> dict[str, str]:
        """person → Slack id as the store knows them, read once per request (who asks, and whom to mention)."""
        return self.store.slack_users()

    def owners(self) -> dict[str, str]:
        return slack_mentions(self.settings.alerts.routing, self.known_users)


def text_message(text: str) -> Message:
    return render_message("answer_text", text=text)


def no_data() -> Message:
    return text_message(
        "No data yet: the CRM snapshot has not been loaded and refreshed (`salesintel ingest`, `salesintel refresh`)."
    )


def deal_risk(ctx: BotContext, viewer: Viewer, text: str) -> Message:
    if not text.strip():
        return text_message("Which deal? " + HELP["deal-risk"])
    if text.strip().lower() == "help":
        return text_message(HELP["deal-risk"])
    refresh = ctx.refresh()
    if refresh is None:
        return no_data()
    try:
        found = deal_risk_answer(
            ctx.store, refresh, text, viewer, ctx.settings.alerts.routing, ctx.settings.bot.visibility, ctx.memo
        )
    except DealLookupError as error:
        return text_message(f"{error}. {HELP['deal-risk']}")
    except NotVisible as refused:
        return text_message(str(refused))
    stale, rep, alert = ctx.stale(), found.content["s"].sales_rep_id, found.alert
    owners = ctx.owners()
    owner = {rep: owners[rep]} if rep in owners else {}  # all the message says of owners: its key is complete
    # The alert's id, state and last change name every state it can be in (each change sets updated_at).
    alert_key = (alert.id, alert.state, alert.updated_at) if alert else None
    return ctx.memo(
        ("deal_risk", refresh_key(refresh), found.content["s"].deal_id, stale, tuple(owner.items()), alert_key),
        lambda: render_message("answer_deal_risk", **found.content, stale=stale, owners=owner, alert=alert),
    )


def pipeline(ctx: BotContext, viewer: Viewer, text: str) -> Message:
    if text.strip().lower() == "help":
        return text_message(HELP["pipeline"])
    refresh = ctx.refresh()
    if refresh is None:
        return no_data()
    scope = reps_in_scope(viewer, ctx.settings.alerts.routing)
    if scope is not None and not scope:
        return text_message(
            "I don't know which deals are yours: ask an admin to add your Slack id under `alerts.routing.users`."
        )
    scores = [s for s in ctx.scores(refresh) if scope is None or s.sales_rep_id in scope]
    totals = at_risk_totals(scores, refresh.metrics)
    who = "everyone" if scope is None else ("your team" if len(scope) > 1 else "you")
    return render_message(
        "answer_pipeline",
        who=who,
        totals=totals,
        top=worth_a_look(scores, refresh.metrics)[:5],
        rule=refresh.metrics.risk_rule,
        as_of=refresh.as_of.isoformat(),
        stale=ctx.stale(),
        owners=ctx.owners(),
        model=refresh.metrics.model,
    )


def winrate(ctx: BotContext, viewer: Viewer, text: str) -> Message:
    asked = " ".join(text.split()).strip()
    if asked.lower() == "help":
        return text_message(HELP["winrate"])
    refresh = ctx.refresh()
    if refresh is None:
        return no_data()
    m = refresh.metrics
    hidden = hides_rep_figures(viewer, ctx.settings.alerts.routing, ctx.settings.bot.visibility)
    common = {
        "overall": m.overall,
        "statement": statement_for(m, hidden),
        "as_of": refresh.as_of.isoformat(),
        "stale": ctx.stale(),
        "min_sample": m.settings["min_sample"],
    }
    if not asked:
        return render_message("answer_winrate", asked=None, rows=[], more=0, **common)
    field = _field_named(asked, m)
    excluded = {e["field"]: e for e in m.fields.get("excluded", ())}
    if field in excluded:
        e = excluded[field]
        return text_message(
            f"{e['label']} is not used for findings: {e['reason']}. A win rate by it would only "
            f"restate how deals ended."
        )
    visible = [s for s in m.segments if not hidden(s)]
    if field:
        rows = sorted((s for s in visible if s.field == field), key=lambda s: s.rate.rate or 0)
    else:
        rows = [s for s in visible if s.value.lower() == asked.lower()]
    if not rows:
        return text_message(f"No segment or field called '{asked}'. {HELP['winrate']}")
    return render_message("answer_winrate", asked=asked, rows=rows[:40], more=max(0, len(rows) - 40), **common)


def statement_for(metrics: MetricsSummary, hidden) -> str:
    """The refresh's findings sentence, with findings about reps the viewer may not see counted but not named."""
    if not any(hidden(s) and s.status == SIGNIFICANT for s in metrics.segments):
        return metrics.statement
    settings = MetricsSettings(min_sample=metrics.settings["min_sample"], fdr_q=metrics.settings["fdr_q"])
    return findings_statement(metrics.segments, settings, withheld=hidden)


def _field_named(asked: str, metrics: MetricsSummary) -> str | None:
    """The field a person means by `asked`: a known word, a field name, or a field's label (any case)."""
    word = asked.lower()
    if word in FIELD_WORDS:
        return FIELD_WORDS[word]
    fields = metrics.fields
    for entry in [*fields.get("used", ()), *fields.get("excluded", ())]:
        if word in (entry["field"].lower(), entry["label"].lower()):
            return entry["field"]
    return None


def alerts(ctx: BotContext, viewer: Viewer, text: str) -> Message:
    if text.strip().lower() == "help":
        return text_message(HELP["alerts"])
    mine = visible_alerts(ctx, viewer)
    return render_message("answer_alerts", alerts=mine[:20], more=max(0, len(mine) - 20), stale=ctx.stale())


def salesintel(ctx: BotContext, viewer: Viewer, text: str) -> Message:
    """`/salesintel dashboard` (a sign-in link) and `/salesintel help`."""
    asked = text.strip().lower()
    if asked != "dashboard":
        return text_message(" ".join(HELP.values()))
    if ctx.dashboard_link is None:
        return text_message(
            "The dashboard is served with the Slack app (HTTP or Socket Mode); in terminal mode, start "
            "`salesintel run --port 3000` to serve it."
        )
    minutes = ctx.settings.bot.dashboard.link_minutes
    return render_message(
        "answer_dashboard",
        link=ctx.dashboard_link(viewer.slack_id),
        minutes=f"{minutes:g}",
        known=may_see_any_deal(viewer, ctx.settings.bot.visibility),
    )


def visible_alerts(ctx: BotContext, viewer: Viewer) -> list[Alert]:
    routing = ctx.settings.alerts.routing
    return [a for a in AlertLedger(ctx.store).active() if not a.control and can_act_on_alert(viewer, a, routing)]


def home_view(ctx: BotContext, viewer: Viewer) -> dict:
    """The App Home tab: the viewer's at-risk deals and open alerts, as of the latest refresh."""
    refresh = ctx.refresh()
    scope = reps_in_scope(viewer, ctx.settings.alerts.routing)
    scores = []
    if refresh is not None and (scope is None or scope):
        scores = [s for s in ctx.scores(refresh) if scope is None or s.sales_rep_id in scope]
    totals = at_risk_totals(scores, refresh.metrics if refresh else None)
    risky = totals["deals"]
    message = render_message(
        "home",
        risky=risky[:15],
        risky_more=max(0, len(risky) - 15),
        totals=totals,
        rule=refresh.metrics.risk_rule if refresh else {},
        alerts=visible_alerts(ctx, viewer)[:15],
        known=scope is None or bool(scope),
        as_of=refresh.as_of.isoformat() if refresh else None,
        stale=ctx.stale(),
        owners=ctx.owners(),
        updated=ctx.now.strftime("%Y-%m-%d %H:%M UTC"),
    )
    return {"type": "home", "blocks": message.blocks}
