"""Point-in-time correctness: every feature of a training row is what was known at its
prediction time, checked against an independent DuckDB computation on the same clean data."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from include.flights import features, pipeline
from include.mlops.lake import Interval, Lake
from include.mlops.settings import Settings
from tests.conftest import BUILT

OPS_TTL = pd.Timedelta(hours=1)
WEATHER_TTL = pd.Timedelta(hours=3)


@pytest.fixture(scope="module")
def training(built: Settings) -> pd.DataFrame:
    """The training set of every flight whose prediction time falls in the built week."""
    frame = pipeline.training_set(built, BUILT)
    return frame[frame["event_timestamp"] >= BUILT.start].reset_index(drop=True)


@pytest.fixture(scope="module")
def clean(built: Settings) -> dict[str, pd.DataFrame]:
    lake = Lake(built.lake_dir)
    history = Interval(BUILT.start - built.history, BUILT.end)
    return {
        "outcomes": lake.read("clean", "flight_outcomes", history, "outcome_at", ["flight_id"]),
        "weather": lake.read("clean", "weather", BUILT, "observed_at", ["origin", "observed_at"]),
        "planes": pd.read_parquet(lake.partition_path("clean", "planes", pipeline.REFERENCE)),
    }


def naive(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as naive UTC, so that DuckDB does no time-zone arithmetic."""
    return frame.assign(
        **{
            c: frame[c].dt.tz_convert("UTC").dt.tz_localize(None)
            for c in frame
            if isinstance(frame[c].dtype, pd.DatetimeTZDtype)
        }
    )


def expected_operations(training: pd.DataFrame, outcomes: pd.DataFrame, key: str, late_minutes: int) -> pd.DataFrame:
    """Trailing statistics by a direct range join: flights known strictly before the hour of t."""
    entities = naive(training.assign(key=training[key], g=training["event_timestamp"].dt.floor("h")))[["key", "g"]]
    entities["row_id"] = np.arange(len(entities))
    flights = naive(
        outcomes.assign(key=outcomes["origin"] + "-" + outcomes["dest"] if key == "route" else outcomes[key])
    )
    windows = ", ".join(
        f"""count(o.outcome_at) FILTER (WHERE o.outcome_at >= e.g - INTERVAL {hours} HOUR) AS n_flights_{name},
        avg(CASE WHEN o.arr_delay IS NULL OR o.arr_delay >= {late_minutes} THEN 1.0 ELSE 0.0 END)
            FILTER (WHERE o.outcome_at >= e.g - INTERVAL {hours} HOUR) AS late_share_{name},
        avg(o.arr_delay) FILTER (WHERE o.outcome_at >= e.g - INTERVAL {hours} HOUR) AS mean_arr_delay_{name}"""
        for name, hours in features.WINDOWS_HOURS.items()
    )
    query = f"""
        SELECT e.row_id, e.g, {windows}
        FROM entities e LEFT JOIN flights o
          ON o.key = e.key AND o.outcome_at < e.g AND o.outcome_at >= e.g - INTERVAL 168 HOUR
        GROUP BY e.row_id, e.g ORDER BY e.row_id
    """
    connection = duckdb.connect()
    connection.register("entities", entities)
    connection.register("flights", flights)
    return connection.execute(query).df()


@pytest.mark.parametrize("view", list(features.OPERATIONS_KEYS))
def test_trailing_statistics_equal_an_independent_range_join(
    view: str, training: pd.DataFrame, clean: dict[str, pd.DataFrame], built: Settings
) -> None:
    key = features.OPERATIONS_KEYS[view]
    expected = expected_operations(training, clean["outcomes"], key, built.late_minutes)
    assert len(training) > 5000
    no_recent_flights = expected["n_flights_7d"] == 0
    served = training[f"{view}__n_flights_7d"].notna()
    # A key without a landing in the past 7 days has no row: Feast serves nothing.
    assert (served == ~no_recent_flights).all()
    for name in features.OPERATIONS_FEATURES:
        ours = training.loc[served, f"{view}__{name}"].astype(float).to_numpy()
        theirs = expected.loc[served, name].astype(float).to_numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"{view}__{name}")
    as_of = pd.to_datetime(training.loc[served, f"{view}__stats_as_of_unix"], unit="s", utc=True)
    assert (as_of == training.loc[served, "event_timestamp"].dt.floor("h")).all()


def test_weather_is_the_latest_observation_at_or_before_t(
    training: pd.DataFrame, clean: dict[str, pd.DataFrame]
) -> None:
    entities = naive(training[["origin", "event_timestamp"]]).assign(row_id=np.arange(len(training)))
    weather = naive(clean["weather"])
    connection = duckdb.connect()
    connection.register("entities", entities)
    connection.register("weather", weather)
    expected = connection.execute(
        """SELECT e.row_id, e.event_timestamp, w.*
           FROM entities e ASOF LEFT JOIN weather w
             ON e.origin = w.origin AND w.observed_at <= e.event_timestamp
           ORDER BY e.row_id"""
    ).df()
    stale = (expected["event_timestamp"] - expected["observed_at"]) > WEATHER_TTL
    expected.loc[stale | expected["observed_at"].isna(), features.WEATHER_FEATURES] = np.nan
    for name in features.WEATHER_FEATURES:
        np.testing.assert_allclose(
            training[f"weather__{name}"].astype(float), expected[name].astype(float), equal_nan=True, err_msg=name
        )
    assert training["weather__temp"].notna().mean() > 0.95


def test_aircraft_attributes_by_tail_number(training: pd.DataFrame, clean: dict[str, pd.DataFrame]) -> None:
    planes = clean["planes"].set_index("tailnum")
    for ours, theirs in (("plane_year", "year"), ("seats", "seats"), ("engines", "engines")):
        expected = training["tailnum"].map(planes[theirs]).astype(float)
        np.testing.assert_allclose(training[f"aircraft__{ours}"].astype(float), expected, equal_nan=True)
    assert training["aircraft__seats"].notna().mean() > 0.7


def test_no_feature_timestamp_is_after_the_prediction_time(training: pd.DataFrame) -> None:
    t = (training["event_timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    for column in ["weather__observed_at_unix"] + [f"{v}__stats_as_of_unix" for v in features.OPERATIONS_KEYS]:
        known = training[column].notna()
        assert known.mean() > 0.5, column
        assert (training.loc[known, column] <= t[known]).all(), column


def test_training_set_keeps_every_entity_row_in_order(built: Settings) -> None:
    entities = pipeline.entity_frame(built, BUILT)
    frame = pipeline.training_set(built, BUILT)
    landed = entities[entities["label_at"] < BUILT.end]  # the lake holds outcomes known by then: all of them
    assert frame["flight_id"].tolist() == landed["flight_id"].tolist()


def test_changing_the_future_does_not_change_features_of_the_past(clean: dict[str, pd.DataFrame]) -> None:
    """Rewrite every outcome known at or after a cut-off: rows stamped up to the cut-off stay equal."""
    outcomes = clean["outcomes"]
    cut = BUILT.start + pd.Timedelta(days=3, hours=20)  # mid-afternoon in New York: flights landing
    future = outcomes["outcome_at"] >= cut
    rewritten = outcomes.assign(arr_delay=outcomes["arr_delay"].where(~future, 600.0))
    for key in features.OPERATIONS_KEYS.values():
        before = features.operations_features(outcomes, key, BUILT.start, BUILT.end, 15)
        after = features.operations_features(rewritten, key, BUILT.start, BUILT.end, 15)
        past = before["event_timestamp"] <= cut
        pd.testing.assert_frame_equal(
            before[past].reset_index(drop=True), after[after["event_timestamp"] <= cut].reset_index(drop=True)
        )
        assert not before[~past].equals(after[after["event_timestamp"] > cut])
