"""The replay clock: deterministic, weekday-preserving, cyclic, in order, never past the interval;
shifted by whole weeks to start in any season, and one clock per state folder."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from include.flights import pipeline
from include.flights.clock import CYCLE, CYCLE_ORIGIN, Clock
from include.mlops.settings import Settings, SettingsError


@pytest.mark.parametrize("weeks_ahead", [0, 1, 26, 51])
@pytest.mark.parametrize(
    "instant",
    [
        datetime(2026, 11, 27, 13, 45, tzinfo=UTC),
        datetime(2013, 6, 1, tzinfo=UTC),
        datetime(2000, 2, 29, 23, 59, tzinfo=UTC),
        datetime(2099, 12, 31, tzinfo=UTC),
    ],
)
def test_maps_into_2013_keeping_weekday_and_time_of_day(instant: datetime, weeks_ahead: int) -> None:
    mapped = Clock(weeks_ahead).to_source_time(instant)
    assert datetime(2013, 1, 1, tzinfo=UTC) <= mapped < datetime(2013, 12, 31, tzinfo=UTC)
    assert mapped.weekday() == instant.weekday()
    assert mapped.time() == instant.time()
    assert (instant - mapped) % timedelta(days=7) == timedelta(0)


@pytest.mark.parametrize("weeks_ahead", [0, 13, 51])
def test_consecutive_days_walk_through_2013_in_order_and_wrap(weeks_ahead: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    mapped = [Clock(weeks_ahead).to_source_time(start + timedelta(days=i)) for i in range(400)]
    steps = [b - a for a, b in pairwise(mapped)]
    wraps = [i for i, step in enumerate(steps) if step != timedelta(days=1)]
    assert len(wraps) == 1  # one jump back from 30 December to 1 January
    assert mapped[wraps[0]].date().isoformat() == "2013-12-30"
    assert mapped[wraps[0] + 1].date().isoformat() == "2013-01-01"


def test_weeks_ahead_moves_the_replayed_day_that_many_weeks_later_in_2013() -> None:
    today = datetime(2026, 12, 4, 15, tzinfo=UTC)
    assert Clock().to_source_time(today) == datetime(2013, 12, 20, 15, tzinfo=UTC)
    assert Clock(26).to_source_time(today) == datetime(2013, 6, 21, 15, tzinfo=UTC)  # 26 weeks on, wrapped
    assert Clock(2).to_source_time(today) == datetime(2013, 1, 4, 15, tzinfo=UTC)  # past the cycle: a Friday again
    for weeks in range(52):
        assert Clock(weeks).to_source_time(today) - Clock().to_source_time(today) in (
            timedelta(weeks=weeks),
            timedelta(weeks=weeks) - CYCLE,
        )


@pytest.mark.parametrize("weeks_ahead", [0, 26])
def test_interval_across_a_cycle_boundary_is_split(weeks_ahead: int) -> None:
    clock = Clock(weeks_ahead)
    boundary = clock.cycle_start(datetime(2026, 12, 4, tzinfo=UTC)) + CYCLE
    assert clock.to_source_time(boundary) == CYCLE_ORIGIN
    segments = list(clock.segments(boundary - timedelta(days=1), boundary + timedelta(days=1)))
    assert [(s.start, s.end) for s in segments] == [
        (boundary - timedelta(days=1), boundary),
        (boundary, boundary + timedelta(days=1)),
    ]
    assert segments[0].source_start.date().isoformat() == "2013-12-30"
    assert segments[1].source_start.date().isoformat() == "2013-01-01"
    assert [clock.to_source_time(s.start) for s in segments] == [s.source_start for s in segments]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware UTC"):
        Clock().to_source_time(datetime(2026, 1, 1))


@pytest.mark.parametrize("weeks_ahead", [-1, 52, 2.0, True])
def test_weeks_ahead_outside_a_cycle_is_refused(weeks_ahead: object) -> None:
    with pytest.raises(ValueError, match="weeks_ahead must be"):
        Clock(weeks_ahead)  # type: ignore[arg-type]


def test_a_state_folder_keeps_the_clock_it_was_built_on(tmp_path: Path) -> None:
    state = tmp_path / "state"
    spring = pipeline.flight_source(Settings(state_dir=state, replay_weeks_ahead=13))
    assert spring.clock == Clock(13)
    assert json.loads((state / pipeline.REPLAY_CLOCK).read_text()) == {"weeks_ahead": 13}
    assert pipeline.flight_source(Settings(state_dir=state, replay_weeks_ahead=13)) is spring
    with pytest.raises(SettingsError, match=r"MLOPS_REPLAY_WEEKS_AHEAD is 0, but the state folder .* replaying 13"):
        pipeline.flight_source(Settings(state_dir=state))
    (state / pipeline.REPLAY_CLOCK).write_text("{}")
    with pytest.raises(SettingsError, match="is not a replay clock record"):
        pipeline.flight_source(Settings(state_dir=state, replay_weeks_ahead=13))
