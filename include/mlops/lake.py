"""The data lake under the state folder: raw archive, quarantine, clean tables, feature tables.

    lake/raw/<table>/<interval>/<digest>.jsonl.gz         what the source returned, never overwritten
    lake/quarantine/<table>/<interval>/<digest>.jsonl.gz  rejected rows with their reason
    lake/clean/<table>/<interval>.parquet                 validated rows, replaced on re-run
    lake/features/<view>/<interval>.parquet               feature rows (Feast's offline store)

Raw and quarantined rows are kept as JSON lines so that any input, however malformed, can
be stored exactly; a file's name is its content digest, so re-running an interval with the
same input writes nothing new, and different input is kept beside the old. Clean and feature
partitions are Parquet, one per interval, written atomically: a re-run replaces the
interval's partition and never duplicates it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

_STAMP = "%Y%m%dT%H%MZ"


@dataclass(frozen=True)
class Interval:
    """A half-open interval [start, end) of UTC time: the unit of every write."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is None:
                raise ValueError(f"interval {name} must be timezone-aware, got {value!r}")
        object.__setattr__(self, "start", _plain_utc(self.start))
        object.__setattr__(self, "end", _plain_utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"empty interval: end {self.end.isoformat()} is not after start {self.start.isoformat()}")

    @property
    def key(self) -> str:
        return f"{self.start:{_STAMP}}_{self.end:{_STAMP}}"

    @classmethod
    def from_key(cls, key: str) -> Interval:
        start, end = key.split("_")
        return cls(
            datetime.strptime(start, _STAMP).replace(tzinfo=UTC),
            datetime.strptime(end, _STAMP).replace(tzinfo=UTC),
        )

    @property
    def label(self) -> str:
        """For people: `2026-11-25 to 2026-12-02 UTC (7 days, end excluded)`; with the hours when
        an end is not at midnight."""
        whole = self.start.time() == self.end.time() == datetime.min.time()
        stamp = "%Y-%m-%d" if whole else "%Y-%m-%d %H:%M"
        span = self.end - self.start
        hours = f"{span.seconds / 3600:g} hours"
        length = f"{span.days} days" if whole else f"{span.days} days {hours}" if span.days else hours
        return f"{self.start:{stamp}} to {self.end:{stamp}} UTC ({length}, end excluded)"

    def days(self) -> list[Interval]:
        """The interval cut at each UTC midnight."""
        days, cursor = [], self.start
        while cursor < self.end:
            midnight = datetime.combine(cursor.date(), datetime.min.time(), UTC) + timedelta(days=1)
            days.append(Interval(cursor, min(midnight, self.end)))
            cursor = days[-1].end
        return days

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


@dataclass(frozen=True)
class Lake:
    root: Path

    def archive(self, zone: str, table: str, part: str, frame: pd.DataFrame) -> Path:
        """Keep a batch as JSON lines under its content digest; idempotent, never overwrites."""
        payload = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="us").encode()
        digest = hashlib.sha256(payload).hexdigest()[:16]
        path = self.root / zone / table / part / f"{digest}.jsonl.gz"
        if not path.exists():
            atomic_write(path, gzip.compress(payload, mtime=0))
        return path

    def read_archive(self, path: Path) -> pd.DataFrame:
        import pandas as pd

        with gzip.open(path, "rt") as handle:
            text = handle.read()
        if not text.strip():
            return pd.DataFrame()
        # Strings stay strings: validation, not the reader, decides what a value means.
        return pd.read_json(StringIO(text), lines=True, dtype=False, convert_dates=False)

    def partition_path(self, zone: str, table: str, part: str) -> Path:
        return self.root / zone / table / f"{part}.parquet"

    def write_partition(self, zone: str, table: str, part: str, frame: pd.DataFrame) -> Path:
        """Replace a partition (an interval key, or a name for reference tables) atomically."""
        path = self.partition_path(zone, table, part)
        with tempfile.NamedTemporaryFile(dir=_ensure_dir(path.parent), suffix=".tmp", delete=False) as handle:
            frame.to_parquet(handle.name, index=False)
        os.replace(handle.name, path)
        return path

    def partitions(self, zone: str, table: str, within: Interval | None = None) -> list[Path]:
        """The table's interval partitions, oldest first, optionally only those overlapping `within`."""
        folder = self.root / zone / table
        if not folder.is_dir():
            return []
        found = []
        for path in folder.glob("*_*.parquet"):
            interval = Interval.from_key(path.stem)
            if within is None or interval.overlaps(within):
                found.append((interval.start, path))
        return [path for _, path in sorted(found)]

    def spans(self, zone: str, table: str) -> list[Interval]:
        """The stretches of time the table's partitions cover, oldest first: adjoining or
        overlapping partitions merged, a gap between two partitions separating two spans."""
        merged: list[Interval] = []
        for path in self.partitions(zone, table):
            held = Interval.from_key(path.stem)
            if merged and held.start <= merged[-1].end:
                merged[-1] = Interval(merged[-1].start, max(merged[-1].end, held.end))
            else:
                merged.append(held)
        return merged

    def missing_days(self, zone: str, table: str, within: Interval) -> list[Interval]:
        """The UTC days (clipped to `within`) that the table's partitions do not cover whole
        (a day may be held by one partition or by several, hourly ones for instance)."""
        held = [Interval.from_key(path.stem) for path in self.partitions(zone, table, within)]  # oldest first
        return [day for day in within.days() if not _covers(held, day)]

    def read(self, zone: str, table: str, within: Interval, time_column: str, key: list[str]) -> pd.DataFrame:
        """Rows of a table whose `time_column` lies in `within`, de-duplicated on `key`."""
        import pandas as pd

        frames = [pd.read_parquet(path) for path in self.partitions(zone, table, within)]
        if not frames:
            return pd.DataFrame()
        # Empty partitions (an hour without flights) add no rows, and would blur the columns' types.
        rows = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
        rows = rows[(rows[time_column] >= within.start) & (rows[time_column] < within.end)]
        return rows.drop_duplicates(subset=key, keep="last").sort_values(time_column).reset_index(drop=True)


def _covers(held: list[Interval], day: Interval) -> bool:
    """Whether the union of `held` (sorted by start) contains `day`."""
    reached = day.start
    for interval in held:
        if interval.start > reached:
            break
        reached = max(reached, interval.end)
        if reached >= day.end:
            return True
    return False


def _plain_utc(value: datetime) -> datetime:
    """A standard-library UTC datetime (Airflow hands out pendulum ones, whose arithmetic differs)."""
    v = value.astimezone(UTC)
    return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC)


def _ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one rename, through a temporary file of its own."""
    with tempfile.NamedTemporaryFile(dir=_ensure_dir(path.parent), suffix=".tmp", delete=False) as handle:
        handle.write(data)
    os.replace(handle.name, path)
