"""The gate's policy on its own: numbers in, a decision out (the real-model scenarios are in
test_promotion.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from include.flights import gating
from include.mlops import gate
from include.mlops.evaluation import evaluate

RNG = np.random.default_rng(3)
N = 4000
LABELS = RNG.integers(0, 2, N)
SLICE = np.where(np.arange(N) % 4 == 0, "EWR", "JFK")
CARRIER = np.where(np.arange(N) % 3 == 0, "AA", "UA")


def scores(p: np.ndarray) -> gate.Scores:
    evaluation = evaluate(LABELS, p, 0.3, {"origin": SLICE, "carrier": CARRIER})
    return gate.Scores(evaluation.overall, evaluation.slices, p)


def noisy(signal: float) -> np.ndarray:
    """Probabilities that rank the labels better the larger `signal` is (rounded: ties happen)."""
    return np.round(1 / (1 + np.exp(-(signal * (LABELS - 0.5) + RNG.normal(size=N)))), 2)


GOOD, BETTER = noisy(1.0), noisy(2.0)
FACTS = gate.Operational(latency_ms_per_10k=30.0, model_mb=1.5)
RULES = gating.load_rules()


def test_weighted_metrics_equal_scikit_learn_with_sample_weights() -> None:
    weights = RNG.integers(0, 3, (4, N)).astype(np.float32)
    aucs = gate._metric("roc_auc", LABELS, GOOD, weights)
    losses = gate._metric("log_loss", LABELS, GOOD, weights)
    for w, auc, loss in zip(weights, aucs, losses, strict=True):
        assert auc == pytest.approx(roc_auc_score(LABELS, GOOD, sample_weight=w), abs=1e-9)
        assert loss == pytest.approx(log_loss(LABELS, GOOD, sample_weight=w), abs=1e-6)


def test_the_bootstrap_interval_holds_the_difference_and_is_zero_for_the_same_model() -> None:
    observed, low, high = gate.paired_bootstrap(LABELS, BETTER, GOOD, resamples=500)
    assert observed == pytest.approx(roc_auc_score(LABELS, BETTER) - roc_auc_score(LABELS, GOOD))
    assert 0 < low < observed < high
    assert gate.paired_bootstrap(LABELS, GOOD, GOOD, resamples=500) == (0.0, 0.0, 0.0)
    assert gate.paired_bootstrap(LABELS, BETTER, GOOD, resamples=500) == (observed, low, high)  # seeded


def test_a_clearly_better_candidate_is_promoted_with_every_check_recorded() -> None:
    decision = gate.decide(RULES, LABELS, scores(BETTER), scores(GOOD), FACTS)
    assert decision.outcome == "promote" and decision.reasons == []
    kinds = {check.kind for check in decision.checks}
    assert kinds == {"value", "change", "significance", "slice", "operational"}
    significance = next(c for c in decision.checks if c.kind == "significance")
    assert significance.numbers["ci_low"] > 0


def test_the_same_predictions_are_not_promoted_when_significance_is_required() -> None:
    decision = gate.decide(RULES, LABELS, scores(GOOD), scores(GOOD), FACTS)
    assert decision.outcome == "reject"
    assert decision.reasons == [next(c.detail for c in decision.checks if c.kind == "significance")]
    relaxed = gate.Rules.from_dict(RULES.to_dict() | {"significance": {"require": False}})
    assert gate.decide(relaxed, LABELS, scores(GOOD), scores(GOOD), FACTS).outcome == "promote"


def test_a_slice_regression_rejects_a_candidate_better_on_average() -> None:
    broken = BETTER.copy()
    ewr = SLICE == "EWR"
    broken[ewr] = 1 - broken[ewr]  # upside down for one airport
    decision = gate.decide(
        gate.Rules.from_dict({"slices": {"columns": ["origin"]}}), LABELS, scores(broken), scores(GOOD)
    )
    assert decision.outcome == "reject"
    assert len(decision.reasons) == 1 and decision.reasons[0].startswith("slice origin=EWR (1000 rows)")


def test_without_a_champion_the_absolute_checks_decide() -> None:
    assert gate.decide(RULES, LABELS, scores(GOOD), None, FACTS).outcome == "first-model"
    constant = np.full(N, LABELS.mean())
    decision = gate.decide(RULES, LABELS, scores(constant), None, FACTS)
    assert decision.outcome == "reject"
    assert any("roc_auc 0.5000 is outside >= 0.55" in reason for reason in decision.reasons)


def test_a_missing_metric_fails_its_check() -> None:
    candidate = scores(BETTER)
    without = gate.Scores({k: v for k, v in candidate.overall.items() if k != "log_loss"}, {}, BETTER)
    decision = gate.decide(RULES, LABELS, without, scores(GOOD), FACTS)
    assert "log_loss is missing from the candidate's metrics" in decision.reasons


def test_operational_budgets_and_the_served_signature() -> None:
    slow = gate.Operational(latency_ms_per_10k=5000.0, model_mb=80.0, unserved_inputs=("weather__snow",))
    decision = gate.decide(RULES, LABELS, scores(BETTER), scores(GOOD), slow)
    assert [c.passed for c in decision.checks if c.kind == "operational"] == [False, False, False]
    assert "inputs the feature service does not serve: weather__snow" in decision.reasons


def test_change_rules_allow_a_margin_or_demand_an_improvement() -> None:
    a, b = {"roc_auc": 0.700, "log_loss": 0.50}, {"roc_auc": 0.702, "log_loss": 0.49}
    margin = gate.ChangeRule("roc_auc", min_improvement=-0.005)
    demand = gate.ChangeRule("roc_auc", min_improvement=0.01)
    relative = gate.ChangeRule("log_loss", min_improvement=-0.01, relative=True)
    assert gate._change(margin, a, b).passed  # 0.002 worse, inside the margin
    assert not gate._change(demand, a, b).passed
    check = gate._change(relative, a, b)  # 0.01 worse of 0.49: 2% worse
    assert not check.passed and check.observed == pytest.approx(-0.01 / 0.49)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"thresholds": []}, "unknown rule kinds: thresholds"),
        ({"values": [{"metric": "accuracy", "min": 0.9}]}, "unknown metric 'accuracy'"),
        ({"values": [{"metric": "roc_auc"}]}, "needs a min or a max"),
        ({"changes": [{"metric": "roc_auc", "min_improvement": 0, "direction": "up"}]}, "unknown fields direction"),
        ({"significance": {"metric": "precision"}}, "significance supports roc_auc"),
        ({"significance": {"resamples": 10}}, "at least 100 resamples"),
        ({"values": {"metric": "roc_auc"}}, "values is a list of rules"),
    ],
)
def test_malformed_rules_are_refused_with_the_problem_named(rules: dict, message: str) -> None:
    with pytest.raises(gate.RulesError, match=message):
        gate.Rules.from_dict(rules)


def test_rules_load_from_the_default_file_yaml_text_or_a_mapping(tmp_path) -> None:
    assert gating.load_rules() == gating.load_rules(gating.DEFAULT_RULES.read_text())
    assert gating.load_rules({"values": [{"metric": "brier", "max": 0.2}]}).values[0].max == 0.2
    with pytest.raises(gate.RulesError, match="does not exist"):
        gating.load_rules(str(tmp_path / "missing.yaml"))
