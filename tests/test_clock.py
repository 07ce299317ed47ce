"""The replay clock: deterministic, weekday-preserving, cyclic, in order, never past the interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from include.flights import clock


@pytest.mark.parametrize(
    "instant",
    [
        datetime(2026, 11, 27, 13, 45, tzinfo=UTC),
        datetime(2013, 6, 1, tzinfo=UTC),
        datetime(2000, 2, 29, 23, 59, tzinfo=UTC),
        datetime(2099, 12, 31, tzinfo=UTC),
    ],
)
def test_maps_into_2013_keeping_weekday_and_time_of_day(instant: datetime) -> None:
    mapped = clock.to_source_time(instant)
    assert datetime(2013, 1, 1, tzinfo=UTC) <= mapped < datetime(2013, 12, 31, tzinfo=UTC)
    assert mapped.weekday() == instant.weekday()
    assert mapped.time() == instant.time()
    assert (instant - mapped) % timedelta(days=364) == timedelta(0)


def test_consecutive_days_walk_through_2013_in_order_and_wrap() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    mapped = [clock.to_source_time(start + timedelta(days=i)) for i in range(400)]
    steps = [b - a for a, b in pairwise(mapped)]
    wraps = [i for i, step in enumerate(steps) if step != timedelta(days=1)]
    assert len(wraps) == 1  # one jump back from 30 December to 1 January
    assert mapped[wraps[0]].date().isoformat() == "2013-12-30"
    assert mapped[wraps[0] + 1].date().isoformat() == "2013-01-01"


def test_interval_across_a_cycle_boundary_is_split() -> None:
    boundary = clock.CYCLE_ORIGIN + 14 * clock.CYCLE
    segments = list(clock.segments(boundary - timedelta(days=1), boundary + timedelta(days=1)))
    assert [(s.start, s.end) for s in segments] == [
        (boundary - timedelta(days=1), boundary),
        (boundary, boundary + timedelta(days=1)),
    ]
    assert segments[0].source_start.date().isoformat() == "2013-12-30"
    assert segments[1].source_start.date().isoformat() == "2013-01-01"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware UTC"):
        clock.to_source_time(datetime(2026, 1, 1))
