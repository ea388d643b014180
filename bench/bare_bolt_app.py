"""The floors for `bench/deal_risk_ramp.py`: a bare Bolt app answering `/deal-risk` with a fixed sentence, served the
same way as `salesintel run` (waitress, 8 threads, signature verification on). What Bolt and the server cost alone.

`default`: Bolt as it comes (the listener runs on Bolt's pool while the request thread polls for the ack every
10 ms): the floor issue 13 set its goal against. `inline`: the listener runs in the request's thread
(`process_before_response=True`), as salesintel runs its commands: the leaner floor.

    .venv/bin/python bench/bare_bolt_app.py PORT SIGNING_SECRET [default|inline]
"""

from __future__ import annotations

import sys

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.authorization import AuthorizeResult
from waitress.server import create_server


def main() -> None:
    port, secret = int(sys.argv[1]), sys.argv[2]
    inline = (sys.argv[3] if len(sys.argv) > 3 else "default") == "inline"

    def authorize(enterprise_id=None, team_id=None, user_id=None, logger=None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token="xoxb-bare")

    # Authorised the way salesintel's app is: a fixed token, no auth.test call per request.
    app = App(
        signing_secret=secret, authorize=authorize, token_verification_enabled=False, process_before_response=inline
    )

    @app.command("/deal-risk")
    def answer(ack, command) -> None:
        ack(text=f"{command['text']}: risk 55%, P(win) 45% (bare app)", response_type="ephemeral")

    create_server(SlackRequestHandler(app), host="127.0.0.1", port=port, threads=8, backlog=1024).run()


if __name__ == "__main__":
    main()
