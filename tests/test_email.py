"""Email digests: the daily, weekly and monthly reports also go by email, to a real local SMTP server (aiosmtpd,
STARTTLS with a certificate from a throwaway CA, AUTH), through the same outbox as Slack messages; what arrived is
parsed and compared with what the channel gets. Each recipient's digests fire on the report's schedule in their
own time zone, DST included."""

from __future__ import annotations

import base64
import io
import smtplib
import socket
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from salesintel.alerts.clock import SimulatedClock
from salesintel.alerts.delivery import Deliverer, PermanentError, TerminalSender
from salesintel.alerts.email_delivery import EmailSender, with_email
from salesintel.alerts.email_render import mrkdwn_to_html, mrkdwn_to_text
from salesintel.alerts.jobs import digest_jobs
from salesintel.alerts.outbox import Outbox
from salesintel.alerts.render import Message, escape_mrkdwn
from salesintel.alerts.runs import AlertEnvironment, digest_run, report_with_charts
from salesintel.alerts.schedule import Scheduler
from salesintel.alerts.settings import REPORT_KINDS, AlertsSettings
from salesintel.bot.config import ConfigError, load_settings
from salesintel.engine.ingest import read_snapshot
from salesintel.engine.refresh import EngineSettings, refresh
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store import Store
from tests.engine_fixtures import ROOT
from tests.mail_server import PASSWORD, USER, start_mail_server

NOW = datetime(2024, 3, 4, 14, tzinfo=UTC)
SERVICE_ZONE = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def refreshed_file(tmp_path_factory) -> Path:
    """The bundled data loaded and refreshed once; each test works on its own copy."""
    path = tmp_path_factory.mktemp("email") / "template.db"
    store = Store.open(path)
    taken = datetime(2026, 11, 24, tzinfo=UTC)
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    refresh(store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), date(2024, 3, 1), taken)
    store.close()
    return path


@pytest.fixture
def store(refreshed_file, tmp_path) -> Store:
    copy = tmp_path / "s.db"
    with sqlite3.connect(refreshed_file) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return Store.open(copy)


@pytest.fixture
def mail(tmp_path):
    server = start_mail_server(tmp_path)
    yield server
    server.stop()


def _settings(mail, **email) -> AlertsSettings:
    config = {
        "enabled": True,
        "from": "salesintel <alerts@acme.example>",
        "smtp": {"host": "127.0.0.1", "port": mail.port, "username": USER, "ca_file": str(mail.ca_file)},
        "digests": {"weekly": ["cro@acme.example", "mgr_1"], "daily": ["mgr_1", "vp@acme.example"]},
        **email,
    }
    users = {"mgr_1": {"email": "mgr1@acme.example", "tz": "Europe/Berlin"}, "rep_1": {"manager": "mgr_1"}}
    return AlertsSettings.model_validate(
        {"email": config, "routing": {"users": users}, "delivery": {"channel_pace_seconds": 0}}
    )


def _deliverer(store, settings, clock, password=PASSWORD) -> Deliverer:
    return Deliverer(store, with_email(TerminalSender(io.StringIO()), settings, password), settings, clock)


def test_a_weekly_digest_arrives_as_html_and_text_with_its_charts_inline_and_says_what_slack_says(store, mail):
    settings = _settings(mail)
    env = AlertEnvironment(store, settings, SERVICE_ZONE)
    occurrence = NOW.isoformat()
    assert digest_run("weekly", env, NOW, occurrence, "email:cro@acme.example")
    assert digest_run("weekly", env, NOW, occurrence, "email:mgr1@acme.example")
    assert not digest_run("weekly", env, NOW, occurrence, "email:cro@acme.example"), "queued once per fire time"
    clock = SimulatedClock(NOW)
    assert _deliverer(store, settings, clock).deliver_due() == 2
    assert _deliverer(store, settings, clock).deliver_due() == 0, "nothing is sent twice"
    received = {m["To"]: m for m in mail.messages()}
    assert set(received) == {"cro@acme.example", "mgr1@acme.example"}
    assert {r.mail_from for r in mail.handler.received} == {"alerts@acme.example"}

    email = received["cro@acme.example"]
    slack, _ = report_with_charts("weekly", env, NOW)
    assert email["Subject"] == slack.blocks[0]["text"]["text"]  # "Weekly pipeline health · 2024-03-01"
    assert email.get_content_type() == "multipart/alternative"
    plain, html = email.get_body(("plain",)).get_content(), email.get_body(("html",)).get_content()
    # the same answer builder: every line of every Slack section is in the plain part, and in the HTML
    for block in slack.blocks:
        if block["type"] == "section":
            for line in block["text"]["text"].splitlines():
                assert mrkdwn_to_text(line) in plain
                assert mrkdwn_to_html(line) in html
    assert "Win rate" in plain and "<strong>Win rate</strong>" in html
    # the charts: inline images the HTML refers to, with alt text that states their numbers
    images = [p for p in email.walk() if p.get_content_type() == "image/png"]
    assert len(images) == len(slack.files) == 4  # win rate by close and by cohort, pipeline, risk
    for chart, image in zip(slack.files, images, strict=True):
        cid = image["Content-ID"].strip("<>")
        assert f'src="cid:{cid}"' in html
        assert image.get_content() == chart.png
        assert chart.alt.replace("'", "&#x27;").replace('"', "&quot;") in html or chart.alt[:40] in html
        assert chart.alt in plain
    sent = {m.target: m for m in Outbox(store).rows("sent")}
    assert sent["email:cro@acme.example"].slack_ts == email["Message-ID"], "the outbox keeps the Message-ID"


def test_crm_text_cannot_inject_html_into_an_email():
    hostile = escape_mrkdwn('Acme <script>alert(1)</script> "quoted" & <img src=x onerror=alert(1)>')
    html = mrkdwn_to_html(f"*Deal* {hostile} <https://crm.example/deal?id=1&x=2|open>")
    assert "<script>" not in html and "<img" not in html and '"quoted"' not in html
    assert "&lt;script&gt;" in html and "&quot;quoted&quot;" in html
    assert '<a href="https://crm.example/deal?id=1&amp;x=2">open</a>' in html
    assert mrkdwn_to_text(hostile) == 'Acme <script>alert(1)</script> "quoted" & <img src=x onerror=alert(1)>'


def test_a_busy_server_is_retried_and_a_refused_mailbox_is_reported_once(store, mail):
    settings = _settings(mail)
    outbox = Outbox(store)
    with store.transaction():
        outbox.enqueue("a", "daily", "email:vp@acme.example", Message("Daily *digest*", []), NOW)
        outbox.enqueue("b", "daily", "email:gone@acme.example", Message("Daily *digest*", []), NOW)
    mail.handler.replies.append("451 4.3.0 mailbox busy, try again")
    mail.handler.refuse["gone@acme.example"] = "550 5.1.1 no such mailbox"
    clock = SimulatedClock(NOW)
    deliverer = _deliverer(store, settings, clock)
    assert deliverer.deliver_due() == 1  # only the ops report of the refused one (to the terminal here)
    rows = {m.dedupe_key: m for m in outbox.rows()}
    assert rows["a"].status == "pending" and "451" in rows["a"].last_error
    assert rows["b"].status == "failed" and "gone@acme.example refused: 5.1.1 no such mailbox" in rows["b"].last_error
    [ops] = [m for m in outbox.rows("sent") if m.kind == "ops"]
    assert "could not deliver daily message" in ops.text and "gone@acme.example" in ops.text
    clock.advance(timedelta(minutes=10))
    assert deliverer.deliver_due() == 1  # the retried digest
    assert [m["To"] for m in mail.messages()] == ["vp@acme.example"]


def test_a_digest_in_flight_when_its_sender_died_arrives_once(store_target, mail, tmp_path):
    """A sender that died mid-DATA left its claim behind; the server never got the end of the message, so it kept
    nothing. The next leader sends it again: it arrives exactly once."""
    store = Store.open(store_target)
    settings = _settings(mail)
    outbox = Outbox(store)
    with store.transaction():
        outbox.enqueue("weekly:x:email:cro@acme.example", "weekly", "email:cro@acme.example", Message("W", []), NOW)
    [message] = outbox.rows("pending")
    assert outbox.claim(message.id, "dead-process", NOW, timedelta(minutes=2))
    # what the dead sender got through: the envelope and half the message, then the connection was gone
    with socket.create_connection(("127.0.0.1", mail.port)) as raw:
        smtp = raw.makefile("rwb")
        smtp.readline()
        for line in (b"EHLO dying\r\n", b"MAIL FROM:<alerts@acme.example>\r\n", b"RCPT TO:<cro@acme.example>\r\n"):
            smtp.write(line)
            smtp.flush()
            while smtp.readline()[3:4] == b"-":
                pass
        smtp.write(b"DATA\r\nSubject: half\r\n\r\nthe first half of the digest")
        smtp.flush()
    assert mail.messages() == []
    clock = SimulatedClock(NOW + timedelta(minutes=1))
    deliverer = _deliverer(store, settings, clock)
    assert deliverer.recover_orphans() == {"found": 0, "requeued": 1}
    assert deliverer.deliver_due() == 1
    assert deliverer.deliver_due() == 0
    assert [m["To"] for m in mail.messages()] == ["cro@acme.example"]
    assert outbox.rows("sent")[0].note == "in flight at a crash; not found in Slack: sent again"


def test_a_resend_after_the_servers_acceptance_carries_the_same_message_id(store, mail):
    """The one window SMTP leaves (the server said 250, the sender died before recording it): the message is
    sent again, with the same Message-ID, which mail readers fold into one."""
    settings = _settings(mail)
    outbox = Outbox(store)
    with store.transaction():
        outbox.enqueue("k", "daily", "email:vp@acme.example", Message("D", []), NOW)
    [message] = outbox.rows("pending")
    sender = EmailSender(settings, PASSWORD)
    sender.send(message)  # accepted; then the process "dies" before mark_sent
    sender.send(message)  # the requeued attempt
    first, second = mail.messages()
    assert first["Message-ID"] == second["Message-ID"] and first["Message-ID"].endswith("@acme.example>")


def test_starttls_and_login_are_enforced_and_the_password_never_shows(store, tmp_path):
    plain_server = start_mail_server(tmp_path, starttls=False)
    try:
        message = Outbox(store)
        with store.transaction():
            message.enqueue("k", "daily", "email:vp@acme.example", Message("D", []), NOW)
        [row] = message.rows("pending")
        with pytest.raises(PermanentError, match="does not offer STARTTLS"):
            EmailSender(_settings(plain_server), PASSWORD).send(row)
        assert plain_server.messages() == [], "nothing goes over a connection that could not be encrypted"
    finally:
        plain_server.stop()
    secure = start_mail_server(tmp_path)
    try:
        with pytest.raises(PermanentError, match="535") as refused:
            EmailSender(_settings(secure), "wrong-password").send(row)
        assert "wrong-password" not in str(refused.value)
        with pytest.raises(PermanentError, match="SALESINTEL_SMTP_PASSWORD is not"):
            EmailSender(_settings(secure), None).send(row)
        wrong_ca = _settings(secure, smtp={"host": "127.0.0.1", "port": secure.port, "username": USER})
        with pytest.raises(PermanentError, match="the certificate of 127.0.0.1:[0-9]+ is not trusted"):
            EmailSender(wrong_ca, PASSWORD).send(row)  # the system's CAs do not know the throwaway one
        assert secure.messages() == []
    finally:
        secure.stop()


def test_daily_digests_fire_at_eight_in_each_recipients_own_zone_across_daylight_saving(store, mail):
    """Berlin's recipient at 08:00 Berlin time and the address with no zone at 08:00 New York time (the
    service's), over the weeks both change their clocks (New York on 10 March, Berlin on 31 March 2024)."""
    settings = _settings(mail)
    env = AlertEnvironment(store, settings, SERVICE_ZONE)
    jobs = [job for job in digest_jobs(env) if job.name.startswith("daily-")]
    assert {job.name for job in jobs} == {"daily-email:mgr1@acme.example", "daily-email:vp@acme.example"}
    start = datetime(2024, 3, 7, tzinfo=UTC)
    clock = SimulatedClock(start)
    scheduler = Scheduler(store, jobs, clock, timedelta(minutes=120), start)
    while clock.now() < datetime(2024, 4, 3, tzinfo=UTC):
        scheduler.tick()
        clock.advance(timedelta(minutes=15))
    rows = [m for m in Outbox(store).rows() if m.target.startswith("email:")]
    by_target: dict[str, list[datetime]] = {}
    for row in rows:
        by_target.setdefault(row.target, []).append(row.created_at)
    berlin, new_york = by_target["email:mgr1@acme.example"], by_target["email:vp@acme.example"]
    assert len(berlin) == len(new_york) == 27  # every day, 7 March to 2 April, once
    assert {t.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") for t in berlin} == {"08:00"}
    assert {t.astimezone(SERVICE_ZONE).strftime("%H:%M") for t in new_york} == {"08:00"}
    utc_hours = {t.date(): t.astimezone(UTC).hour for t in berlin}
    assert utc_hours[date(2024, 3, 30)] == 7 and utc_hours[date(2024, 3, 31)] == 6  # CET, then CEST
    utc_hours = {t.date(): t.astimezone(UTC).hour for t in new_york}
    assert utc_hours[date(2024, 3, 9)] == 13 and utc_hours[date(2024, 3, 10)] == 12  # EST, then EDT


def test_email_settings_name_what_is_wrong(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "alerts:\n  email:\n    enabled: true\n    digests:\n      weekly: [nobody]\n      hourly: [a@b.example]\n"
        "  routing:\n    users:\n      mgr_1: {email: m@b.example, tz: Mars/Olympus}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert "hourly" in str(error.value)
    config.write_text(
        "alerts:\n  email:\n    enabled: true\n    digests:\n      weekly: [nobody]\n"
        "  routing:\n    users:\n      mgr_1: {email: m@b.example, tz: Mars/Olympus}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert "'nobody' is neither an address nor a person" in str(error.value)
    assert "unknown time zone 'Mars/Olympus'" in str(error.value)
    config.write_text(
        "alerts:\n  email:\n    enabled: true\n    digests:\n      daily: [rep_7]\n"
        "  routing:\n    users:\n      rep_7: {email: r7@b.example, manager: mgr_1}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert "'rep_7' manages nobody under routing.users; a digest is its channel's report" in str(error.value)


def test_someone_listed_as_a_person_and_as_an_address_gets_one_digest(mail):
    from salesintel.alerts.routing import digest_recipients

    settings = _settings(mail, digests={"daily": ["mgr_1", "MGR1@acme.example", "vp@acme.example"]})
    found = digest_recipients("daily", settings.email, settings.routing)
    assert [r.target for r in found] == ["email:mgr1@acme.example", "email:vp@acme.example"]
    assert found[0].zone == ZoneInfo("Europe/Berlin"), "the person's entry, with their time zone, is kept"


def test_the_charts_travel_in_the_outbox_as_they_were_drawn(store, mail):
    settings = _settings(mail)
    env = AlertEnvironment(store, settings, SERVICE_ZONE)
    assert digest_run("weekly", env, NOW, NOW.isoformat(), "email:cro@acme.example")
    [row] = Outbox(store).rows("pending")
    slack, _ = report_with_charts("weekly", env, NOW)
    assert [base64.b64decode(a["png"]) for a in row.attachments] == [c.png for c in slack.files]


def test_email_test_sends_a_report_through_the_configured_server_or_says_why_not(
    store, mail, salesintel, tmp_path, monkeypatch
):
    config = tmp_path / "config.yaml"
    smtp = {"host": "127.0.0.1", "port": mail.port, "username": USER, "ca_file": str(mail.ca_file)}
    config.write_text(
        yaml.safe_dump({"timezone": "America/New_York", "alerts": {"email": {"enabled": True, "smtp": smtp}}})
    )
    db = tmp_path / "s.db"
    monkeypatch.setenv("SALESINTEL_SMTP_PASSWORD", PASSWORD)
    ran = salesintel(tmp_path, "email-test", "vp@acme.example", "--report", "weekly", config=config, db=db)
    assert ran.returncode == 0, ran.stderr
    assert f"sent the weekly report to vp@acme.example via 127.0.0.1:{mail.port} (STARTTLS, as {USER})" in ran.stdout
    [email] = mail.messages()
    assert email["Subject"].startswith("Weekly pipeline health")
    assert len([p for p in email.walk() if p.get_content_type() == "image/png"]) == 4
    assert Outbox(store).rows() == [], "a test goes straight to the server, not through the outbox"
    monkeypatch.setenv("SALESINTEL_SMTP_PASSWORD", "wrong")
    ran = salesintel(tmp_path, "email-test", "vp@acme.example", config=config, db=db)
    assert ran.returncode == 1 and "not sent: SMTP 535" in ran.stderr and "wrong" not in ran.stderr


def test_a_failed_goodbye_after_the_server_took_the_digest_is_still_a_delivery(store, mail):
    """QUIT answered badly (or the connection dropped at QUIT) once DATA was accepted: the message is the
    server's; it is neither sent again nor called failed."""

    class GoodbyeFails(smtplib.SMTP):
        def quit(self):
            super().quit()
            raise smtplib.SMTPResponseException(421, b"4.4.2 closing: timeout")

    outbox = Outbox(store)
    with store.transaction():
        outbox.enqueue("k", "daily", "email:vp@acme.example", Message("D", []), NOW)
    [row] = outbox.rows("pending")
    assert EmailSender(_settings(mail), PASSWORD, connect=GoodbyeFails).send(row)[0] == "email"
    assert len(mail.messages()) == 1
    with pytest.raises(ValueError, match="would send the password unencrypted"):
        _settings(mail, smtp={"host": "127.0.0.1", "port": mail.port, "username": USER, "starttls": False})
    missing_ca = _settings(mail, smtp={"host": "127.0.0.1", "port": mail.port, "ca_file": "/nonexistent/ca.pem"})
    with pytest.raises(PermanentError, match="cannot use alerts.email.smtp.ca_file /nonexistent/ca.pem"):
        EmailSender(missing_ca, PASSWORD).send(row)


def test_a_digest_recipient_without_a_configured_zone_gets_it_at_eight_in_the_zone_slack_gives(
    store, mail, tmp_path, caplog
):
    """mgr_2 has a Slack id and no `tz:`: the service's scheduler asks Slack's users.info (over HTTP, to the
    stand-in) once, and schedules each of their digests in Tokyo. When Slack names a zone this machine lacks, or
    cannot be reached, the service's zone, logged; unreachable, it asks nobody else and tries again later."""
    import threading

    from salesintel.alerts.jobs import RefreshJob
    from salesintel.bot.app import BotDeps
    from salesintel.bot.config import Credentials, Settings
    from salesintel.bot.service import ZONES_RETRY, Worker
    from salesintel.engine.store import ThreadLocalStore
    from tests.slack_standin import SlackStandIn

    alerts = _settings(mail).model_dump(by_alias=True)
    for manager, slack_id, rep in (("mgr_2", "U0M2", "rep_2"), ("mgr_3", "U0M3", "rep_3")):
        alerts["routing"]["users"][manager] = {"slack": slack_id, "email": f"{manager}@acme.example"}
        alerts["routing"]["users"][rep] = {"manager": manager}
    alerts["email"]["digests"] = {kind: ["mgr_1", "mgr_2", "mgr_3", "vp@acme.example"] for kind in REPORT_KINDS}
    settings = Settings.model_validate({"alerts": alerts, "timezone": SERVICE_ZONE.key})
    standin = SlackStandIn(timezones={"U0M2": "Asia/Tokyo", "U0M3": "Mars/Olympus"}).start()
    stores = ThreadLocalStore(tmp_path / "w.db")
    clock = SimulatedClock(NOW)
    try:
        env = AlertEnvironment(stores.get(), settings.alerts, SERVICE_ZONE)
        credentials = Credentials.from_environment(
            {"SLACK_BOT_TOKEN": "xoxb-z", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": standin.url}
        )
        job = RefreshJob(env, EngineSettings(settings.metrics, settings.model), settings.ingest)
        worker = Worker(BotDeps(stores, settings, clock), credentials, job, NOW, threading.Event())

        def zones() -> dict[str, ZoneInfo]:
            return {job.name: job.trigger.timezone for job in worker.scheduler().jobs if "-email:" in job.name}

        built = zones()
        for kind in REPORT_KINDS:
            assert built[f"{kind}-email:mgr_2@acme.example"] == ZoneInfo("Asia/Tokyo")
            assert built[f"{kind}-email:mgr_3@acme.example"] == SERVICE_ZONE, "a zone this machine lacks"
            assert built[f"{kind}-email:mgr1@acme.example"] == ZoneInfo("Europe/Berlin"), "config's tz: first"
            assert built[f"{kind}-email:vp@acme.example"] == SERVICE_ZONE, "an address alone: the service's zone"
        asked = [c.args["user"] for c in standin.calls if c.method == "users.info"]
        assert sorted(asked) == ["U0M2", "U0M3"], "each person asked once, not once per digest"
        assert [r.zone for r in caplog.records if getattr(r, "event", None) == "unknown_time_zone"] == ["Mars/Olympus"]

        # Slack down when the scheduler is next built (a new connection, say): nobody waits on it twice
        standin.stop()
        worker._scheduler = None
        worker._timezones.clear()
        caplog.clear()
        built = zones()
        assert built["daily-email:mgr_2@acme.example"] == SERVICE_ZONE
        unknown = [r.person for r in caplog.records if getattr(r, "event", None) == "digest_zone_unknown"]
        assert unknown == ["mgr_2"], "mgr_3 is not asked once Slack could not be reached"
        assert worker.scheduler() is worker.scheduler(), "not rebuilt at once"
        standin = SlackStandIn(timezones={"U0M2": "Asia/Tokyo"}).start()
        worker.credentials = Credentials.from_environment(
            {"SLACK_BOT_TOKEN": "xoxb-z", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": standin.url}
        )
        clock.advance(ZONES_RETRY)
        assert zones()["daily-email:mgr_2@acme.example"] == ZoneInfo("Asia/Tokyo"), "asked again later"
    finally:
        standin.stop()
        stores.close()


def test_managers_listed_for_slack_digests_get_the_report_by_dm_at_its_hour_in_their_own_zone(store):
    """`alerts.routing.digests`: the weekly report also reaches each listed manager by Slack DM, at Monday 09:00
    in their zone (Berlin from config, Tokyo from Slack's users.info), with its charts in the DM's thread."""
    from salesintel.alerts.delivery import SlackSender, slack_client
    from tests.slack_standin import SlackStandIn

    users = {
        "mgr_b": {"slack": "U0B", "tz": "Europe/Berlin"},
        "mgr_t": {"slack": "U0T"},
        "rep_1": {"manager": "mgr_b"},
        "rep_2": {"manager": "mgr_t"},
    }
    settings = AlertsSettings.model_validate(
        {
            "routing": {"users": users, "digests": {"weekly": ["mgr_b", "mgr_t"]}},
            "delivery": {"channel_pace_seconds": 0},
        }
    )
    standin = SlackStandIn(timezones={"U0T": "Asia/Tokyo"}).start()
    try:
        env = AlertEnvironment(store, settings, SERVICE_ZONE)
        sender = SlackSender(slack_client("xoxb-d", standin.url), settings, store)
        jobs = [
            job
            for job in digest_jobs(env, lambda person: sender.timezone_of(f"user:{person}"))
            if job.name.startswith("weekly-")
        ]
        zones = {job.name: job.trigger.timezone for job in jobs}
        assert zones == {"weekly-user:mgr_b": ZoneInfo("Europe/Berlin"), "weekly-user:mgr_t": ZoneInfo("Asia/Tokyo")}
        start = datetime(2024, 3, 3, 12, tzinfo=UTC)  # a Sunday
        clock = SimulatedClock(start)
        scheduler = Scheduler(store, jobs, clock, timedelta(minutes=120), start)
        deliverer = Deliverer(store, sender, settings, clock)
        while clock.now() < datetime(2024, 3, 5, tzinfo=UTC):
            scheduler.tick()
            deliverer.deliver_due()
            clock.advance(timedelta(minutes=15))
        dms = [m for m in Outbox(store).rows() if m.target.startswith("user:")]
        assert {m.status for m in dms} == {"sent"} and len(dms) == 2 * 5, "each report and its 4 charts"
        rows = {m.target: m for m in dms if m.kind == "weekly"}
        assert set(rows) == {"user:mgr_b", "user:mgr_t"}
        local = {
            target: m.created_at.astimezone(zones[f"weekly-{target}"]).strftime("%a %H:%M")
            for target, m in rows.items()
        }
        assert local == {"user:mgr_b": "Mon 09:00", "user:mgr_t": "Mon 09:00"}
        assert rows["user:mgr_t"].created_at == datetime(2024, 3, 4, 0, tzinfo=UTC), "09:00 in Tokyo: Sunday in UTC"
        for slack_id in ("U0B", "U0T"):
            [dm] = standin.posts("D" + slack_id.removeprefix("U"))
            assert dm.args["text"] == rows["user:mgr_b"].text, "the channel's report, in a DM"
            thread = standin.replies(dm.args["channel"], dm.args["answered_ts"])
            assert len([f for message in thread for f in message.get("files", [])]) == 4, "charts in its thread"
    finally:
        standin.stop()


def test_a_slack_digest_is_for_managers_only(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "alerts:\n  routing:\n    users:\n      rep_7: {slack: U7, manager: mgr_1}\n      mgr_1: {slack: U1}\n"
        "    digests: {daily: [rep_7], hourly: [mgr_1]}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert "digests: use daily, weekly, monthly (got hourly)" in str(error.value)
    config.write_text(config.read_text().replace(", hourly: [mgr_1]", ""))
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert "routing.digests.daily: 'rep_7' manages nobody under routing.users" in str(error.value)
    config.write_text(
        config.read_text().replace("daily: [rep_7]", "daily: [mgr_9]").replace("rep_7: {slack: U7, ", "rep_7: {")
    )
    config.write_text(config.read_text().replace("manager: mgr_1}", "manager: mgr_9}"))
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert "routing.digests.daily: 'mgr_9' is not a person under routing.users with a slack id or an email" in str(
        error.value
    ), "a manager named only as someone's manager cannot be found in Slack"
