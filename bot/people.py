"""Who is asking: a Slack user as a `Viewer` (rep, manager or executive). What a viewer may see or do is
`alerts.visibility`.

Identity comes from `alerts.routing.users` (a `slack:` id per rep or manager) and the Slack ids the deliverer
looked up by email (cached in the store). Executives (`bot.executives`) see everything.
"""

from __future__ import annotations

from salesintel.alerts.settings import RoutingSettings
from salesintel.alerts.visibility import Viewer
from salesintel.bot.config import BotSettings


def identify(slack_id: str, routing: RoutingSettings, cached: dict[str, str], bot: BotSettings) -> Viewer:
    """`cached`: person → Slack id from the store's lookups."""
    people = {
        **{p: s for p, s in cached.items()},
        **{p: e["slack"] for p, e in routing.users.items() if e.get("slack")},
    }
    person = next((p for p, s in people.items() if s == slack_id), None)
    return Viewer(slack_id, person, slack_id in bot.executives or slack_id == bot.terminal_user)
