"""The replay clock: publishes the 2013 records as if they were happening now.

Any instant maps onto 2013 by moving it `weeks_ahead` weeks later, then subtracting a whole
number of 52-week cycles (364 days):

    cycle(t)  = floor((t + weeks_ahead - 2013-01-01T00:00Z) / 364 days)
    source(t) = t + weeks_ahead - cycle(t) * 364 days   # always inside [2013-01-01, 2013-12-31)

Whole weeks and 364 days (exactly 52 weeks) keep the weekday; the mapping is a pure function of
the instant, so re-running an interval always reads the same 2013 rows; and consecutive
intervals walk through 2013 in order, wrapping from 30 December back to 1 January.
The last day of 2013 (and the first five UTC hours of 1 January, still 2012 in New York)
fall outside the cycle and are never replayed.

`weeks_ahead` (0 to 51; the setting `MLOPS_REPLAY_WEEKS_AHEAD`) chooses the season: with 0,
Friday 4 December 2026 replays Friday 20 December 2013; with 26, Friday 21 June 2013. A state
folder is built on one clock; `include.flights.pipeline.flight_source` refuses another on it.

An interval that straddles a cycle boundary is split into segments, each mapped with its
own shift, so the rows of both years' ends are replayed in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CYCLE_ORIGIN = datetime(2013, 1, 1, tzinfo=UTC)
CYCLE = timedelta(days=364)
WEEKS = 52  # weeks in a cycle: weeks_ahead is one of 0 .. WEEKS - 1


def _require_utc(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError(f"{name} must be a timezone-aware UTC datetime, got {value!r}")


@dataclass(frozen=True)
class Segment:
    """A piece of a real interval inside one cycle, and where it lies in 2013."""

    start: datetime
    end: datetime
    shift: timedelta  # real time minus 2013 time

    @property
    def source_start(self) -> datetime:
        return self.start - self.shift

    @property
    def source_end(self) -> datetime:
        return self.end - self.shift


@dataclass(frozen=True)
class Clock:
    """Maps real instants onto 2013, `weeks_ahead` weeks later in the year than with none."""

    weeks_ahead: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.weeks_ahead, bool) or not isinstance(self.weeks_ahead, int):
            raise ValueError(f"weeks_ahead must be a whole number of weeks, got {self.weeks_ahead!r}")
        if not 0 <= self.weeks_ahead < WEEKS:
            raise ValueError(f"weeks_ahead must be within 0..{WEEKS - 1}, got {self.weeks_ahead}")

    @property
    def _ahead(self) -> timedelta:
        return timedelta(weeks=self.weeks_ahead)

    def cycle_of(self, instant: datetime) -> int:
        """Which 52-week cycle an instant falls in (0 for 2013 itself with no weeks ahead)."""
        _require_utc("instant", instant)
        return (instant + self._ahead - CYCLE_ORIGIN) // CYCLE

    def shift(self, instant: datetime) -> timedelta:
        """Real time minus 2013 time at `instant`."""
        return self.cycle_of(instant) * CYCLE - self._ahead

    def to_source_time(self, instant: datetime) -> datetime:
        """Map a real instant onto the 2013 timeline."""
        return instant - self.shift(instant)

    def cycle_start(self, instant: datetime) -> datetime:
        """The real instant the cycle of `instant` began: when the replay was at 2013-01-01."""
        return CYCLE_ORIGIN + self.shift(instant)

    def segments(self, start: datetime, end: datetime) -> Iterator[Segment]:
        """Split the half-open real interval [start, end) at cycle boundaries."""
        _require_utc("start", start)
        _require_utc("end", end)
        if end < start:
            raise ValueError(f"interval end {end.isoformat()} is before its start {start.isoformat()}")
        cursor = start
        while cursor < end:
            segment_end = min(end, self.cycle_start(cursor) + CYCLE)
            yield Segment(cursor, segment_end, self.shift(cursor))
            cursor = segment_end
