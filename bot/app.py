"""The Bolt app: slash commands, alert buttons, the snooze-until modal, App Home. Wiring only.

Bolt runs each listener before it answers the HTTP request (`process_before_response`): a slash command's answer
is its acknowledgement, built on a pool thread the request's thread waits for up to a budget; one not ready in time
is acknowledged at once and followed up on Slack's `response_url` (`bot.slow_answers`). Bolt's own listener pool
is not used for this: it cost a 10 ms poll for the ack on every request, and capped one process at about 200
answers a second (docs/performance.md). Whatever calls Slack's Web API (a button's message update, the snooze modal, App
Home) is a lazy listener: acknowledged at once, done on the pool after, so Slack's 3-second deadline never waits
on Slack itself. Listeners read from the store through `bot.answers` or `bot.buttons`. Slack's event retries
(`X-Slack-Retry-Num`) and repeated event ids are recognised and not processed twice. Bolt answers 200 even when a
listener raises, so listeners log failures with context.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time
from time import perf_counter as time_counter
from zoneinfo import ZoneInfo

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from salesintel.alerts.answer_memo import Memo, no_memo
from salesintel.alerts.clock import Clock
from salesintel.alerts.delivery import ObservedWebClient, SlackCallObserver, retry_after_seconds
from salesintel.alerts.outbox import Outbox
from salesintel.alerts.render import replace_buttons
from salesintel.alerts.visibility import Viewer
from salesintel.bot import answers
from salesintel.bot.buttons import press, record_feedback
from salesintel.bot.config import Settings
from salesintel.bot.people import identify
from salesintel.bot.slow_answers import AnswerWithinBudget
from salesintel.engine.store import ThreadLocalStore

log = logging.getLogger("salesintel.bot")
COMMANDS = {
    "/deal-risk": answers.deal_risk,
    "/pipeline": answers.pipeline,
    "/winrate": answers.winrate,
    "/alerts": answers.alerts,
    "/salesintel": answers.salesintel,
}
SEEN_EVENTS = 2000


@dataclass
class BotDeps:
    stores: ThreadLocalStore
    settings: Settings
    clock: Clock
    pinned_as_of: date | None = None
    memo: Memo = no_memo
    observe: Callable[[str, float], None] | None = None
    """Told each command answered and how long it took (the service's metrics)."""
    dashboard_link: Callable[[str], str] | None = None
    """Set by the service once it serves the dashboard (`bot.dashboard`)."""

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    def context(self) -> answers.BotContext:
        return answers.BotContext(
            self.stores.get(), self.settings, self.clock.now(), self.pinned_as_of, self.memo, self.dashboard_link
        )

    def viewer(self, slack_id: str, known_users: dict[str, str] | None = None) -> Viewer:
        """Who `slack_id` is; `known_users` when the request already read the store's (`BotContext.known_users`)."""
        known = self.stores.get().slack_users() if known_users is None else known_users
        return identify(slack_id, self.settings.alerts.routing, known, self.settings.bot)


def create_app(
    deps: BotDeps,
    token: str,
    signing_secret: str,
    client: WebClient,
    verify_requests: bool = True,
    observe_slack: SlackCallObserver | None = None,
    within: AnswerWithinBudget | None = None,
) -> App:
    """A Bolt App that never calls auth.test at start-up and verifies Slack's signature (unless told not to).

    Commands answer in their acknowledgement; buttons, the modal and App Home acknowledge at once and do their work
    lazily (see the module's docstring)."""

    def authorize(enterprise_id=None, team_id=None, user_id=None, logger=None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

    app = App(
        signing_secret=signing_secret,
        client=client,
        authorize=authorize,
        token_verification_enabled=False,
        request_verification_enabled=verify_requests,
        listener_executor=ThreadPoolExecutor(max_workers=16),
        logger=logging.getLogger("salesintel.bolt"),
        name="salesintel",
        process_before_response=True,
    )
    app.use(RepeatedEventFilter())
    if observe_slack is not None:
        app.use(ObservedClients(observe_slack))
    within = within or AnswerWithinBudget(deps.settings.bot.answer_budget_seconds)
    for name, answer in COMMANDS.items():
        app.command(name)(_command_listener(deps, answer, within))
    app.action(re.compile(r"^alert_(ack|snooze_1d|snooze_1w)$"))(ack=_ack, lazy=[_button_listener(deps)])
    app.action("alert_snooze_pick")(ack=_ack, lazy=[_open_snooze_modal(deps)])
    app.action(re.compile(r"^alert_(useful|not_useful)$"))(ack=_ack, lazy=[_feedback_listener(deps)])
    app.view("snooze_until")(ack=_check_snooze_date(deps), lazy=[_snooze_until_submitted(deps)])
    app.event("app_home_opened")(ack=_ack, lazy=[_home_listener(deps)])
    app.action("dashboard_open")(_ack)  # a link button: the browser opens the link; Slack still tells us
    return app


class ObservedClients(Middleware):
    """Bolt gives each request a new WebClient of its own class; for the requests whose listeners call Slack
    (buttons, the modal, App Home: not slash commands, which answer in their acknowledgement) this swaps in one
    that reports every call to the service's metrics."""

    def __init__(self, observe: SlackCallObserver):
        self._observe = observe

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse:
        given = req.context.client
        if given is not None and not (isinstance(req.body, dict) and req.body.get("command")):
            req.context["client"] = ObservedWebClient(
                token=given.token,
                base_url=given.base_url,
                timeout=given.timeout,
                retry_handlers=[],
                observe=self._observe,
            )
        return next()


class RepeatedEventFilter(Middleware):
    """Slack sends an event again when it thinks the first went unanswered; one with an event id already seen is
    answered 200 and not processed. A `Middleware` subclass, so Bolt calls it directly: a function middleware had
    its arguments worked out by inspection on every request, commands included."""

    def __init__(self, remembered: int = SEEN_EVENTS):
        self._seen: OrderedDict[str, bool] = OrderedDict()
        self._remembered = remembered
        self._lock = threading.Lock()

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse:
        event_id = req.body.get("event_id") if isinstance(req.body, dict) else None
        if event_id:
            with self._lock:
                repeated = event_id in self._seen
                self._seen[event_id] = True
                while len(self._seen) > self._remembered:
                    self._seen.popitem(last=False)
            if repeated:
                log.info("repeated event skipped", extra={"event": "slack_retry_skipped", "event_id": event_id})
                return BoltResponse(status=200, body="")
        return next()


def _command_listener(deps: BotDeps, answer: Callable, within: AnswerWithinBudget) -> Callable:
    def listener(ack, command):
        started = time_counter()

        def build():
            context = deps.context()
            return answer(context, deps.viewer(command["user_id"], context.known_users), command.get("text") or "")

        def done(how: str) -> None:
            if deps.observe is not None and how != "failed":
                deps.observe(command.get("command") or "", time_counter() - started)
            log.info(
                "command answered",
                extra={"event": "command", "command": command.get("command"), "user": command["user_id"], "how": how},
            )

        within(ack, command, build, done)

    return listener


def _where(body: dict) -> tuple[str | None, str | None]:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    return channel, container.get("message_ts")


def _apply(
    deps: BotDeps,
    client: WebClient,
    body: dict,
    user: str,
    action_id: str,
    alert_id: int,
    channel: str | None,
    ts: str | None,
    blocks: list[dict],
    until: datetime | None = None,
) -> None:
    outcome = press(
        deps.stores.get(),
        deps.settings.alerts,
        deps.timezone,
        deps.viewer(user),
        action_id,
        alert_id,
        deps.clock.now(),
        until,
    )
    log.info(
        "alert button",
        extra={
            "event": "alert_button",
            "action": action_id,
            "alert_id": alert_id,
            "user": user,
            "changed": outcome.changed,
            "refused": bool(outcome.refused),
        },
    )
    if outcome.refused:
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=outcome.refused)
        return
    if outcome.changed and channel and ts and not blocks:
        # The snooze modal knows where the alert's message is, not what it says: the outbox kept what was sent.
        sent = Outbox(deps.stores.get()).delivered_at(channel, ts)
        blocks = sent.blocks if sent is not None else []
    if outcome.changed and channel and ts and blocks:
        client.chat_update(
            channel=channel, ts=ts, text=outcome.note, blocks=replace_buttons(blocks, alert_id, outcome.note)
        )
    elif outcome.changed and channel:
        client.chat_postEphemeral(channel=channel, user=user, text=outcome.note)


def _ack(ack) -> None:
    ack()


def _button_listener(deps: BotDeps) -> Callable:
    def listener(body, action, client):
        channel, ts = _where(body)
        blocks = (body.get("message") or {}).get("blocks") or []
        _apply(deps, client, body, body["user"]["id"], action["action_id"], int(action["value"]), channel, ts, blocks)

    return listener


def _feedback_listener(deps: BotDeps) -> Callable:
    """ "Useful" / "Not useful" on an alert: recorded (one answer per person, the latest kept), and the two buttons
    give way to what was said. Only people who may act on the alert are heard."""

    def listener(body, action, client):
        channel, ts = _where(body)
        user, alert_id = body["user"]["id"], int(action["value"])
        useful = action["action_id"] == "alert_useful"
        outcome = record_feedback(
            deps.stores.get(), deps.settings.alerts, deps.viewer(user), alert_id, useful, deps.clock.now()
        )
        log.info(
            "alert feedback",
            extra={"event": "alert_feedback", "alert_id": alert_id, "user": user, "useful": useful},
        )
        if outcome.refused:
            if channel:
                client.chat_postEphemeral(channel=channel, user=user, text=outcome.refused)
            return
        blocks = (body.get("message") or {}).get("blocks") or []
        if channel and ts and blocks:
            note = f"<@{user}> found this {'useful' if useful else 'not useful'}: thank you, it tunes what is sent."
            client.chat_update(
                channel=channel, ts=ts, text=note, blocks=replace_buttons(blocks, alert_id, note, group="feedback")
            )

    return listener


def _open_snooze_modal(deps: BotDeps) -> Callable:
    def listener(body, action, client):
        channel, ts = _where(body)
        metadata = json.dumps({"alert_id": int(action["value"]), "channel": channel, "ts": ts})
        client.views_open(
            trigger_id=body["trigger_id"],
            view={
                "type": "modal",
                "callback_id": "snooze_until",
                "private_metadata": metadata,
                "title": {"type": "plain_text", "text": "Snooze alert"},
                "submit": {"type": "plain_text", "text": "Snooze"},
                "blocks": [
                    {
                        "type": "input",
                        "block_id": "until",
                        "label": {"type": "plain_text", "text": "Until"},
                        "element": {"type": "datepicker", "action_id": "date"},
                    }
                ],
            },
        )

    return listener


def _snooze_until(deps: BotDeps, view: dict) -> datetime | None:
    """08:00 on the day picked in the snooze modal, or None when no day after today was picked."""
    picked = view["state"]["values"]["until"]["date"].get("selected_date")
    today = deps.clock.now().astimezone(deps.timezone).date()
    if not picked or date.fromisoformat(picked) <= today:
        return None
    return datetime.combine(date.fromisoformat(picked), time(8, 0), deps.timezone)


def _check_snooze_date(deps: BotDeps) -> Callable:
    """The modal's acknowledgement: closes it, or keeps it open with the reason the date is refused."""

    def acknowledge(ack, view):
        if _snooze_until(deps, view) is None:
            ack(response_action="errors", errors={"until": "Pick a day after today."})
        else:
            ack()

    return acknowledge


def _snooze_until_submitted(deps: BotDeps) -> Callable:
    def listener(body, view, client):
        until = _snooze_until(deps, view)
        if until is None:  # refused in the acknowledgement: the modal is still open
            return
        meta = json.loads(view["private_metadata"])
        _apply(
            deps,
            client,
            body,
            body["user"]["id"],
            "alert_snooze_until",
            meta["alert_id"],
            meta.get("channel"),
            meta.get("ts"),
            [],
            until,
        )

    return listener


def _home_listener(deps: BotDeps) -> Callable:
    def listener(event, client):
        user = event["user"]
        if event.get("tab", "home") != "home":
            return  # the Messages tab: nothing to republish
        view = answers.home_view(deps.context(), deps.viewer(user))
        for attempt in range(1, HOME_ATTEMPTS + 1):
            try:
                client.views_publish(user_id=user, view=view)
                log.info("home published", extra={"event": "home", "user": user, "attempt": attempt})
                return
            except SlackApiError as error:
                status = error.response.status_code
                if status != 429 and status < 500:
                    log.error("home not published", extra={"event": "home_failed", "user": user, "status": status})
                    return
                wait = retry_after_seconds((error.response.headers or {}).get("Retry-After"), deps.clock.now())
            except OSError as error:
                wait = 0.5 * 2 ** (attempt - 1)
                log.warning("home publish retry", extra={"event": "home_retry", "user": user, "error": str(error)})
            deps.clock.sleep(min(wait, HOME_MAX_WAIT_SECONDS))
        log.error("home not published: gave up", extra={"event": "home_failed", "user": user})

    return listener


HOME_ATTEMPTS = 3
HOME_MAX_WAIT_SECONDS = 5.0
"""App Home is published while the user looks at it: a few quick retries, never a long wait."""
