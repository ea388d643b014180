"""Scores of open deals: point-in-time (no leakage), the method named, reasons backed by numbers."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from salesintel.engine.asof import view_as_of
from salesintel.engine.evidence import gather_evidence
from salesintel.engine.features import LEAKY_COLUMNS, open_deal_features
from salesintel.engine.model import train
from salesintel.engine.scoring import METHOD_MODEL, METHOD_RULES, METHOD_SHRUNK, score_open_deals
from salesintel.engine.segments import compare_segments
from salesintel.engine.settings import MetricsSettings, ModelSettings
from salesintel.engine.shrinkage import shrink
from tests.engine_fixtures import LATER, bundled, space_for, synthetic

MODEL, METRICS = ModelSettings(), MetricsSettings()


def scores_as_of(deals, as_of, snapshot_taken=LATER):
    view = view_as_of(deals, as_of, snapshot_taken)
    model = train(view.history, as_of, space_for(view), MODEL, METRICS)
    segments = compare_segments(view.history, model.space, METRICS)
    evidence = gather_evidence(view.history, model.space, segments)
    return {s.deal_id: s for s in score_open_deals(view, evidence, model, 1, model.space, MODEL, METRICS)}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    data, deals = synthetic(tmp_path_factory.mktemp("planted"), deals=12_000, seed=5)
    return deals


@pytest.mark.parametrize("snapshot_taken", [LATER, date(2024, 1, 1)], ids=["replay", "live snapshot"])
def test_a_closed_only_column_that_predicts_perfectly_does_not_move_open_scores(planted, snapshot_taken):
    as_of = date(2024, 1, 1)
    leaky = planted.copy()
    closed = leaky["outcome"].notna()
    leaky.loc[closed, "deal_stage"] = np.where(leaky.loc[closed, "outcome"] == "Won", "Negotiation", "Qualified")
    before, after = scores_as_of(planted, as_of, snapshot_taken), scores_as_of(leaky, as_of, snapshot_taken)
    assert before.keys() == after.keys() and len(before) > 500
    assert all(before[d].p_win == after[d].p_win for d in before)


def test_rewriting_every_later_outcome_does_not_move_scores(planted):
    as_of = date(2024, 1, 1)
    rewritten = planted.copy()
    later = rewritten["closed_date"] > pd.Timestamp(as_of)
    rewritten.loc[later, "outcome"] = "Won"
    before, after = scores_as_of(planted, as_of), scores_as_of(rewritten, as_of)
    assert all(before[d].p_win == after[d].p_win for d in before)


def test_the_model_never_sees_a_closed_only_column(planted):
    view = view_as_of(planted, date(2024, 1, 1), LATER)
    model = train(view.history, date(2024, 1, 1), space_for(view), MODEL, METRICS)
    assert not set(LEAKY_COLUMNS) & {*model.encoding.levels, *model.encoding.numbers}
    assert not set(LEAKY_COLUMNS) & set(open_deal_features(view.open, model.space).columns)


def test_an_open_deal_is_scored_at_the_landmark_its_age_has_reached(planted):
    view = view_as_of(planted, date(2024, 1, 1), LATER)
    features = open_deal_features(view.open, space_for(view, ModelSettings(landmarks=[0, 30, 60, 90])))
    expected = np.select(
        [view.open["age_days"] >= 90, view.open["age_days"] >= 60, view.open["age_days"] >= 30], [90, 60, 30], 0
    )
    assert (features["landmark"].to_numpy() == expected).all()


def test_planted_data_is_scored_by_the_model_with_significant_reasons(planted):
    scores = scores_as_of(planted, date(2024, 1, 1))
    riskiest = max(scores.values(), key=lambda s: s.risk)
    assert riskiest.method.startswith(METHOD_MODEL) and riskiest.model_id == 1
    assert riskiest.reasons and all(r.significant and r.effect < 0 for r in riskiest.reasons)
    assert any("won (n=" in r.text for r in riskiest.reasons)


def test_the_bundled_data_falls_back_to_shrunk_rates_and_says_so():
    scores = scores_as_of(bundled(), date(2024, 3, 1))
    assert len(scores) == 702
    assert {s.method for s in scores.values()} == {METHOD_SHRUNK}
    assert all(s.model_id is None for s in scores.values())
    spread = np.ptp([s.p_win for s in scores.values()])
    assert spread < 0.05, "without signal, scores stay near the base rate"
    assert all(not r.significant and r.effect == 0 for s in scores.values() for r in s.reasons)


def test_too_little_history_falls_back_to_rules(planted):
    view = view_as_of(planted, date(2023, 1, 20), LATER)
    assert len(view.history) < METRICS.min_sample
    space = space_for(view)
    evidence = gather_evidence(view.history, space)
    scores = score_open_deals(view, evidence, None, None, space, MODEL, METRICS)
    assert scores and {s.method for s in scores} == {METHOD_RULES}
    assert {s.p_win for s in scores} == {METRICS.default_win_probability}


def test_shrinkage_pulls_chance_variation_all_the_way_to_the_overall_rate():
    result = shrink(pd.Series([45, 46, 44]), pd.Series([100, 100, 100]), overall=0.45)
    assert result.prior_strength == np.inf
    assert list(result.table["shrunk"]) == [0.45, 0.45, 0.45]


def test_shrinkage_keeps_real_differences_and_pulls_small_groups_harder():
    result = shrink(pd.Series([200, 800, 6]), pd.Series([1000, 1000, 10]), overall=1006 / 2010)
    shrunk = result.table["shrunk"]
    assert shrunk.iloc[0] == pytest.approx(0.2, abs=0.01) and shrunk.iloc[1] == pytest.approx(0.8, abs=0.01)
    assert abs(shrunk.iloc[2] - result.overall) < abs(0.6 - result.overall)
