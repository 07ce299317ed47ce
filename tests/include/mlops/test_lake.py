"""The lake's view of its partitions: the stretches of time they cover, and the days they miss."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from include.mlops.lake import Interval, Lake


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def test_spans_merge_adjoining_and_overlapping_partitions_and_keep_the_gaps(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    held = [
        Interval(at(1), at(3)),  # a two-day history run
        *(Interval(at(3, h), at(3, h + 1)) for h in range(5)),  # then hourly runs
        Interval(at(3, 2), at(3, 4)),  # a rerun over two of them
        Interval(at(5), at(6)),  # after a gap
    ]
    for interval in held:
        lake.write_partition("features", "weather", interval.key, pd.DataFrame({"x": [1]}))
    assert lake.spans("features", "weather") == [Interval(at(1), at(3, 5)), Interval(at(5), at(6))]
    assert [d.start for d in lake.missing_days("features", "weather", Interval(at(1), at(7)))] == [
        at(3), at(4), at(6)
    ]  # fmt: skip
    assert lake.spans("features", "no_such_view") == []
    assert Interval(at(1), at(3, 5)).label == "2026-11-01 00:00 to 2026-11-03 05:00 UTC (2 days 5 hours, end excluded)"
    assert Interval(at(1), at(1) + timedelta(hours=3)).label.endswith("(3 hours, end excluded)")
