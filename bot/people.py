"""Who is asking, and what they may see or do: Slack user → rep/manager, visibility, permission to act.

Identity comes from `alerts.routing.users` (a `slack:` id per rep or manager) and the Slack ids the deliverer
looked up by email (cached in the store). Executives (`bot.executives`) see everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from salesintel.alerts.routing import managers_of
from salesintel.alerts.settings import RoutingSettings
from salesintel.bot.config import BotSettings
from salesintel.engine.store import Alert


@dataclass(frozen=True)
class Viewer:
    slack_id: str
    person: str | None
    """The rep or manager id this Slack user is, if known."""
    executive: bool


def identify(slack_id: str, routing: RoutingSettings, cached: dict[str, str], bot: BotSettings) -> Viewer:
    """`cached`: person → Slack id from the store's lookups."""
    people = {
        **{p: s for p, s in cached.items()},
        **{p: e["slack"] for p, e in routing.users.items() if e.get("slack")},
    }
    person = next((p for p, s in people.items() if s == slack_id), None)
    return Viewer(slack_id, person, slack_id in bot.executives or slack_id == bot.terminal_user)


def reps_in_scope(viewer: Viewer, routing: RoutingSettings) -> set[str] | None:
    """The reps whose deals this viewer's pipeline covers; None means everyone (executives)."""
    if viewer.executive:
        return None
    if viewer.person is None:
        return set()
    team = {rep for rep in routing.users if viewer.person in managers_of(rep, routing)}
    return team | {viewer.person}


def can_see_deal(viewer: Viewer, rep_id: str, routing: RoutingSettings, bot: BotSettings) -> bool:
    if bot.visibility == "everyone":
        return True
    scope = reps_in_scope(viewer, routing)
    return scope is None or rep_id in scope


def can_act_on_alert(viewer: Viewer, alert: Alert, routing: RoutingSettings) -> bool:
    """The alert's recipients and their managers (and executives) may acknowledge or snooze it."""
    if viewer.executive:
        return True
    if viewer.person is None:
        return False
    recipients = [target.split(":", 1)[1] for target in alert.recipients if target.startswith("user:")]
    allowed = set(recipients) | {m for r in recipients for m in managers_of(r, routing)}
    return viewer.person in allowed
