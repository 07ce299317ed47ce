"""The drift monitor's policy on its own: verdicts and history in, an action and its reasons out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.mlops.drift import (
    DriftRules,
    DriftRulesError,
    History,
    Observation,
    Retrain,
    decide,
    escalation,
)

NOW = datetime(2026, 11, 27, 6, tzinfo=UTC)
FEATURES = [f"f{i}" for i in range(10)]
RULES = DriftRules(share_threshold=0.3, key_features=("weather__temp",), min_labelled_rows=500)


def observe(drifted: list[str] = (), rows: int = 5000, realised: float | None = None, labelled: int = 0) -> Observation:
    verdicts = {name: name in drifted for name in [*FEATURES, "weather__temp"]}
    return Observation(NOW, rows, rows, verdicts, labelled, realised, champion_validation=0.70)


def test_no_drift_when_few_features_moved_and_quality_holds() -> None:
    decision = decide(RULES, observe(["f1"], realised=0.69, labelled=2000), History())
    assert decision.action == "no_drift" and not decision.condition
    assert decision.reasons == ("1 of 11 features drifted (9%)",)


def test_a_large_share_of_drifted_features_asks_for_a_retrain_naming_them() -> None:
    decision = decide(RULES, observe(["f1", "f2", "f3", "f4"]), History())
    assert decision.action == "retrain"
    assert decision.drifted_features == ("f1", "f2", "f3", "f4")
    assert decision.reasons[0] == "4 of 11 features drifted (36%, threshold 30%)"


def test_one_key_feature_is_enough() -> None:
    decision = decide(RULES, observe(["weather__temp"]), History())
    assert decision.action == "retrain" and decision.reasons == ("key features drifted: weather__temp",)


def test_one_severely_drifted_feature_is_enough_and_prediction_drift_can_be_key() -> None:
    rules = DriftRules(severe_score=1.0, key_features=("prediction",))
    scores = {"f1": 3.6, "f2": 0.2, "f3": float("nan")}
    verdicts = {"f1": True, "f2": True, "f3": False}
    severe = decide(rules, Observation(NOW, 5000, 5000, verdicts, scores=scores), History())
    assert severe.action == "retrain" and severe.reasons[-1] == "severe drift (score >= 1): f1 3.60"
    mild = Observation(NOW, 5000, 5000, {"f1": True, "f2": False, "f3": False}, scores={"f1": 0.4})
    assert decide(rules, mild, History()).action == "no_drift"
    moved = Observation(NOW, 5000, 5000, {"f1": False}, prediction_drifted=True)
    assert decide(rules, moved, History()).reasons == ("key features drifted: prediction",)


def test_quality_loss_beyond_tolerance_asks_for_a_retrain_only_with_enough_labels() -> None:
    lost = decide(RULES, observe(realised=0.64, labelled=2000), History())
    assert lost.action == "retrain" and lost.quality_loss == pytest.approx(0.06)
    assert "realised roc_auc 0.6400 on 2000 labelled flights is 0.0600 worse" in lost.reasons[0]
    few = decide(RULES, observe(realised=0.64, labelled=100), History())
    assert few.action == "no_drift" and few.quality_loss is None


def test_a_small_window_is_skipped_with_the_sizes() -> None:
    decision = decide(RULES, observe(["f1", "f2", "f3", "f4"], rows=300), History())
    assert decision.action == "skip"
    assert decision.reasons[0].startswith("too few rows to judge drift: 300 current (at least 1000)")


def test_no_new_trigger_while_training_runs_or_during_the_cooldown() -> None:
    drifted = observe(["f1", "f2", "f3", "f4"])
    busy = decide(RULES, drifted, History(training_active=True))
    assert busy.action == "hold" and busy.condition
    assert busy.reasons[-1] == "a training run is already queued or running"
    recent = decide(RULES, drifted, History(last_trigger_at=NOW - timedelta(hours=24)))
    assert recent.action == "hold" and recent.reasons[-1].startswith("cooling down after the retrain asked at")
    later = decide(RULES, drifted, History(last_trigger_at=NOW - timedelta(hours=73)))
    assert later.action == "retrain"


def test_escalation_when_the_retrained_candidate_was_rejected_and_not_otherwise() -> None:
    drifted = decide(RULES, observe(["weather__temp"]), History(last_trigger_at=NOW - timedelta(hours=30)))
    rejected = Retrain(NOW - timedelta(hours=30), "reject", version=7, decided_at=NOW - timedelta(hours=29))
    alert = escalation(RULES, drifted, NOW - timedelta(days=2), rejected)
    assert alert is not None and "the promotion gate rejected" in alert and "version 7" in alert
    assert "cooling down" not in alert and "since 2026-11-25T06:00:00+00:00" in alert
    assert escalation(RULES, drifted, None, Retrain(NOW - timedelta(hours=30))) is None  # still pending
    calm = decide(RULES, observe(), History())
    assert escalation(RULES, calm, None, rejected) is None


def test_escalation_when_drift_holds_k_checks_after_a_promotion() -> None:
    drifted = decide(RULES, observe(["weather__temp"]), History())
    promoted = Retrain(NOW - timedelta(days=5), "promote", version=8, decided_at=NOW - timedelta(days=4))
    assert escalation(RULES, drifted, None, promoted) is None
    persisting = Retrain(NOW - timedelta(days=5), "promote", 8, NOW - timedelta(days=4), checks_since_promotion=3)
    alert = escalation(RULES, drifted, None, persisting)
    assert alert is not None and "still present 3 checks after version 8 was promoted" in alert


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"share": 0.3}, "unknown drift rules: share"),
        ({"share_threshold": 0}, "share_threshold must be in"),
        ({"quality_metric": "accuracy"}, "quality_metric must be one of"),
        ({"min_current_rows": 0}, "at least 1"),
    ],
)
def test_malformed_rules_are_refused(rules: dict, message: str) -> None:
    with pytest.raises(DriftRulesError, match=message):
        DriftRules.from_dict(rules)
