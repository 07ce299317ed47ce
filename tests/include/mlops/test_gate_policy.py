"""The gate's policy on its own: numbers in, a decision out (the real-model scenarios are in
tests/include/flights/test_promotion.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from include.flights import gating
from include.mlops import bootstrap, gate

RNG = np.random.default_rng(3)
N = 4000
LABELS = RNG.integers(0, 2, N)
ORIGIN = np.where(np.arange(N) % 4 == 0, "EWR", "JFK")
CARRIER = np.where(np.arange(N) % 3 == 0, "AA", "UA")
DEST = np.where(np.arange(N) % 25 == 0, "ATL", np.where(np.arange(N) % 50 == 1, "BTV", "LAX"))  # 160, 80 rows
ROWS = gate.EvaluationSet(LABELS, {"origin": ORIGIN, "carrier": CARRIER, "dest": DEST}, 0.3, base_rate=0.5)


def noisy(signal: float) -> np.ndarray:
    """Probabilities that rank the labels better the larger `signal` is (rounded: ties happen)."""
    return np.round(1 / (1 + np.exp(-(signal * (LABELS - 0.5) + RNG.normal(size=N)))), 2)


def model(name: str, p: np.ndarray) -> gate.Predictions:
    return gate.Predictions(name, p)


GOOD, BETTER = noisy(1.0), noisy(2.0)
FACTS = gate.Operational(model_mb=1.5, latency_ratio=1.1, latency_ms_per_10k=30.0)
RULES = gating.load_rules()


def test_weighted_metrics_equal_scikit_learn_with_sample_weights() -> None:
    weights = RNG.integers(0, 3, (4, N)).astype(np.float32)
    aucs = bootstrap.metric("roc_auc", LABELS, GOOD, weights)
    losses = bootstrap.metric("log_loss", LABELS, GOOD, weights)
    for w, auc, loss in zip(weights, aucs, losses, strict=True):
        assert auc == pytest.approx(roc_auc_score(LABELS, GOOD, sample_weight=w), abs=1e-9)
        assert loss == pytest.approx(log_loss(LABELS, GOOD, sample_weight=w), abs=1e-6)


def test_the_bootstrap_interval_holds_the_difference_and_is_zero_for_the_same_model() -> None:
    found = bootstrap.paired("roc_auc", LABELS, BETTER, GOOD, resamples=500)
    assert found.observed == pytest.approx(roc_auc_score(LABELS, BETTER) - roc_auc_score(LABELS, GOOD))
    assert 0 < found.low < found.observed < found.high
    assert bootstrap.paired("roc_auc", LABELS, GOOD, GOOD, resamples=500) == bootstrap.Difference(0.0, 0.0, 0.0)
    assert bootstrap.paired("roc_auc", LABELS, BETTER, GOOD, resamples=500) == found  # seeded


def test_a_clearly_better_candidate_is_promoted_with_every_check_recorded() -> None:
    decision = gate.decide(RULES, ROWS, model("candidate", BETTER), model("champion", GOOD), FACTS)
    assert decision.outcome == "promote" and decision.reasons == []
    kinds = {check.kind for check in decision.checks}
    assert kinds == {"value", "change", "significance", "slice", "operational"}
    significance = next(c for c in decision.checks if c.kind == "significance")
    assert significance.numbers["ci_low"] > 0
    assert set(decision.metrics) == {"candidate", "champion"}


def test_noninferiority_promotes_an_equal_model_and_a_required_improvement_does_not() -> None:
    """The default rule keeps a fresher model unless it is worse with confidence; a team that wants a
    proven improvement sets min_effect above zero, and then noise (the same predictions) is refused."""
    assert gate.decide(RULES, ROWS, model("candidate", GOOD), model("champion", GOOD), FACTS).outcome == "promote"
    strict = gate.Rules.from_dict(RULES.to_dict() | {"significance": {"min_effect": 0.0}})
    decision = gate.decide(strict, ROWS, model("candidate", GOOD), model("champion", GOOD), FACTS)
    assert decision.outcome == "reject"
    assert decision.reasons == [next(c.detail for c in decision.checks if c.kind == "significance")]


def test_a_clearly_worse_candidate_is_rejected_by_the_noninferiority_interval() -> None:
    decision = gate.decide(RULES, ROWS, model("candidate", noisy(0.6)), model("champion", GOOD), FACTS)
    assert decision.outcome == "reject"
    assert any("lower bound does not clear -0.01" in reason for reason in decision.reasons)


def test_one_noisy_slice_does_not_block_a_better_model_but_a_broken_one_does() -> None:
    """A slice fails only when its own paired interval says it regressed beyond the tolerance."""
    atl = DEST == "ATL"
    noisy_slice = BETTER.copy()  # worse than the champion for flights to ATL, beyond the tolerance, not surely so
    noisy_slice[atl] = np.round(0.7 * GOOD[atl] + 0.3 * np.random.default_rng(5).random(atl.sum()), 2)
    decision = gate.decide(RULES, ROWS, model("candidate", noisy_slice), model("champion", GOOD), FACTS)
    check = next(c for c in decision.checks if c.name == "dest=ATL roc_auc")
    assert check.numbers["candidate"] - check.numbers["champion"] < -0.03 < check.numbers["ci_high"]
    assert check.passed and decision.outcome == "promote"
    broken = BETTER.copy()
    broken[atl] = 1 - broken[atl]  # upside down for flights to one destination
    decision = gate.decide(RULES, ROWS, model("candidate", broken), model("champion", GOOD), FACTS)
    assert decision.outcome == "reject"
    [failed] = [c for c in decision.checks if not c.passed]
    assert failed.name == "dest=ATL roc_auc" and failed.numbers["ci_high"] < -0.03
    assert failed.detail.startswith("slice dest=ATL (160 rows)")


def test_slices_below_support_are_listed_as_not_checked() -> None:
    decision = gate.decide(RULES, ROWS, model("candidate", BETTER), model("champion", GOOD), FACTS)
    checked = {c.name for c in decision.checks if c.kind == "slice"}
    assert "dest=ATL roc_auc" in checked and "dest=BTV roc_auc" not in checked
    assert any(
        item.startswith("slices of dest below 100 rows") and "BTV (80 rows" in item for item in decision.not_checked
    )


def test_without_a_champion_the_candidate_must_beat_the_constant_base_rate() -> None:
    assert gate.decide(RULES, ROWS, model("candidate", BETTER), None, FACTS).outcome == "first-model"
    # Saying about 50% for every flight stays under the ln 2 ceiling, but is no better than the base rate.
    rows = gate.EvaluationSet(LABELS, {}, 0.3, base_rate=float(LABELS.mean()))
    near_half = np.clip(0.5 + RNG.normal(0, 0.02, N) + 0.01 * (LABELS - 0.5), 0, 1)
    decision = gate.decide(RULES, rows, model("candidate", near_half), None, FACTS)
    assert decision.outcome == "reject" and decision.metrics["candidate"]["log_loss"] < np.log(2)
    assert {c.name for c in decision.checks if not c.passed} >= {
        "log_loss better than the constant base rate by 2%",
        "brier better than the constant base rate by 2%",
    }
    unknown = gate.EvaluationSet(LABELS, {}, 0.3, base_rate=None)
    missing = gate.decide(RULES, unknown, model("candidate", BETTER), None, gate.Operational(model_mb=1.5))
    assert missing.outcome == "reject" and any("no base rate" in r for r in missing.reasons)
    assert "scoring latency: there is no champion to measure it against" in missing.not_checked


@pytest.mark.parametrize(
    ("predictions", "message"),
    [
        (np.where(np.arange(N) % 50 == 0, np.nan, 0.3), "candidate version 7: 80 of 4000 predictions are NaN"),
        (np.full(N, 1.2), "candidate version 7: 4000 of 4000 predictions are outside \\[0, 1\\]"),
        (np.full(N - 1, 0.3), "candidate version 7: \\(3999,\\) predictions for 4000 evaluation rows"),
    ],
)
def test_malformed_predictions_raise_a_gate_error_naming_the_model(predictions: np.ndarray, message: str) -> None:
    with pytest.raises(gate.GateError, match=message):
        gate.decide(RULES, ROWS, model("candidate version 7", predictions), model("champion version 6", GOOD), FACTS)


def test_a_missing_metric_fails_its_check() -> None:
    rules = gate.Rules.from_dict({"changes": [{"metric": "roc_auc", "min_improvement": 0}]})
    constant = np.full(N, 0.3)  # one score for every row: no ranking, ROC AUC 0.5; on a one-class set NaN
    rows = gate.EvaluationSet(np.ones(N, dtype=int), {}, 0.3)
    decision = gate.decide(rules, rows, model("candidate", constant), model("champion", constant))
    assert decision.reasons == ["roc_auc is missing from the candidate's metrics"]


def test_operational_budgets_and_the_served_signature() -> None:
    slow = gate.Operational(model_mb=80.0, latency_ratio=5.0, unserved_inputs=("weather__snow",))
    decision = gate.decide(RULES, ROWS, model("candidate", BETTER), model("champion", GOOD), slow)
    assert [c.passed for c in decision.checks if c.kind == "operational"] == [False, False, False]
    assert "the candidate scores in 5.00x the champion's time (over the 3x budget)" in decision.reasons
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
        (
            {"changes": [{"metric": "roc_auc", "min_improvement": 0, "direction": "up"}]},
            "unknown changes rule fields: direction",
        ),
        ({"significance": {"metric": "precision"}}, "significance supports roc_auc"),
        ({"significance": {"resamples": 10}}, "at least 100 resamples"),
        ({"slices": {"confidence": 1.5}}, "slices confidence must be in"),
        ({"baseline": {"metrics": ["roc_auc"]}}, "judged on log_loss or brier"),
        ({"operational": {"max_latency_ms_per_10k": 2000}}, "unknown operational rule fields: max_latency_ms_per_10k"),
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
