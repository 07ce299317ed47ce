"""Data quality is not drift: on real weeks, same-distribution splits give no finding and no retrain,
and each injected fault (a stuck sensor, a unit change, a silent or half-silent feed, a shifted
category mix) is reported by name as a data-quality incident, with the calibrated limits."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.flights import model, monitoring, pipeline
from include.mlops import data_quality, drift
from include.mlops.lake import Interval
from tests.support.data import copy_weeks

REFERENCE = Interval(datetime(2026, 10, 26, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC))
WEEK = Interval(datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))
WEATHER = [f"weather__{name}" for name in ("temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "visib")]


@pytest.fixture(scope="module")
def frames(weeks: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Three real weeks as the reference and the week after them, with every model input."""
    settings = copy_weeks(weeks, tmp_path_factory.mktemp("quality") / "state")
    inputs = [*model.CATEGORICAL, *model.numeric_features(pipeline.all_feature_refs())]

    def load(window: Interval) -> pd.DataFrame:
        frame = pipeline.training_set(settings, window, labels_by=datetime(2100, 1, 1, tzinfo=UTC))
        return frame.assign(**{c: model.model_input(frame, inputs)[c] for c in inputs}).reset_index(drop=True)

    return load(REFERENCE), load(WEEK), inputs


def check(current: pd.DataFrame, reference: pd.DataFrame, inputs: list[str]) -> drift.DriftDecision:
    """The drift check's own observation and decision, with the calibrated rules (no model: equal
    weights; quality is the window's against the reference's, with a constant score to rank)."""
    rules = monitoring.load_rules({"policy": {"reference": "production"}})
    scored = [frame.assign(prediction=0.2) for frame in (current, reference)]
    observation, _ = monitoring.observe(
        datetime(2026, 11, 23, tzinfo=UTC), *scored, scored[0], None, inputs, None, rules, report=False
    )
    return drift.decide(rules.policy, observation, drift.History())


def incidents(decision: drift.DriftDecision) -> set[tuple[str, str]]:
    return {(f.column, f.check) for f in decision.incidents}


def test_a_real_week_against_the_weeks_before_is_not_an_incident(frames) -> None:
    reference, week, inputs = frames
    decision = check(week, reference, inputs)
    assert decision.action in ("no_drift", "retrain") and decision.incidents == ()


@pytest.mark.parametrize("split", ["random halves", "alternating days", "reshuffled rows"])
def test_same_distribution_splits_never_find_a_fault_nor_ask_for_a_retrain(frames, split: str) -> None:
    reference, week, inputs = frames
    both = pd.concat([reference, week], ignore_index=True)
    if split == "random halves":
        shuffled = both.sample(frac=1, random_state=1)
        current, base = shuffled.iloc[: len(both) // 2], shuffled.iloc[len(both) // 2 :]
    elif split == "alternating days":
        odd = both["sched_dep_at"].dt.dayofyear % 2 == 1
        current, base = both[odd], both[~odd]
    else:  # the same rows, in another order
        current, base = both.sample(frac=1, random_state=2), both
    decision = check(current, base, inputs)
    assert decision.action == "no_drift", decision.reasons
    assert decision.incidents == () and decision.drift_share is not None and decision.drift_share < 0.1


def stuck_sensor(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(weather__temp=41.0)


def celsius(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(weather__temp=(frame["weather__temp"] - 32) * 5 / 9)


def silent_feed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**dict.fromkeys(WEATHER, np.nan))


def half_silent_feed(frame: pd.DataFrame) -> pd.DataFrame:
    half = np.random.default_rng(0).random(len(frame)) < 0.5
    return frame.assign(**{c: frame[c].where(~half) for c in WEATHER})


def one_carrier_takes_over(frame: pd.DataFrame) -> pd.DataFrame:
    """UA, 18% of the flights, becomes 60%: the feed sends UA's flights and a fraction of the rest."""
    ua = frame[frame["carrier"] == "UA"]
    others = frame[frame["carrier"] != "UA"]
    return pd.concat([ua, others.sample(int(len(ua) * 2 / 3), random_state=0)], ignore_index=True)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (stuck_sensor, {("weather__temp", "stuck")}),
        (celsius, {("weather__temp", "out_of_range")}),
        (silent_feed, {(c, "null_increase") for c in WEATHER}),
        (half_silent_feed, {(c, "null_increase") for c in WEATHER}),
        (one_carrier_takes_over, {("carrier", "category_shift")}),
    ],
)
def test_each_injected_fault_is_an_incident_naming_the_column(frames, fault, expected: set) -> None:
    reference, week, inputs = frames
    share = (week["carrier"] == "UA").mean()
    assert 0.15 < share < 0.21  # UA's real share of the week's flights
    decision = check(fault(week), reference, inputs)
    assert decision.action == "incident" and not decision.condition
    assert expected <= incidents(decision), decision.reasons
    assert decision.reasons[1] == "no retrain on broken data: a person must look"
    for column, _ in expected:
        assert column in decision.reasons[0]


def test_without_recent_production_the_reference_judges_data_quality(frames) -> None:
    """A model's first production days: the predictions log holds too little before the window,
    so a feed in Celsius is judged against the reference (the training sample) and still found."""
    reference, week, inputs = frames
    rules = monitoring.load_rules({"policy": {"reference": "training"}})
    broken = week.assign(weather__temp=(week["weather__temp"] - 32) * 5 / 9, prediction=0.2)
    observation, _ = monitoring.observe(
        datetime(2026, 11, 23, tzinfo=UTC),
        broken,
        reference.assign(prediction=0.2),
        broken,
        None,
        inputs,
        None,
        rules,
        report=False,
        recent=reference.head(10),
    )
    assert ("weather__temp", "out_of_range") in {(f.column, f.check) for f in observation.incidents}


def test_a_silent_feed_is_named_among_the_columns_drift_could_not_judge(frames) -> None:
    reference, week, inputs = frames
    decision = check(silent_feed(week), reference, inputs)
    assert set(WEATHER) <= set(decision.not_judged)
    assert decision.not_judged["weather__temp"] == "no value in the window"
    assert any(r.startswith("not judged (") and "weather__temp (no value in the window)" in r for r in decision.reasons)


def test_the_category_shift_names_the_carrier_and_its_shares(frames) -> None:
    reference, week, _ = frames
    found = data_quality.profile(one_carrier_takes_over(week), reference, [], ["carrier"])
    [finding], _ = data_quality.check(found, {"carrier": {"category_shift": 0.05}})
    assert finding.detail.startswith("carrier: the category mix shifted: UA went from 1")
    assert "to 60% of the rows" in finding.detail


def test_a_statistic_too_noisy_to_check_is_reported_not_silently_passed() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    profiles = data_quality.profile(frame, frame, ["x"], [])
    findings, unchecked = data_quality.check(profiles, {"x": {"null_increase": 0.1, "out_of_range": None}})
    assert findings == [] and unchecked == ["x out_of_range: too noisy in calibration to check", "x stuck: no limit"]


def test_a_training_serving_skew_is_an_incident_that_names_the_feature(frames) -> None:
    """The hourly scoring found, for a few flights, online values that differ from the offline store's."""
    reference, week, inputs = frames
    served = week.assign(served_from="online", skew="")
    served.loc[served.index[:7], "skew"] = "weather__temp"
    served.loc[served.index[7:9], "skew"] = "weather__temp,origin_ops__late_share_24h"
    decision = check(served, reference, inputs)
    assert decision.action == "incident"
    assert {("weather__temp", "skew"), ("origin_ops__late_share_24h", "skew")} <= incidents(decision)
    [temp] = [f for f in decision.incidents if f.column == "weather__temp"]
    assert temp.detail == f"the online store served 9 of {len(week)} flights a value different from the offline store's"
    clean = check(week.assign(served_from="offline", skew=None), reference, inputs)
    assert not [f for f in clean.incidents if f.check == "skew"]
