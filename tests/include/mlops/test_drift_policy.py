"""The drift monitor's policy on its own: what a check saw and the history in, an action, its reasons
and any escalation out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from include.mlops.data_quality import Finding
from include.mlops.drift import (
    DriftRules,
    DriftRulesError,
    FeatureDrift,
    History,
    Observation,
    PastCheck,
    Quality,
    Retrain,
    TrainingRuns,
    decide,
    escalation,
    quality,
)

NOW = datetime(2026, 11, 27, 6, tzinfo=UTC)
RULES = DriftRules(share_threshold=0.5)
WEIGHTS = {"temp": 0.6, "delay": 0.3, "wind": 0.1}


def quality_of(loss: float, low: float) -> Quality:
    return Quality("roc_auc", 0.70 - loss, 0.70, loss, low, loss + (loss - low), 6000, 6000, "week1")


def observe(
    drifted: tuple[str, ...] = (),
    rows: int = 5000,
    q: Quality | None = None,
    not_judged: dict[str, str] | None = None,
    incidents: tuple[Finding, ...] = (),
) -> Observation:
    not_judged = not_judged or {}
    features = tuple(
        FeatureDrift(name, 2.0 if name in drifted else 0.1, 1.0, weight)
        for name, weight in WEIGHTS.items()
        if name not in not_judged
    )
    why = "" if q else "no baseline yet"
    return Observation(NOW, rows, rows, features, not_judged, WEIGHTS, None, incidents, q, why)


def test_drift_of_features_the_model_barely_uses_does_not_ask_for_a_retrain() -> None:
    calm = decide(RULES, observe(("wind", "delay")), History())  # 40% of the importance
    assert calm.action == "no_drift" and calm.drift_share == pytest.approx(0.4)
    moved = decide(RULES, observe(("temp",)), History())  # 60%
    assert moved.action == "retrain" and moved.drifted_features == ("temp",)
    assert moved.reasons[0].startswith(
        "drift: 1 of 3 features drifted (temp 2.00 >= 1.00), 60% of the model's importance"
    )


def test_the_drift_count_includes_the_prediction_as_the_report_counts_it() -> None:
    tested = replace(observe(("temp",)), prediction=FeatureDrift("prediction", 0.5, 0.2, 0.0))
    seen = decide(RULES, tested, History()).reasons[0]
    assert seen.startswith(
        "drift: 1 of 3 features drifted (temp 2.00 >= 1.00; 2 of 4 columns in the report, which also tests the "
        "prediction: drifted, 0.50 vs 0.20), 60% of the model's importance, at least 50%"
    )


def test_columns_that_could_not_be_judged_stay_in_the_denominator_and_are_named() -> None:
    decision = decide(RULES, observe(("delay",), not_judged={"temp": "no value in the window"}), History())
    assert decision.drift_share == pytest.approx(0.3)  # of all the importance, not of the judged 40%
    assert decision.action == "no_drift"
    assert any(
        r.startswith("not judged (60% of the importance): temp (no value in the window)") for r in decision.reasons
    )
    assert decision.not_judged == {"temp": "no value in the window"}


def test_quality_fires_only_when_the_loss_is_beyond_tolerance_with_confidence() -> None:
    noisy = decide(RULES, observe(q=quality_of(0.03, -0.005)), History())  # worse, but maybe not
    assert noisy.action == "no_drift" and noisy.quality_loss == pytest.approx(0.03)
    lost = decide(RULES, observe(q=quality_of(0.05, 0.02)), History())
    assert lost.action == "retrain" and lost.reasons[0].startswith("quality loss: realised roc_auc 0.6500")
    assert "95% CI of the loss [+0.0200, +0.0800], beyond the tolerance 0" in lost.reasons[0]


def test_quality_is_judged_even_when_the_window_is_too_small_for_drift() -> None:
    small = observe(("temp",), rows=999, q=quality_of(0.20, 0.15))  # 999 rows, but enough labels for quality
    decision = decide(RULES, small, History())
    assert decision.action == "retrain" and decision.drift_share is None
    assert decision.reasons[0].startswith("quality loss")
    assert any(r.startswith("drift not judged: 999 current rows") for r in decision.reasons)
    nothing = decide(RULES, observe(rows=999), History())
    assert nothing.action == "skip" and "quality not judged: no baseline yet" in nothing.reasons


def test_a_data_quality_incident_calls_a_person_and_asks_for_no_retrain() -> None:
    stuck = Finding("temp", "stuck", 0.95, 0.25, "temp: one value repeats (a stuck feed): ...")
    decision = decide(RULES, observe(("temp", "delay"), q=quality_of(0.1, 0.05), incidents=(stuck,)), History())
    assert decision.action == "incident" and not decision.condition
    assert decision.reasons[0] == "data-quality incident: temp: one value repeats (a stuck feed): ..."
    assert decision.reasons[1] == "no retrain on broken data: a person must look"
    alert = escalation(RULES, decision, NOW, [], [])
    assert alert is not None and alert.kind == "data_quality" and "temp: one value repeats" in alert.message
    sent = PastCheck(
        NOW - timedelta(days=1),
        "incident",
        False,
        escalated=alert.key.replace(NOW.isoformat(), (NOW - timedelta(days=1)).isoformat()),
    )
    assert escalation(RULES, decision, NOW, [sent], []) is None  # the same incident, already sent


def test_a_person_who_muted_a_kind_hears_of_no_new_condition_of_that_kind_until_the_mute_ends() -> None:
    stuck = Finding("temp", "stuck", 0.95, 0.25, "temp: one value repeats (a stuck feed): ...")
    decision = decide(RULES, observe(("temp",), incidents=(stuck,)), History())
    earlier = NOW - timedelta(days=5)
    muted = NOW + timedelta(days=1)
    answered = PastCheck(earlier, "incident", False, escalated=f"data_quality {earlier.isoformat()}", muted_until=muted)
    between = PastCheck(NOW - timedelta(days=1), "no_drift", False)  # the earlier incident ended
    assert escalation(RULES, decision, NOW, [answered, between], []) is None  # a new incident, muted
    assert escalation(RULES, decision, NOW + timedelta(days=2), [answered, between], []) is not None
    other_kind = PastCheck(earlier, "hold", True, escalated=f"retrain_did_not_help {earlier}", muted_until=muted)
    assert escalation(RULES, decision, NOW, [other_kind, between], []) is not None


def test_no_new_trigger_while_training_runs_or_during_the_cooldown() -> None:
    drifted = observe(("temp",))
    busy = decide(RULES, drifted, History(training=TrainingRuns(busy=("manual__1",))))
    assert busy.action == "hold" and busy.condition
    assert busy.reasons[1] == "a training run is already queued or running: manual__1"
    waiting = decide(RULES, drifted, History(training=TrainingRuns(waiting=("scheduled__2",))))
    assert waiting.action == "retrain"  # a run waiting for features may wait for hours: it holds nothing
    assert "not held by scheduled__2 waiting for features" in waiting.reasons[-1]
    recent = decide(RULES, drifted, History(last_trigger_at=NOW - timedelta(days=3)))
    assert recent.action == "hold" and recent.reasons[1].startswith("cooling down after the retrain asked at")
    later = decide(RULES, drifted, History(last_trigger_at=NOW - timedelta(days=8)))
    assert later.action == "retrain"


def test_a_champion_serving_its_refresh_days_is_retrained_without_being_a_condition() -> None:
    young = decide(RULES, observe(), History(champion_since=NOW - timedelta(days=13)))
    assert young.action == "no_drift" and young.fired == ()
    old = decide(RULES, observe(), History(champion_since=NOW - timedelta(days=14)))
    assert old.action == "retrain" and old.fired == ("refresh",) and not old.condition
    assert old.reasons[0].startswith(f"refresh: the champion has served since {(NOW - timedelta(days=14)).isoformat()}")
    never = decide(DriftRules(refresh_days=None), observe(), History(champion_since=NOW - timedelta(days=400)))
    assert never.action == "no_drift"
    both = decide(RULES, observe(("temp",)), History(champion_since=NOW - timedelta(days=30)))
    assert both.fired == ("drift", "refresh") and both.condition


def test_a_refresh_counts_from_the_last_retrain_asked() -> None:
    """A candidate the gate rejected was the fresher model: the next refresh waits `refresh_days`
    from that ask, not from the champion's start, so a champion that keeps winning is not retrained
    every week."""
    asked = NOW - timedelta(days=10)
    recent = decide(RULES, observe(), History(asked, champion_since=NOW - timedelta(days=40)))
    assert recent.action == "no_drift"
    due = decide(RULES, observe(), History(NOW - timedelta(days=15), champion_since=NOW - timedelta(days=40)))
    assert due.action == "retrain" and due.fired == ("refresh",)
    assert due.reasons[0].startswith(
        f"refresh: the last retrain was asked at {(NOW - timedelta(days=15)).isoformat()}, 15.0 days ago"
    )
    weekly = History(None, champion_since=NOW - timedelta(days=40), last_candidate_at=NOW - timedelta(days=6))
    assert decide(RULES, observe(), weekly).action == "no_drift"  # the schedule's candidates are fresher data
    busy = History(None, TrainingRuns(busy=("manual__1",)), champion_since=NOW - timedelta(days=20))
    queued = decide(RULES, observe(), busy)
    assert queued.action == "hold" and not queued.condition


def test_rejected_refreshes_call_nobody() -> None:
    began = NOW - timedelta(days=30)
    checks = [
        PastCheck(
            began + timedelta(days=d), "retrain" if d in (0, 14) else "no_drift", False, asked_retrain=d in (0, 14)
        )
        for d in range(30)
    ]
    rejected = [Retrain(began, "reject", 7, began), Retrain(began + timedelta(days=14), "reject", 8, began)]
    refresh = decide(RULES, observe(), History(began + timedelta(days=14), champion_since=began - timedelta(days=14)))
    assert refresh.action == "retrain" and refresh.fired == ("refresh",)
    assert escalation(RULES, refresh, NOW, checks, rejected) is None


def test_escalation_after_two_retrains_that_did_not_help_and_only_once() -> None:
    drifted = decide(RULES, observe(("temp",)), History())
    began = NOW - timedelta(days=20)
    checks = [PastCheck(began + timedelta(days=d), "retrain" if d in (0, 8) else "hold", True) for d in range(20)]
    one = [Retrain(began, "reject", 7, began)]
    assert escalation(RULES, drifted, NOW, checks, one) is None  # one retrain is not yet "retraining did not help"
    pending = [*one, Retrain(began + timedelta(days=8))]
    assert escalation(RULES, drifted, NOW, checks, pending) is None  # the second candidate is not judged yet
    promoted_recently = [*one, Retrain(began + timedelta(days=8), "promote", 8, began + timedelta(days=8), 2)]
    assert escalation(RULES, drifted, NOW, checks, promoted_recently) is None
    both = [*one, Retrain(began + timedelta(days=8), "promote", 8, began + timedelta(days=8), 3)]
    alert = escalation(RULES, drifted, NOW, checks, both)
    assert alert is not None and alert.kind == "retrain_did_not_help"
    assert f"the condition persists since {began.isoformat()}" in alert.message
    assert "version 7 rejected by the gate" in alert.message
    assert "version 8 promoted, the condition still held 3 checks later" in alert.message
    sent = [*checks[:-1], PastCheck(checks[-1].at, "hold", True, escalated=alert.key)]
    assert escalation(RULES, drifted, NOW, sent, both) is None
    calm = decide(RULES, observe(), History())
    assert escalation(RULES, calm, NOW, checks, both) is None


def test_the_quality_interval_covers_zero_for_two_halves_of_the_same_rows() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 8000)
    p = np.clip(0.3 + 0.2 * (y - 0.5) + rng.normal(0, 0.2, 8000), 0, 1)
    found = quality(RULES, y[:4000], p[:4000], y[4000:], p[4000:], "other half")
    assert found.low < 0 < found.high and found.rows == found.baseline_rows == 4000
    worse = quality(RULES, y[:4000], rng.random(4000), y[4000:], p[4000:], "other half")
    assert worse.low > 0.1 and worse.realised == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"share": 0.3}, "unknown drift policy fields: share"),
        ({"share_threshold": 0}, "share_threshold must be in"),
        ({"reference": "yesterday"}, "reference must be one of production, training, seasonal"),
        ({"quality_metric": "accuracy"}, "quality_metric must be roc_auc, log_loss or brier"),
        ({"quality_confidence": 1}, "quality_confidence must be in"),
        ({"min_current_rows": 0}, "at least 1"),
        ({"refresh_days": 0}, "refresh_days must be positive or null"),
    ],
)
def test_malformed_rules_are_refused(rules: dict, message: str) -> None:
    with pytest.raises(DriftRulesError, match=message):
        DriftRules.from_dict(rules)
