"""Hourly serving on a replayed day: each hour `feature_pipeline`'s steps build and push the hour,
then the champion predicts the flights whose prediction time it is from the online store, and
every served feature is checked against the offline store's point-in-time join.

The weeks fixture holds features to 24 November 2026; the hours replayed here are those of
24 November and the next morning (replaying 10-11 December 2013), built one hour at a time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from include.flights import inference, model, pipeline, training
from include.flights.source import Nycflights13Source
from include.mlops import registry
from include.mlops.feature_store import load_store
from include.mlops.lake import Interval
from include.mlops.validation import DataValidationError
from tests.support.data import WEEKS, copy_weeks

TRAINING = Interval(datetime(2026, 10, 26, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC))
FIRST_HOUR = datetime(2026, 11, 24, 1, tzinfo=UTC)  # the hour [00:00, 01:00) of the first day not built
HOURS = 36


def hour_ending(end: datetime) -> Interval:
    return Interval(end - timedelta(hours=1), end)


@pytest.fixture(scope="module")
def served(weeks: Path, source: Nycflights13Source, tmp_path_factory: pytest.TempPathFactory):
    """A champion, then `HOURS` hourly cycles: build and push the hour, predict at its end. The
    history is pushed online first, as `make up`'s bulk run does: without it the online store
    would lack yesterday's aircraft departures, which the skew check reports."""
    settings = copy_weeks(weeks, tmp_path_factory.mktemp("serving") / "state")
    pipeline.materialize(settings, pipeline.feature_days(settings, WEEKS))  # the history, online (as `make up`)
    training.train(settings, TRAINING, model.ModelConfig(max_iter=60), reason="serving tests")
    registry.move_champion(settings, settings.model_name, 1, None, "promote", "serving tests", {"actor": "test"})
    results = []
    for n in range(HOURS):
        hour = hour_ending(FIRST_HOUR + timedelta(hours=n))
        pipeline.validate_batches(settings, pipeline.ingest(settings, hour, source))
        pipeline.build_features(settings, hour)
        pipeline.materialize(settings, hour)
        results.append(inference.score(settings, hour, source))
    window = Interval(FIRST_HOUR + timedelta(hours=2), FIRST_HOUR + timedelta(hours=2 + HOURS))
    return settings, results, inference.predictions(settings, window)


def test_every_hour_is_served_online_without_skew_on_over_a_thousand_flights(served) -> None:
    _, results, log = served
    assert [r.served_from for r in results] == ["online"] * HOURS
    assert len(log) == log["flight_id"].nunique() >= 1000
    assert (log["served_from"] == "online").all()
    assert (log[inference.SKEW] == "").all()  # every feature value equal to the offline store's
    assert log["weather__temp"].notna().mean() > 0.95
    assert log["origin_departures__n_departures_2h"].notna().mean() > 0.95


def test_every_prediction_is_made_before_its_flight_departs_minus_the_lead(served, source) -> None:
    settings, results, log = served
    assert (log["event_timestamp"] <= log["sched_dep_at"] - settings.prediction_lead).all()
    assert (log["sched_dep_at"] - log["event_timestamp"] < settings.prediction_lead + timedelta(hours=1)).all()
    # Each hour's run predicted exactly the flights whose prediction time is that hour's end.
    for result in results:
        departing = Interval.from_key(result.departing)
        hour = log[(log["sched_dep_at"] >= departing.start) & (log["sched_dep_at"] < departing.end)]
        assert len(hour) == result.rows
        assert (hour["event_timestamp"] == departing.start - settings.prediction_lead).all()
    # Every flight of the schedule in those hours was predicted, cancelled ones too.
    first, last = Interval.from_key(results[0].departing), Interval.from_key(results[-1].departing)
    schedule = source.flight_schedule(first.start, last.end)
    assert set(schedule["flight_id"]) == set(log["flight_id"])


def test_rerunning_an_hour_replaces_it_from_the_offline_store_with_the_same_predictions(served) -> None:
    settings, results, log = served
    hour = hour_ending(FIRST_HOUR + timedelta(hours=10))
    before = log.set_index("flight_id")
    again = inference.score(settings, hour)
    assert again.served_from == "offline"  # the online store has moved on
    rescored = inference.predictions(settings, Interval.from_key(again.departing)).set_index("flight_id")
    assert len(rescored) == again.rows == results[10].rows
    pd.testing.assert_series_equal(rescored["prediction"], before.loc[rescored.index, "prediction"], rtol=1e-12)
    window = Interval(log["sched_dep_at"].min(), log["sched_dep_at"].max() + timedelta(minutes=1))
    assert len(inference.predictions(settings, window)) == len(log)  # replaced, not duplicated


def test_a_wrong_online_value_is_a_skew_that_fails_the_hour_and_keeps_its_predictions(served, source) -> None:
    settings, _, _ = served
    hour = hour_ending(FIRST_HOUR + timedelta(hours=HOURS))
    pipeline.validate_batches(settings, pipeline.ingest(settings, hour, source))
    pipeline.build_features(settings, hour)
    pipeline.materialize(settings, hour)
    store = load_store(settings)
    online = store.get_online_features(["weather:temp", "weather:observed_at_unix"], [{"origin": "JFK"}]).to_dict()
    stamp = pd.Timestamp(online["observed_at_unix"][0], unit="s", tz="UTC")
    wrong = pd.DataFrame(
        {"origin": ["JFK"], "event_timestamp": [stamp], "observed_at_unix": online["observed_at_unix"]}
        | {name: [1.0] for name in pipeline.features.WEATHER_FEATURES}
    )
    store.push("weather_push", wrong)  # a broken stream writer
    with pytest.raises(DataValidationError, match=r"training-serving skew: .* \(.*weather__temp.*\)"):
        inference.score(settings, hour)
    departing = pipeline.departures_predicted_in(settings, hour)
    kept = inference.predictions(settings, departing)
    assert len(kept) and (kept[inference.SKEW].str.contains("weather__temp") == (kept["origin"] == "JFK")).all()
