"""The web dashboard: pages served by the service itself under /dashboard, behind Slack sign-in.

Why pages served here, not Streamlit: the dashboard must show only what its viewer may see in Slack, so it has to
run the same visibility rules on the same store with the same identity; the service already has the store, the
rules, a production WSGI server (waitress), metrics and the secret that signs the sign-in links. Streamlit would be
a second server with its own session model and no notion of a Slack user, and a heavy dependency for a handful of
tables and charts. Here every page is one GET rendered on the server (no JavaScript), so it also works behind a
strict Content-Security-Policy.

Sign-in: `/salesintel dashboard` in Slack answers with a link for that Slack user, signed, valid for
`bot.dashboard.link_minutes` and usable once (`bot.dashboard_access`). Opening it shows whom it signs in and a
"Sign in" button, and spends nothing: a link checker, a mail scanner's prefetch or a second tab cannot use it up.
The button POSTs the token from that page; a POST from any other site (`Sec-Fetch-Site`, else `Origin`) is refused,
so a page elsewhere cannot sign a visitor in as someone else with a link of theirs without the visitor seeing whom
and clicking. Signing in sets a signed session cookie (HttpOnly, SameSite=Lax, Secure when the public address is
https) and redirects to the pipeline page, so no bookmark or Referer carries the token (the browser's history keeps
the link page, which opens nothing once the link is spent). Every
request after that identifies the viewer again from the Slack id with the current configuration; pages and charts
are built for that viewer (`bot.dashboard_pages`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

import jinja2

from salesintel.alerts.formatting import FILTERS
from salesintel.alerts.render import TEMPLATE_DIR
from salesintel.alerts.visibility import Viewer, reps_in_scope
from salesintel.bot import dashboard_pages as pages
from salesintel.bot.answers import BotContext
from salesintel.bot.dashboard_access import SESSION, DashboardAccess
from salesintel.engine.risk_rule import is_at_risk

log = logging.getLogger("salesintel.dashboard")
COOKIE = "salesintel_session"
PREFIX = "/dashboard"
SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]
CHARTS = ("win_rate", "cohorts", "pipeline", "risk", "calibration")
SCOPED_CHARTS = ("pipeline", "risk")
"""Drawn from the viewer's own deals (`dashboard_pages.visible_scores`)."""
SIGN_IN_AGAIN = "Ask for a new link in Slack with /salesintel dashboard."
MAX_FORM_BYTES = 4096
"""The sign-in form holds one token."""


def html_environment() -> jinja2.Environment:
    """Autoescaped: everything from the CRM is text on these pages, never markup."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.filters["when"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "—"
    env.tests["at_risk"] = is_at_risk
    return env


class Dashboard:
    """A WSGI application for every path under /dashboard."""

    def __init__(
        self,
        context: Callable[[], BotContext],
        viewer: Callable[[str, dict], Viewer],
        access: DashboardAccess,
        now: Callable[[], datetime],
        secure_cookies: bool = False,
        public_url: str | None = None,
    ):
        """`public_url`: the address people reach the dashboard at (`bot.dashboard.public_url`); a sign-in POST
        must come from its origin (behind a proxy, the Host the service sees is the proxy's)."""
        self.context, self.viewer, self.access, self.now = context, viewer, access, now
        self.secure_cookies = secure_cookies
        self.public_origin = _origin(public_url) if public_url else None
        self.env = html_environment()
        self._charts: OrderedDict[tuple, tuple] = OrderedDict()
        self._charts_lock = threading.Lock()

    def __call__(self, environ: dict, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "").rstrip("/") or PREFIX
        if path == f"{PREFIX}/login" and method == "POST":  # the form on the link's page
            return self._login(start_response, environ)
        if path == f"{PREFIX}/logout" and method == "POST":  # a form on our own pages (form-action 'self')
            self.access.sign_out(_cookie_value(environ), self.now())
            page = self._message("Signed out", f"You are signed out. {SIGN_IN_AGAIN}", None, "")
            return self._send(start_response, "200 OK", page, headers=[("Set-Cookie", self._cookie("", max_age=0))])
        if method not in ("GET", "HEAD"):
            return self._send(start_response, "405 Method Not Allowed", b"GET only", "text/plain", [("Allow", "GET")])
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if path == f"{PREFIX}/login":
            if method != "GET":
                return self._send(start_response, "200 OK", b"", headers=[("Allow", "GET, POST")])
            return self._confirm(start_response, query.get("token"))

        claims = self.access.session(_cookie_value(environ), self.now())
        if claims is None:
            page = self._message("Sign in", f"Sign in with a link from Slack. {SIGN_IN_AGAIN}", None, "")
            return self._send(start_response, "401 Unauthorized", page)
        try:
            return self._page(start_response, path, query, claims.slack_id)
        except pages.NoRefresh as error:
            return self._send(start_response, "200 OK", self._message("No data yet", str(error), None, claims.slack_id))

    def _page(self, start_response, path: str, query: dict, slack_id: str):
        ctx = self.context()
        viewer = self.viewer(slack_id, ctx.known_users)
        who = viewer.person or slack_id
        if path == PREFIX:
            data = pages.overview(ctx, viewer)
            drawn = self._charts_for(ctx, viewer, ("win_rate", "cohorts", "pipeline", "risk"))
            data["charts"] = [chart for chart in drawn if chart is not None]
            return self._render(start_response, "overview", "Pipeline", PREFIX, who, data)
        if path == f"{PREFIX}/deals":
            data = pages.deals(ctx, viewer, _int(query.get("offset")))
            return self._render(start_response, "deals", "Deals", path, who, data)
        if path.startswith(f"{PREFIX}/deals/"):
            typed = path.removeprefix(f"{PREFIX}/deals/")  # PATH_INFO is decoded already
            try:
                data = pages.deal(ctx, viewer, typed)
            except (pages.NotVisible, pages.DealLookupError) as refused:
                page = self._message("Deal", str(refused), pages.page_data(ctx, viewer), who)
                return self._send(start_response, "404 Not Found", page)
            return self._render(start_response, "deal", data["deal_id"], f"{PREFIX}/deals", who, data)
        if path == f"{PREFIX}/winrates":
            data = pages.winrates(ctx, viewer, query.get("field"))
            return self._render(start_response, "winrates", "Win rates", path, who, data)
        if path == f"{PREFIX}/model":
            data = pages.model(ctx, viewer)
            chart = self._charts_for(ctx, viewer, ("calibration",))[0]
            data["calibration_alt"] = chart.alt if chart else ""
            return self._render(start_response, "model", "Model", path, who, data)
        if path == f"{PREFIX}/alerts":
            data = pages.alert_history(ctx, viewer, _int(query.get("offset")))
            return self._render(start_response, "alerts", "Alerts", path, who, data)
        if path.startswith(f"{PREFIX}/charts/") and path.endswith(".png"):
            name = path.removeprefix(f"{PREFIX}/charts/").removesuffix(".png")
            chart = self._charts_for(ctx, viewer, (name,))[0] if name in CHARTS else None
            if chart is None:
                return self._send(start_response, "404 Not Found", b"no such chart", "text/plain")
            return self._send(start_response, "200 OK", chart.png, "image/png")
        return self._send(start_response, "404 Not Found", self._message("Not found", "No such page.", None, who))

    def _charts_for(self, ctx: BotContext, viewer: Viewer, names: tuple[str, ...]) -> list:
        """Charts drawn from what this viewer may see (the pipeline and risk charts from their deals only), kept
        per refresh and scope: drawing costs about 0.1 s each."""
        refresh = ctx.refresh()
        if refresh is None:
            return [None for _ in names]
        scope = reps_in_scope(viewer, ctx.settings.alerts.routing)
        everyone = ctx.settings.bot.visibility == "everyone" or scope is None
        key_scope = "all" if everyone else tuple(sorted(scope or ()))
        found = []
        for name in names:
            # Only the pipeline and risk charts depend on whose deals they show; the others are drawn once
            key = (refresh.id, refresh.computed_at, name, key_scope if name in SCOPED_CHARTS else "all")
            with self._charts_lock:
                cached = self._charts.get(key)
            if cached is None:
                cached = (self._draw(ctx, viewer, refresh, name),)
                with self._charts_lock:
                    self._charts[key] = cached
                    while len(self._charts) > 64:
                        self._charts.popitem(last=False)
            found.append(cached[0])
        return found

    @staticmethod
    def _draw(ctx: BotContext, viewer: Viewer, refresh, name: str):
        from salesintel.alerts import charts  # matplotlib: imported only when a page draws

        metrics = refresh.metrics
        if name == "win_rate":
            return charts.win_rate_chart(metrics.trend)
        if name == "cohorts":
            return charts.cohort_chart(metrics.trend)
        if name == "calibration":
            evaluation = metrics.model.get("evaluation") or {}
            return charts.calibration_chart((evaluation.get("calibration") or {}).get("bins"))
        scores = pages.visible_scores(ctx, viewer, refresh)  # SCOPED_CHARTS
        return charts.pipeline_chart(scores) if name == "pipeline" else charts.risk_chart(scores, metrics.risk_rule)

    def _confirm(self, start_response, token: str | None):
        """The link's page: whom it signs in, and the button that does. Spends nothing."""
        claims = self.access.link_claims(token, self.now())
        if claims is None:
            return self._link_refused(start_response)
        ctx = self.context()
        person = self.viewer(claims.slack_id, ctx.known_users).person
        who = f"{person} ({claims.slack_id})" if person else claims.slack_id
        data = {"page": None, "token": token, "signing_in_as": who}
        # This page only: the form's POST then carries its real Origin (under no-referrer, browsers send "null")
        return self._render(start_response, "login", "Sign in", "", "", data, [("Referrer-Policy", "strict-origin")])

    def _link_refused(self, start_response):
        log.info("dashboard link refused", extra={"event": "dashboard_link_refused"})
        message = f"This sign-in link has expired or was used already. {SIGN_IN_AGAIN}"
        return self._send(start_response, "403 Forbidden", self._message("Sign in", message, None, ""))

    def _login(self, start_response, environ: dict):
        """The link page's form: spends the link and starts a session, if the POST came from that page."""
        if not _same_origin(environ, self.public_origin):
            log.warning("dashboard sign-in from another site refused", extra={"event": "dashboard_cross_site_login"})
            message = f"Sign in with the button on the page your link opens. {SIGN_IN_AGAIN}"
            return self._send(start_response, "403 Forbidden", self._message("Sign in", message, None, ""))
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_FORM_BYTES:
            return self._send(start_response, "413 Content Too Large", b"sign-in form too large", "text/plain")
        form = parse_qs(environ["wsgi.input"].read(length).decode("utf-8", "replace"))
        claims = self.access.redeem_link((form.get("token") or [None])[0], self.now())
        if claims is None:
            return self._link_refused(start_response)
        cookie = self._cookie(self.access.sign(claims.slack_id, SESSION, self.now()), int(self.access.session_seconds))
        log.info("dashboard sign-in", extra={"event": "dashboard_sign_in", "user": claims.slack_id})
        headers = [("Location", PREFIX), ("Set-Cookie", cookie), *SECURITY_HEADERS]
        start_response("303 See Other", [("Content-Length", "0"), *headers])
        return [b""]

    def _cookie(self, value: str, max_age: int) -> str:
        secure = "; Secure" if self.secure_cookies else ""
        return f"{COOKIE}={value}; Path={PREFIX}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"

    def _render(self, start_response, template: str, title: str, here: str, who: str, data: dict, headers=()):
        body = self.env.get_template(f"dashboard/{template}.html.j2").render(title=title, here=here, who=who, **data)
        return self._send(start_response, "200 OK", body.encode(), headers=headers)

    def _message(self, heading: str, message: str, page, who: str) -> bytes:
        template = self.env.get_template("dashboard/message.html.j2")
        return template.render(title=heading, heading=heading, message=message, page=page, here="", who=who).encode()

    @staticmethod
    def _send(start_response, status: str, body: bytes, content_type="text/html; charset=utf-8", headers=()):
        """`headers` are added to the security headers, replacing one of the same name."""
        named = {name.lower() for name, _ in headers}
        security = [header for header in SECURITY_HEADERS if header[0].lower() not in named]
        start_response(
            status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *security, *headers]
        )
        return [body]


def _same_origin(environ: dict, public_origin: str | None) -> bool:
    """Whether a POST came from one of our own pages: the browser's `Sec-Fetch-Site`, else its `Origin` (scheme,
    host and port) against the public address, or without one the Host asked for. Neither header sent (not a
    browser): nothing to forge."""
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site:
        return site == "same-origin"
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return True
    expected = public_origin or _origin(f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}")
    return _origin(origin) == expected


def _origin(url: str) -> str:
    """scheme://host[:port], lower case, the default port left out (as browsers send Origin); "null" stays "null"."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not scheme or not host:
        return "null"
    default = {"http": 80, "https": 443}.get(scheme)
    try:
        port = parts.port
    except ValueError:
        return "null"
    return f"{scheme}://{host}{f':{port}' if port and port != default else ''}"


def _cookie_value(environ: dict) -> str | None:
    try:
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
    except CookieError:
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel else None


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
