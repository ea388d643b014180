"""Feedback tunes the real-time threshold: within bounds, checked against the control group and the holdout, never
silently (recorded, announced to the ops channel and the owner), and applied by the next refresh to every
surface's "at risk"."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from salesintel.alerts.ledger import AlertLedger
from salesintel.alerts.outbox import Outbox
from salesintel.alerts.render import render_message
from salesintel.alerts.reports import monthly_context
from salesintel.alerts.rules import HIGH_VALUE_AT_RISK
from salesintel.alerts.runs import AlertEnvironment, gather_inputs, realtime_run, report_message
from salesintel.alerts.settings import AlertsSettings, TuningSettings
from salesintel.alerts.tuning import KEEP, LOWER, RAISE, decide, tuning_run
from salesintel.engine.ingest import read_snapshot
from salesintel.engine.refresh import EngineSettings, refresh
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store import Store
from salesintel.engine.synth import SynthSpec, generate

SETTINGS = TuningSettings()


def _outcome(speaks: bool, share: float = 0.06, lift: float = 1.6) -> dict:
    return {
        "speaks": speaks,
        "share_flagged": {"rate": share},
        "lift": {"value": lift, "low": lift - 0.3, "high": lift + 0.3},
    }


def _rule(threshold=0.80, higher=True, lower=True) -> dict:
    return {
        "active": True,
        "threshold": threshold,
        "neighbours": {"higher": _outcome(higher), "lower": _outcome(lower, 0.14, 1.4)},
    }


def _control(alerted: float, held: float, p: float, enough=True) -> dict:
    return {
        "alerted": {"rate": alerted, "n": 120},
        "control": {"rate": held, "n": 60},
        "p_value": p,
        "enough": enough,
        "min_sample": 50,
    }


def test_mostly_not_useful_raises_the_threshold_a_step_when_the_holdout_supports_it():
    decision = decide(_rule(), 0.0, 6, 18, None, SETTINGS)
    assert decision.action == RAISE and decision.new_threshold == pytest.approx(0.85)
    assert decision.offset == pytest.approx(0.05)
    assert decision.reason.startswith("raised: 18 of 24 answers said Not useful (useful 25% (n=24; 95% CI 12–45%))")
    assert "risk > 85% flags 6% of deals with lift 1.60 (95% CI 1.30–1.90)" in decision.reason
    assert decision.reason.endswith("control group: no closed deals yet")


def test_mostly_useful_lowers_it_and_the_control_group_or_holdout_can_stop_either():
    assert decide(_rule(), 0.0, 20, 4, None, SETTINGS).action == LOWER
    blocked = decide(_rule(), 0.0, 20, 4, _control(0.45, 0.46, 0.8), SETTINGS)
    assert blocked.action == KEEP and "control group shows no significant benefit" in blocked.reason
    helps = decide(_rule(), 0.0, 4, 20, _control(0.55, 0.35, 0.01), SETTINGS)
    assert helps.action == KEEP and "control group shows alerts help" in helps.reason
    unsupported = decide(_rule(higher=False), 0.0, 4, 20, None, SETTINGS)
    assert unsupported.action == KEEP and "would not pass the rule's lift test" in unsupported.reason


def test_a_control_group_with_one_side_empty_is_said_in_words_not_a_crash():
    from salesintel.alerts.reports import control_comparison

    control = control_comparison([], [True, False], 30)
    decision = decide(_rule(), 0.0, 2, 30, control, SETTINGS)
    assert decision.action == RAISE
    assert "alerted deals won none closed yet (n=0) vs 50% (n=2) held back, too few to compare" in decision.reason


def test_no_change_on_few_answers_a_split_vote_a_silent_rule_or_past_its_bounds():
    assert "19 answers since the last change; 20 needed" in decide(_rule(), 0.0, 4, 15, None, SETTINGS).reason
    assert "not clearly above or below one half" in decide(_rule(), 0.0, 12, 12, None, SETTINGS).reason
    silent = decide({"active": False, "threshold": None}, 0.0, 0, 40, None, SETTINGS)
    assert silent.action == KEEP and "the rule is silent" in silent.reason
    at_bound = decide(_rule(threshold=0.93), 0.0, 2, 30, None, SETTINGS)
    assert at_bound.action == KEEP and "would leave its bounds (30%–95%" in at_bound.reason
    tuned = {**_rule(), "tuned": {"chosen_threshold": 0.65}}  # already 15 points above the rule's own 65%
    far = decide(tuned, 0.15, 2, 30, None, SETTINGS)
    assert far.action == KEEP and "±15% from the rule's own threshold" in far.reason
    back = decide(tuned, 0.15, 30, 2, None, SETTINGS)
    assert back.action == LOWER and back.offset == pytest.approx(0.10), "a step back toward it is allowed"
    low = {**_rule(threshold=0.20), "tuned": {"chosen_threshold": 0.20}}
    assert decide(low, 0.0, 2, 30, None, SETTINGS).action == RAISE, "a step toward the bounds is allowed"
    old = {"active": True, "threshold": 0.8}  # a refresh from before neighbours were measured
    assert "did not measure the holdout either side" in decide(old, 0.0, 2, 30, None, SETTINGS).reason


@pytest.fixture
def skilled_store(tmp_path):
    """Synthetic deals whose planted drivers give the model skill, so the risk rule speaks."""
    data = generate(SynthSpec(deals=4000, seed=21))
    csv = tmp_path / "crm.csv"
    data.crm.to_csv(csv, index=False)
    store = Store.open(tmp_path / "s.db")
    taken = datetime(2024, 6, 24, 12, tzinfo=UTC)
    store.save_snapshot(read_snapshot(csv, IngestSettings()), taken, taken)
    engine = EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings())
    refresh(store, engine, data.spec.snapshot_date, taken)
    return store, engine, data.spec.snapshot_date, taken


def test_feedback_moves_the_threshold_everywhere_with_a_record_and_an_announcement(skilled_store):
    store, engine, as_of, taken = skilled_store
    settings = AlertsSettings.model_validate(
        {"realtime": {"tuning": {"owner": "cro"}}, "routing": {"users": {"cro": {"slack": "UCRO"}}}}
    )
    env = AlertEnvironment(store, settings, ZoneInfo("America/New_York"))
    before = store.latest_refresh().metrics.risk_rule
    assert before["active"] and before["neighbours"]["lower"]["speaks"]
    ledger = AlertLedger(store)
    scores = sorted(store.scores(store.latest_refresh().id), key=lambda s: -s.risk)[:24]
    with store.transaction():
        alerts = [
            ledger.open_episode(HIGH_VALUE_AT_RISK, s.deal_id, s.risk, False, ["user:cro"], s, taken) for s in scores
        ]
    for index, alert in enumerate(alerts):
        ledger.record_feedback(alert.id, f"U{index}", useful=index >= 5, now=taken + timedelta(hours=1))

    # alerts opened before 1 December 2026 kept the score as a list: their owners are still read
    assert "unknown" not in AlertLedger(store).feedback_summary(taken)["reps"]
    now = taken + timedelta(hours=2)  # the same day: a refresh as of that date may apply what was decided on it
    note = tuning_run(env, now)
    assert note.startswith(f"lower to {before['threshold'] - 0.05:.0%}: lowered: 19 of 24 answers said Useful")
    [change] = store.alerts.threshold_changes()
    assert change.old_threshold == pytest.approx(before["threshold"]) and change.threshold_offset == -0.05
    assert change.evidence["useful"] == 19 and change.evidence["not_useful"] == 5
    told = {m.target: m for m in Outbox(store).rows() if m.dedupe_key.startswith("tuning:")}
    assert set(told) == {"channel:#salesintel-ops", "user:cro"}, "the ops channel and the owner"
    assert "moves from" in told["user:cro"].text and "salesintel alerts thresholds --reset" in told["user:cro"].text

    refresh(store, engine, as_of, now)  # the next refresh applies it
    after = store.latest_refresh().metrics.risk_rule
    assert after["threshold"] == pytest.approx(before["threshold"] - 0.05)
    assert after["open_flagged"]["count"] > before["open_flagged"]["count"], "a lower threshold flags more deals"
    assert after["source"] == "auto, tuned by feedback" and after["tuned"]["change"] == change.id
    weekly, _ = report_message("weekly", env, now)
    assert f"at risk = risk > {after['threshold']:.0%} (auto, tuned by feedback)" in weekly.text + json.dumps(
        weekly.blocks, ensure_ascii=False
    )
    monthly = render_message("monthly", **monthly_context(gather_inputs(env, store.latest_refresh(), now)))
    assert f"Threshold change #{change.id}" in json.dumps(monthly.blocks, ensure_ascii=False)

    again = tuning_run(env, now + timedelta(hours=3))
    assert "0 answers since the last change" in again, "answers given before a change do not count twice"
    later = tuning_run(env, now + timedelta(days=30))
    assert later.startswith("kept: the latest refresh is of 2024-06-24 (pinned or replayed)")
    assert len(store.alerts.threshold_changes()) == 1


def test_the_cli_lists_changes_and_resets_with_an_announcement(skilled_store, salesintel, tmp_path):
    store, engine, as_of, taken = skilled_store
    db = tmp_path / "s.db"
    ran = salesintel(tmp_path, "alerts", "thresholds", db=db)
    assert ran.returncode == 0 and "no threshold changes" in ran.stdout
    settings = AlertsSettings()
    env = AlertEnvironment(store, settings, ZoneInfo("UTC"))
    from salesintel.alerts.tuning import record_change

    rule = store.latest_refresh().metrics.risk_rule
    record_change(env, taken, 0.05, rule["threshold"], rule["threshold"] + 0.05, "raised: test", {})
    refresh(store, engine, as_of, taken + timedelta(hours=1))
    ran = salesintel(tmp_path, "alerts", "thresholds", "--reset", "--json", db=db)
    assert ran.returncode == 0, ran.stderr
    changes = json.loads(ran.stdout[ran.stdout.index("[") :])
    assert [c["offset"] for c in changes] == [0.05, 0.0]
    assert changes[1]["new_threshold"] == pytest.approx(rule["threshold"])
    assert changes[1]["reason"].startswith("reset by ")
    assert len([m for m in Outbox(store).rows() if m.dedupe_key.startswith("tuning:")]) == 2


def test_a_real_time_alert_keeps_its_score_as_an_object_whose_owner_feedback_reads(skilled_store):
    store, engine, as_of, taken = skilled_store
    env = AlertEnvironment(store, AlertsSettings(control_share=0.0), ZoneInfo("UTC"))
    assert realtime_run(env, taken)["new"] > 0
    alert = AlertLedger(store).listing()[0]
    assert isinstance(alert.payload, dict) and alert.payload["deal_id"] == alert.deal_id
    AlertLedger(store).record_feedback(alert.id, "U1", True, taken)
    assert AlertLedger(store).feedback_summary(taken)["reps"] == {alert.payload["sales_rep_id"]: (1, 0)}


def test_a_change_applies_only_when_tuning_is_on_and_to_dates_on_or_after_it(skilled_store):
    from dataclasses import replace

    from salesintel.alerts.tuning import record_change

    store, engine, as_of, taken = skilled_store
    env = AlertEnvironment(store, AlertsSettings(), ZoneInfo("UTC"))
    rule = store.latest_refresh().metrics.risk_rule
    record_change(env, taken, -0.05, rule["threshold"], rule["threshold"] - 0.05, "lowered: test", {})
    assert tuning_run(env, taken + timedelta(hours=1)).endswith("waits for the next refresh to apply it")
    refresh(store, engine, as_of - timedelta(days=1), taken)
    assert "tuned" not in store.latest_refresh().metrics.risk_rule, "a past date is not moved by a later change"
    off = replace(engine, risk=AlertsSettings(realtime={"tuning": {"enabled": False}}).realtime.risk_rule)
    refresh(store, off, as_of, taken)
    assert store.latest_refresh().metrics.risk_rule["threshold"] == pytest.approx(rule["threshold"])
    refresh(store, engine, as_of, taken)
    assert store.latest_refresh().metrics.risk_rule["threshold"] == pytest.approx(rule["threshold"] - 0.05)


def test_a_tuned_threshold_the_holdout_no_longer_supports_is_set_aside_not_silenced():
    import numpy as np

    from salesintel.engine.risk_rule import Tuning, choose_risk_rule
    from salesintel.engine.settings import RiskRuleSettings

    rng = np.random.default_rng(3)
    risk = rng.uniform(0, 0.9, 4000)
    lost = rng.uniform(0, 1, 4000) < risk
    deals = np.arange(4000)
    settings = RiskRuleSettings(target_share=0.2)
    own = choose_risk_rule(True, risk, lost, deals, settings)
    assert own["active"]
    tuned = choose_risk_rule(True, risk, lost, deals, settings, tuning=Tuning(0.5, 0.3, 0.99, 7, "2024-06-24"))
    assert tuned["active"] and tuned["threshold"] == pytest.approx(own["threshold"])
    assert "no longer passes the lift test" in tuned["tuned"]["set_aside"] and "Not tuned:" in tuned["reason"]
    moved = choose_risk_rule(True, risk, lost, deals, settings, tuning=Tuning(-0.05, 0.3, 0.99, 8, "2024-06-24"))
    assert moved["threshold"] == pytest.approx(own["threshold"] - 0.05) and moved["source"] == "auto, tuned by feedback"
    below = own["threshold"] + 0.2  # bounds above the rule's own threshold: a step toward them applies as decided
    toward = choose_risk_rule(True, risk, lost, deals, settings, tuning=Tuning(0.05, below, 0.99, 9, "2024-06-24"))
    assert toward["threshold"] == pytest.approx(own["threshold"] + 0.05)
