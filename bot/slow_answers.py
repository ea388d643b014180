"""Slash-command answers that may take longer than Slack waits.

Slack shows "operation timed out" when a command's acknowledgement takes more than 3 seconds. An answer is built on
a pool thread while the request's thread waits for it up to a budget (`bot.answer_budget_seconds`, 2 s by default):
a ready answer is the acknowledgement itself, as before; one still being built (a database busy with a long write,
a cold start) is acknowledged at once with a short note, and posted to the command's `response_url` — the URL Slack
gives each command for up to 30 minutes of follow-ups — as soon as it is ready.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from slack_sdk.webhook import WebhookClient

from salesintel.alerts.render import Message

log = logging.getLogger("salesintel.bot")

WORKING = "Working on it: the answer will appear here in a moment."
FAILED = "Sorry, something went wrong answering that. It has been logged."


def post_to_response_url(url: str, message: Message, timeout: float = 10.0) -> int:
    """The answer as an ephemeral follow-up to the command; the HTTP status Slack answered."""
    response = WebhookClient(url, timeout=int(max(1, timeout))).send(
        text=message.text, blocks=message.blocks, response_type="ephemeral"
    )
    return response.status_code


class AnswerWithinBudget:
    def __init__(
        self,
        budget_seconds: float,
        workers: int = 16,
        post: Callable[[str, Message], int] = post_to_response_url,
    ):
        self.budget = budget_seconds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="answer")
        self._post = post

    def __call__(self, ack, command: dict, build: Callable[[], Message], done: Callable[[str], None]) -> None:
        """Build the answer and acknowledge with it, or acknowledge now and follow up; `done(how)` is called once the
        answer reached Slack ("inline", "followed_up", or "failed")."""
        future = self._pool.submit(build)
        url = command.get("response_url")
        try:
            # Without a response_url (the terminal) there is nowhere to follow up: wait for the answer.
            message = future.result(timeout=self.budget if url else None)
        except FutureTimeout:
            ack(response_type="ephemeral", text=WORKING)
            # On the pool, never in this thread: had the answer finished just now, the callback would run here and
            # hold the acknowledgement for as long as the post takes.
            future.add_done_callback(lambda finished: self._hand_on(finished, url, command, done))
            return
        except Exception:
            log.exception("command failed", extra={"event": "command_failed", "command": command.get("command")})
            ack(response_type="ephemeral", text=FAILED)
            done("failed")
            return
        ack(response_type="ephemeral", text=message.text, blocks=message.blocks)
        done("inline")

    def _hand_on(self, finished: Future, url: str, command: dict, done: Callable[[str], None]) -> None:
        try:
            self._pool.submit(self._follow_up, finished, url, command, done)
        except RuntimeError:  # the service is stopping (the pool takes nothing new): post from this pool thread
            self._follow_up(finished, url, command, done)

    def _follow_up(self, finished: Future, url: str, command: dict, done: Callable[[str], None]) -> None:
        try:
            message = finished.result()
        except Exception:
            log.exception("command failed", extra={"event": "command_failed", "command": command.get("command")})
            message = Message(FAILED, [])
        try:
            status = self._post(url, message)
        except Exception:
            log.exception("follow-up failed", extra={"event": "follow_up_failed", "command": command.get("command")})
            done("failed")
            return
        log.info(
            "slow answer followed up",
            extra={"event": "command_followed_up", "command": command.get("command"), "status": status},
        )
        done("followed_up" if status == 200 else "failed")

    def shutdown(self) -> None:
        """Wait for answers being built and their follow-ups (a stopping service drains them like requests)."""
        self._pool.shutdown(wait=True)
