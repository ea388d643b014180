"""Model choice against ground truth: the family the data calls for wins, is calibrated, and says so; driver
intervals cover the planted effects about as often as they claim; a field declared only in config.yaml flows."""

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from salesintel.engine.asof import view_as_of
from salesintel.engine.drivers import estimate_drivers
from salesintel.engine.families import BOOSTED
from salesintel.engine.features import landmark_examples
from salesintel.engine.ingest import read_snapshot
from salesintel.engine.model import train
from salesintel.engine.settings import IngestSettings, Layout, MetricsSettings, ModelSettings
from salesintel.engine.synth import EXTRA_FIELDS, PLANTED_LOG_ODDS, SynthSpec, fields_layout, generate
from tests.engine_fixtures import as_store_frame, space_for

MODEL, METRICS = ModelSettings(), MetricsSettings()
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
INGEST = IngestSettings(layout="fields", layouts={"fields": Layout(**fields_layout())})


def with_fields(tmp_path, deals: int, seed: int, noise: bool = False):
    data = generate(SynthSpec(deals=deals, seed=seed, noise=noise, extra_fields=True))
    path = tmp_path / "crm.csv"
    data.crm.to_csv(path, index=False)
    frame = read_snapshot(path, INGEST).deals
    for column in ("created_date", "closed_date"):
        frame[column] = pd.to_datetime(frame[column])
    view = view_as_of(frame, data.spec.snapshot_date, data.spec.snapshot_date)
    return data, view, space_for(view, fields=EXTRA_FIELDS)


@pytest.fixture(scope="module")
def interaction(tmp_path_factory):
    data, view, space = with_fields(tmp_path_factory.mktemp("fields"), deals=40_000, seed=3)
    return data, view, train(view.history, data.spec.snapshot_date, space, MODEL, METRICS)


def test_trees_win_where_an_interaction_is_planted_and_match_the_oracle(interaction):
    data, view, model = interaction
    evaluation = model.evaluation
    assert model.has_skill and model.family == BOOSTED, evaluation["candidates"]
    trees, linear = (
        next(c for c in evaluation["candidates"] if c["family"] == f) for f in (BOOSTED, "logistic regression")
    )
    assert trees["chosen"] and not linear["chosen"] and trees["auc"]["auc"] > linear["auc"]["auc"]
    examples = landmark_examples(view.history, model.space)
    test = examples[examples["closed_date"] > pd.Timestamp(evaluation["split_date"])]
    oracle = roc_auc_score(
        test["won"], data.oracle_probability(test["deal_id"].to_numpy(), test["landmark"].to_numpy())
    )
    assert evaluation["auc"]["auc"] == pytest.approx(oracle, abs=0.01)
    assert evaluation["calibration"]["expected_calibration_error"] <= 0.03
    assert "gradient-boosted trees" in model.verdict and "logistic regression" in model.verdict


def test_every_extra_field_is_used_and_named_by_its_label(interaction):
    _, _, model = interaction
    labels = {f.label for f in model.space.fields}
    assert {"Company size", "Competitor", "Contacts", "Renewal", "Campaign", "Current contract ends"} <= labels
    renewal = next(d for d in model.drivers if d.label == "Renewal")
    assert {renewal.level, renewal.reference} == {"yes", "no"}
    assert {d.label for d in model.drivers} >= {"Company size", "Competitor"}


def test_reasons_come_from_the_chosen_model_and_find_the_interaction(interaction):
    _, view, model = interaction
    from salesintel.engine.features import open_deal_features

    features = open_deal_features(view.open, model.space)
    effects = model.contributions(features)
    globex_enterprise = (features["competitor"] == "Globex") & (features["company_size"] == "Enterprise")
    others = (features["competitor"] == "(not recorded)") & (features["company_size"] == "Mid-Market")
    assert effects.loc[globex_enterprise, "competitor"].mean() < -0.8
    assert abs(effects.loc[others, "competitor"].mean()) < 0.3


def test_no_signal_in_any_field_falls_back_and_says_no_skill(tmp_path):
    data, view, space = with_fields(tmp_path, deals=6_000, seed=5, noise=True)
    model = train(view.history, data.spec.snapshot_date, space, MODEL, METRICS)
    assert not model.has_skill and "adds nothing over the base rate" in model.verdict
    assert model.evaluation["brier_gain"]["low"] <= 0


def true_effect(feature: str, level: str) -> float:
    names = {"large": "≥$50k", "small": "<$10k"}
    truth = {(f, names.get(lvl, lvl)): v for (f, lvl), v in PLANTED_LOG_ODDS.items()}
    return truth.get((feature, level), 0.0)


def test_driver_intervals_cover_the_planted_effect_95_percent_of_the_time(tmp_path):
    covered, total = 0, 0
    for seed in range(30):
        data = generate(SynthSpec(deals=4_000, seed=200 + seed))
        deals = as_store_frame(data.crm, tmp_path)
        view = view_as_of(deals, data.spec.snapshot_date, data.spec.snapshot_date)
        for driver in estimate_drivers(view.history, space_for(view), METRICS, has_skill=True):
            if driver.status == "insufficient data":
                continue
            truth = true_effect(driver.feature, driver.level) - true_effect(driver.feature, driver.reference)
            covered += driver.low <= np.exp(truth) <= driver.high
            total += 1
    assert total > 900
    assert 0.93 <= covered / total <= 0.975, (covered, total)


def test_a_field_declared_only_in_config_flows_to_every_surface(tmp_path):
    """No code names these fields: config.yaml declares them, and ingest, segments, the model, a deal's reasons,
    /winrate, the monthly report and the backtest all use them by their labels."""
    import yaml
    from click.testing import CliRunner

    from salesintel.alerts.visibility import Viewer
    from salesintel.bot.answers import BotContext, winrate
    from salesintel.bot.cli import main
    from salesintel.bot.config import load_settings
    from salesintel.engine.store import Store
    from tests.engine_fixtures import ROOT

    data = generate(SynthSpec(deals=12_000, seed=8, extra_fields=True))
    data.crm.to_csv(tmp_path / "crm.csv", index=False)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["ingest"]["layouts"]["acme_crm"] = fields_layout()
    config["store"]["path"] = str(tmp_path / "store.db")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, ["--config", str(tmp_path / "config.yaml"), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    cli("ingest", str(tmp_path / "crm.csv"), "--layout", "acme_crm")
    as_of = data.spec.snapshot_date.isoformat()
    cli("refresh", "--as-of", as_of)
    metrics = json.loads(cli("metrics", "--json", "--as-of", as_of))
    used = {f["label"] for f in metrics["fields"]["used"]}
    assert {"Company size", "Competitor", "Contacts", "Renewal", "Campaign"} <= used
    assert metrics["model"]["family"] == BOOSTED and metrics["model"]["has_skill"]
    assert {c["family"] for c in metrics["model"]["evaluation"]["candidates"]} == {BOOSTED, "logistic regression"}
    assert any(s["field"] == "competitor" and s["value"] == "Globex" for s in metrics["segments"])
    store = Store.open(tmp_path / "store.db")
    scores = store.scores(store.latest_refresh().id)
    labels = {r.label for s in scores for r in s.reasons}
    assert any(label.startswith("Competitor Globex") for label in labels), labels
    globex = next(s for s in scores if any(r.label.startswith("Competitor Globex") for r in s.reasons))
    assert "Competitor Globex" in json.loads(cli("risk", globex.deal_id, "--json", "--as-of", as_of))["summary"]
    context = BotContext(store, load_settings(tmp_path / "config.yaml"), NOW, data.spec.snapshot_date)
    answer = winrate(context, Viewer("UEXEC", None, True), "competitor")
    text = json.dumps(answer.blocks) + answer.text
    assert "Globex" in text and "Acme" in text
    assert "gradient-boosted trees (chosen)" in cli("report", "monthly", "--as-of", as_of)
