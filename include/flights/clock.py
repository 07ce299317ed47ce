"""The replay clock: publishes the 2013 records as if they were happening now.

Any instant maps onto 2013 by subtracting a whole number of 52-week cycles (364 days):

    cycle(t)  = floor((t - 2013-01-01T00:00Z) / 364 days)
    source(t) = t - cycle(t) * 364 days          # always inside [2013-01-01, 2013-12-31)

364 days is exactly 52 weeks, so the mapping keeps the weekday; it is a pure function of
the instant, so re-running an interval always reads the same 2013 rows; and consecutive
intervals walk through 2013 in order, wrapping from 30 December back to 1 January.
The last day of 2013 (and the first five UTC hours of 1 January, still 2012 in New York)
fall outside the cycle and are never replayed.

An interval that straddles a cycle boundary is split into segments, each mapped with its
own shift, so the rows of both years' ends are replayed in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CYCLE_ORIGIN = datetime(2013, 1, 1, tzinfo=UTC)
CYCLE = timedelta(days=364)


def _require_utc(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError(f"{name} must be a timezone-aware UTC datetime, got {value!r}")


def cycle_of(instant: datetime) -> int:
    """Which 52-week cycle an instant falls in (0 for 2013 itself)."""
    _require_utc("instant", instant)
    return (instant - CYCLE_ORIGIN) // CYCLE


def to_source_time(instant: datetime) -> datetime:
    """Map a real instant onto the 2013 timeline."""
    return instant - cycle_of(instant) * CYCLE


@dataclass(frozen=True)
class Segment:
    """A piece of a real interval inside one cycle, and where it lies in 2013."""

    start: datetime
    end: datetime
    shift: timedelta

    @property
    def source_start(self) -> datetime:
        return self.start - self.shift

    @property
    def source_end(self) -> datetime:
        return self.end - self.shift


def segments(start: datetime, end: datetime) -> Iterator[Segment]:
    """Split the half-open real interval [start, end) at cycle boundaries."""
    _require_utc("start", start)
    _require_utc("end", end)
    if end < start:
        raise ValueError(f"interval end {end.isoformat()} is before its start {start.isoformat()}")
    cursor = start
    while cursor < end:
        cycle = cycle_of(cursor)
        boundary = CYCLE_ORIGIN + (cycle + 1) * CYCLE
        segment_end = min(end, boundary)
        yield Segment(cursor, segment_end, cycle * CYCLE)
        cursor = segment_end
