"""The web dashboard, end to end: `salesintel run` on a free port with the Slack stand-in; `/salesintel dashboard`
is sent signed as Slack signs it; the link it answers with is opened in a real headless Chromium (Debian's, driven
by Selenium), which clicks through the pages and takes screenshots. Each viewer sees what Slack would show them and
nothing more."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from salesintel.alerts.ledger import AlertLedger
from salesintel.bot.dashboard_access import LINK, SESSION, DashboardAccess
from salesintel.engine.ingest import read_snapshot
from salesintel.engine.refresh import EngineSettings, refresh
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store import Store
from salesintel.engine.synth import SynthSpec, generate
from tests import slack_requests as slack
from tests.slack_standin import SlackStandIn
from tests.test_service_http import SECRET, free_port, start_http_service

USERS = {
    "rep_1": {"slack": "U001", "manager": "mgr_a"},
    "rep_2": {"slack": "U002", "manager": "mgr_a"},
    "rep_3": {"slack": "U003", "manager": "mgr_b"},
    "mgr_a": {"slack": "U901"},
    "mgr_b": {"slack": "U902"},
}
HOSTILE = "<script>document.title='pwned'</script> & Co"


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        message = "Chromium and chromedriver are needed (apt-get install chromium chromium-driver; .ci/run does)"
        if os.environ.get("SALESINTEL_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return browser, driver


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    config = {
        "timezone": "America/New_York",
        "alerts": {"routing": {"users": USERS}, "control_share": 0.0},
        "bot": {
            "visibility": "owner_and_managers",
            "executives": ["UEXEC"],
            "dashboard": {"public_url": f"http://127.0.0.1:{port}"},
        },
    }
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    data = generate(SynthSpec(deals=4000, seed=21))
    csv = tmp / "crm.csv"
    data.crm.to_csv(csv, index=False)
    store = Store.open(tmp / "store.db")
    taken = datetime.now(UTC)
    store.save_snapshot(read_snapshot(csv, IngestSettings()), taken, taken)
    as_of = data.spec.snapshot_date
    refresh(store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), as_of, taken)
    latest = store.latest_refresh()
    scores = sorted(store.scores(latest.id), key=lambda s: -s.risk)
    deals = {rep: [s for s in scores if s.sales_rep_id == rep] for rep in ("rep_1", "rep_2", "rep_3")}
    with store.db.conn:
        store.db.execute("UPDATE deals SET deal_name = ? WHERE deal_id = ?", [HOSTILE, deals["rep_1"][0].deal_id])
    ledger = AlertLedger(store)
    with store.transaction():
        mine = ledger.open_episode(
            "high_value_at_risk", deals["rep_1"][0].deal_id, 0.8, False, ["user:rep_1", "user:mgr_a"], {}, taken
        )
        theirs = ledger.open_episode(
            "high_value_at_risk", deals["rep_3"][0].deal_id, 0.8, False, ["user:rep_3", "user:mgr_b"], {}, taken
        )
    ledger.acknowledge(mine.id, "U001", taken + timedelta(hours=1))
    ledger.snooze(theirs.id, taken + timedelta(days=7), "U003", taken + timedelta(hours=1))
    standin = SlackStandIn().start()
    process, base, log_path = start_http_service(tmp, port, as_of.isoformat(), standin.url, ready="done")
    yield {
        "base": base,
        "deals": deals,
        "mine": mine.id,
        "theirs": theirs.id,
        "store": tmp / "store.db",
        "total": len(scores),
        "log": log_path,
    }
    process.kill()
    standin.stop()


@pytest.fixture(scope="module")
def browser():
    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def link_for(service, user: str) -> str:
    status, body = slack.send(
        service["base"] + "/slack/events",
        slack.slash_command("/salesintel", "dashboard", user),
        "application/x-www-form-urlencoded",
        SECRET,
    )
    assert status == 200, body
    answer = json.loads(body)
    assert answer["response_type"] == "ephemeral", "a sign-in link is for the person who asked only"
    button = answer["blocks"][0]["accessory"]
    assert button["url"].startswith(service["base"] + "/dashboard/login?token=")
    return button["url"]


def sign_in(driver, service, user: str) -> None:
    """As a person does: the link from Slack, then the page's "Sign in" button."""
    driver.delete_all_cookies()
    driver.get(link_for(service, user))
    assert user in driver.find_element(By.ID, "signing-in-as").text, "the page says whom the link signs in"
    follow(driver, driver.find_element(By.ID, "sign-in"))
    assert driver.current_url == service["base"] + "/dashboard", "the token is gone from the address bar"


def follow(driver, element) -> None:
    """Click a link or submit button and wait for the next page: a click returns before a form's POST has loaded.
    While the old page is being torn down, chromedriver may answer a question about it with a generic "node does not
    belong to the document" error rather than a stale-element one: either means the old page is gone."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def gone(_) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" in str(error):
                return True
            raise
        return False

    WebDriverWait(driver, 15).until(gone)
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def screenshot(driver, tmp_path: Path, name: str) -> None:
    """Saved (and kept in $SALESINTEL_SCREENSHOTS when set); a blank page would be one colour."""
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path))
    if os.environ.get("SALESINTEL_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["SALESINTEL_SCREENSHOTS"]) / path.name)
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[1] >= 1000 and pixels.std() > 0.05


def owners_in(driver, table_id: str) -> set[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tr")[1:]
    return {row.find_elements(By.TAG_NAME, "td")[6].text for row in rows}


def test_a_rep_signs_in_from_slack_and_clicks_through_their_own_pipeline(service, browser, tmp_path):
    sign_in(browser, service, "U001")
    assert browser.title == "Pipeline · salesintel"
    assert "rep_1" in browser.find_element(By.CLASS_NAME, "who").text
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) == 4
    for image in images:
        assert browser.execute_script("return arguments[0].naturalWidth", image) > 300, image.get_attribute("src")
        assert image.get_attribute("alt"), "every chart states its numbers in its alt text"
    pipeline_alt = next(i.get_attribute("alt") for i in images if i.get_attribute("src").endswith("/pipeline.png"))
    live = [s for s in service["deals"]["rep_1"] if not s.stale]
    assert f"{len(live)} live deals" in pipeline_alt, "the pipeline chart is drawn from this rep's deals only"
    screenshot(browser, tmp_path, "dashboard-rep-pipeline")

    follow(browser, browser.find_element(By.ID, "nav-deals"))
    assert browser.title == "Deals · salesintel"
    assert owners_in(browser, "deals") == {"rep_1"}
    assert f"{len(service['deals']['rep_1'])} open deals you may see" in browser.find_element(By.ID, "summary").text
    assert browser.find_elements(By.CSS_SELECTOR, "#deals li"), "each deal's reasons are listed"
    screenshot(browser, tmp_path, "dashboard-rep-deals")

    riskiest = service["deals"]["rep_1"][0].deal_id
    follow(browser, browser.find_element(By.LINK_TEXT, riskiest))
    answer = browser.find_element(By.ID, "deal-answer").text
    assert riskiest in answer and "Do next" in answer
    assert HOSTILE in answer, "a hostile deal name is shown as text"
    assert browser.title.startswith(riskiest) and browser.find_elements(By.TAG_NAME, "script") == []
    assert browser.execute_script("return document.title") != "pwned"
    history = browser.find_element(By.ID, "alerts").text
    assert "U001" in history and "high_value_at_risk" in history, "the acknowledgement and who gave it"
    screenshot(browser, tmp_path, "dashboard-rep-deal")


def test_a_rep_cannot_reach_another_teams_deal_alert_or_rep_figures(service, browser):
    sign_in(browser, service, "U001")
    other = service["deals"]["rep_3"][0].deal_id
    browser.get(f"{service['base']}/dashboard/deals/{other}")
    message = browser.find_element(By.ID, "message").text
    assert message.startswith(f"I can't find a deal {other} among the deals you can see")
    browser.get(f"{service['base']}/dashboard/deals/D99999")
    assert browser.find_element(By.ID, "message").text.startswith("I can't find a deal D99999 among"), (
        "a deal that does not exist reads the same: ids cannot be enumerated"
    )
    browser.get(f"{service['base']}/dashboard/alerts")
    table = browser.find_element(By.ID, "alerts").text
    assert other not in table and service["deals"]["rep_1"][0].deal_id in table

    follow(browser, browser.find_element(By.ID, "nav-win-rates"))
    fields = [a.get_attribute("id") for a in browser.find_elements(By.CSS_SELECTOR, "nav.fields a")]
    assert "field-lead_source" in fields
    follow(browser, browser.find_element(By.ID, "field-lead_source"))
    header = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#segments th")]
    assert header[:4] == ["Lead source", "Win rate", "95% interval", "n"] and "q (FDR)" in header
    if "field-sales_rep_id" in fields:
        follow(browser, browser.find_element(By.ID, "field-sales_rep_id"))
        reps = {
            row.find_element(By.TAG_NAME, "td").text
            for row in browser.find_elements(By.CSS_SELECTOR, "#segments tr")[1:]
        }
        assert reps <= {"rep_1"}, "a rep sees no other rep's win rate"
    assert "rep_3" not in browser.find_element(By.TAG_NAME, "main").text


def test_a_manager_sees_the_team_and_an_executive_everything(service, browser, tmp_path):
    sign_in(browser, service, "U901")
    browser.get(f"{service['base']}/dashboard/deals")
    team = service["deals"]["rep_1"] + service["deals"]["rep_2"]
    assert f"{len(team)} open deals you may see" in browser.find_element(By.ID, "summary").text
    assert owners_in(browser, "deals") <= {"rep_1", "rep_2"}
    sign_in(browser, service, "UEXEC")
    browser.get(f"{service['base']}/dashboard/deals")
    assert f"{service['total']:,} open deals you may see" in browser.find_element(By.ID, "summary").text
    follow(browser, browser.find_element(By.ID, "next"))
    assert "Showing 51–100" in browser.find_element(By.ID, "summary").text
    follow(browser, browser.find_element(By.ID, "nav-model"))
    skill = browser.find_element(By.ID, "skill").text
    assert "AUC" in skill and "95% CI" in skill and "Brier skill" in skill
    calibration_rows = browser.find_elements(By.CSS_SELECTOR, "#calibration tr")
    assert len(calibration_rows) > 3
    image = browser.find_element(By.CSS_SELECTOR, "img[src$='calibration.png']")
    assert browser.execute_script("return arguments[0].naturalWidth", image) > 300
    assert "Calibration on the holdout, by bin: predicted" in image.get_attribute("alt")
    assert browser.find_element(By.ID, "drift").text.startswith("Field")
    screenshot(browser, tmp_path, "dashboard-executive-model")
    browser.get(f"{service['base']}/dashboard/alerts")
    table = browser.find_element(By.ID, "alerts").text
    assert service["deals"]["rep_3"][0].deal_id in table and "snoozed" in table.lower()


def test_a_link_works_once_a_session_ends_at_sign_out_and_strangers_see_no_deal(service, browser):
    link = link_for(service, "U002")
    browser.delete_all_cookies()
    browser.get(link)
    browser.get(link)  # opened twice (a second tab, a mail scanner's prefetch): nothing is spent by looking
    assert browser.find_element(By.ID, "signing-in-as").text == "rep_2 (U002)"
    follow(browser, browser.find_element(By.ID, "sign-in"))
    assert browser.current_url.endswith("/dashboard") and "rep_2" in browser.find_element(By.CLASS_NAME, "who").text
    browser.delete_all_cookies()
    browser.get(link)
    assert "expired or was used already" in browser.find_element(By.ID, "message").text
    sign_in(browser, service, "U002")
    browser.get(f"{service['base']}/dashboard/logout")  # what a cross-site link or image could make a browser do
    browser.get(f"{service['base']}/dashboard/deals")
    assert browser.find_element(By.ID, "summary"), "a GET does not sign anyone out"
    copied = browser.get_cookie("salesintel_session")["value"]
    follow(browser, browser.find_element(By.ID, "sign-out"))
    browser.get(f"{service['base']}/dashboard/deals")
    assert "Sign in with a link from Slack" in browser.find_element(By.ID, "message").text
    browser.add_cookie({"name": "salesintel_session", "value": copied, "path": "/dashboard"})
    browser.get(f"{service['base']}/dashboard/deals")
    assert "Sign in with a link from Slack" in browser.find_element(By.ID, "message").text, (
        "a copy of a signed-out session's cookie opens nothing"
    )
    browser.add_cookie({"name": "salesintel_session", "value": "eyJ1IjoiVUVYRUMifQ.forged", "path": "/dashboard"})
    browser.get(f"{service['base']}/dashboard/deals")
    assert "Sign in with a link from Slack" in browser.find_element(By.ID, "message").text
    sign_in(browser, service, "U777")  # a Slack user the configuration does not know
    assert "I don't know who you are in the CRM" in browser.find_element(By.TAG_NAME, "main").text
    browser.get(f"{service['base']}/dashboard/deals")
    assert "0 open deals you may see" in browser.find_element(By.ID, "summary").text


def test_a_page_on_another_site_cannot_sign_a_visitor_in_with_someone_elses_link(service, browser):
    """Login CSRF: a site that got a link of its own (or someone's) and posts it from the visitor's browser is
    refused, and the link stays unspent for the person it was made for."""
    link = link_for(service, "U003")
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["token"][0]
    form = urllib.parse.urlencode({"token": token}).encode()
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        request = urllib.request.Request(service["base"] + "/dashboard/login", data=form, headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 403 and "Sign in with the button" in refused.value.read().decode()
    evil = Path(service["store"]).parent / "evil.html"
    evil.write_text(
        f'<form id="f" method="post" action="{service["base"]}/dashboard/login">'
        f'<input type="hidden" name="token" value="{token}"></form><script>document.getElementById("f").submit()'
        "</script>"
    )
    browser.delete_all_cookies()
    browser.get(evil.as_uri())  # a page elsewhere submits the form as soon as it loads
    WebDriverWait(browser, 15).until(
        lambda driver: (
            driver.current_url.startswith(service["base"])
            and driver.execute_script("return document.readyState") == "complete"
        )
    )
    assert "Sign in with the button" in browser.find_element(By.ID, "message").text
    assert browser.get_cookie("salesintel_session") is None
    sign_in(browser, service, "U003")  # the link still works for its person, from its own page


@pytest.mark.parametrize(
    "headers, public_url, same",
    [
        ({"HTTP_SEC_FETCH_SITE": "same-origin", "HTTP_ORIGIN": "null"}, None, True),  # Chromium, our own form
        ({"HTTP_SEC_FETCH_SITE": "cross-site"}, None, False),
        ({"HTTP_SEC_FETCH_SITE": "same-site"}, None, False),  # another port or subdomain of ours
        ({"HTTP_ORIGIN": "https://si.example.com"}, "https://si.example.com/", True),  # behind a proxy: Host differs
        ({"HTTP_ORIGIN": "https://si.example.com:443"}, "https://SI.example.com", True),
        ({"HTTP_ORIGIN": "http://si.example.com"}, "https://si.example.com", False),  # another scheme
        ({"HTTP_ORIGIN": "https://si.example.com:8443"}, "https://si.example.com", False),
        ({"HTTP_ORIGIN": "null"}, "https://si.example.com", False),
        ({"HTTP_ORIGIN": "http://127.0.0.1:3000"}, None, True),  # no public address: the Host asked for
        ({"HTTP_ORIGIN": "http://evil.example"}, None, False),
        ({}, "https://si.example.com", True),  # not a browser: nothing to forge
    ],
)
def test_a_sign_in_post_must_come_from_our_own_origin(headers, public_url, same):
    from salesintel.bot.dashboard import _origin, _same_origin

    environ = {"HTTP_HOST": "127.0.0.1:3000", "wsgi.url_scheme": "http", **headers}
    assert _same_origin(environ, _origin(public_url) if public_url else None) is same


def test_the_links_page_lets_its_form_send_a_real_origin_and_no_token_in_a_referer(service):
    link = link_for(service, "U001")
    with urllib.request.urlopen(link, timeout=5) as page:
        assert page.headers.get_all("Referrer-Policy") == ["strict-origin"], "one policy, not no-referrer"
        assert page.headers["Cache-Control"] == "no-store"


def test_pages_refuse_what_a_browser_should_not_do(service):
    for path in ("/dashboard", "/dashboard/deals", "/dashboard/charts/risk.png"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(service["base"] + path, timeout=5)
        assert refused.value.code == 401
        assert refused.value.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in refused.value.headers["Content-Security-Policy"]
    request = urllib.request.Request(service["base"] + "/dashboard", data=b"x=1", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 405


def test_signed_tokens_expire_name_their_purpose_and_cannot_be_altered():
    spent: set[str] = set()

    def spend(key: str, at: float, keep_until: float) -> bool:
        new = key not in spent
        spent.add(key)
        return new

    access = DashboardAccess(b"k" * 32, 600, 3600, spend, lambda key, at: key in spent)
    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    link = access.sign("U001", LINK, now)
    assert access.verify(link, SESSION, now) is None, "a link is not a session"
    assert access.verify(link, LINK, now + timedelta(minutes=10)) is None, "expired"
    body, signature = link.split(".")
    forged = body.replace(body[5], "A" if body[5] != "A" else "B") + "." + signature
    assert access.verify(forged, LINK, now) is None
    assert DashboardAccess(b"x" * 32, 600, 3600, spend, spent.__contains__).verify(link, LINK, now) is None
    assert access.redeem_link(link, now + timedelta(minutes=9)).slack_id == "U001"
    assert access.redeem_link(link, now + timedelta(minutes=9)) is None, "once"
    session = access.sign("U001", SESSION, now)
    assert access.session(session, now).slack_id == "U001"
    access.sign_out(session, now)
    assert access.session(session, now) is None, "signed out: every copy of the cookie"
