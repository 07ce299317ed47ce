"""Validate a raw batch against a table schema: keep good rows, quarantine bad ones with reasons.

Two kinds of problem are told apart:
- a bad row (wrong type, out of range, missing required value, duplicate key, timestamp
  outside the interval) is quarantined with its reason and counted;
- a bad batch (missing columns, timestamps without a time zone, an empty interval, a column
  that is mostly null, too many rejected rows) fails with a message naming the problem.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd

# "timestamp" is an instant (time-zone aware, held as UTC); "wall_clock" is a local date and time
# as a source records it, without a zone (a calendar fact, not an instant).
Kind = Literal["string", "int", "float", "timestamp", "wall_clock"]
REASON_COLUMN = "rejection_reason"


class DataValidationError(ValueError):
    """A batch that cannot be accepted as a whole; the message says why."""


@dataclass(frozen=True)
class Column:
    """What one column must hold."""

    kind: Kind
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: frozenset[str] | None = None
    max_null_share: float = 1.0  # above this share of nulls the whole batch is suspect


@dataclass(frozen=True)
class TableSchema:
    """A table's columns, its key, and the timestamp that must fall inside the interval."""

    name: str
    columns: Mapping[str, Column]
    key: tuple[str, ...]
    time_column: str | None = None
    min_rows: int = 1


@dataclass
class ValidationResult:
    """The outcome of validating one batch."""

    table: str
    valid: pd.DataFrame
    rejected: pd.DataFrame
    problems: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.valid) + len(self.rejected)

    @property
    def reject_rate(self) -> float:
        return len(self.rejected) / self.rows if self.rows else 0.0

    @property
    def reasons(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for reasons in self.rejected[REASON_COLUMN]:
            counts.update(reasons.split("; "))
        return dict(counts.most_common())

    def summary(self) -> dict[str, object]:
        return {
            "table": self.table,
            "rows": self.rows,
            "valid": len(self.valid),
            "rejected": len(self.rejected),
            "reject_rate": round(self.reject_rate, 6),
            "reasons": self.reasons,
            "problems": list(self.problems),
        }

    def raise_for_problems(self, max_reject_rate: float) -> None:
        """Fail when the batch as a whole is unacceptable."""
        problems = list(self.problems)
        if self.reject_rate > max_reject_rate:
            top = ", ".join(f"{reason} ({count})" for reason, count in list(self.reasons.items())[:5])
            problems.append(
                f"{len(self.rejected)} of {self.rows} rows rejected ({self.reject_rate:.1%}, "
                f"threshold {max_reject_rate:.1%}); top reasons: {top}"
            )
        if problems:
            raise DataValidationError(f"{self.table}: " + "; ".join(problems))


def validate(
    frame: pd.DataFrame,
    schema: TableSchema,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ValidationResult:
    """Check a raw batch row by row; structural errors raise, row errors are quarantined.

    The batch-wide rules (at least `min_rows` rows, at most `max_null_share` nulls in a column)
    judge a batch of a day or more, or without an interval: an hour's batch is too small for them
    (an hour of the night has no flights; three weather rows make any null share 0% or 33%+)."""
    import numpy as np
    import pandas as pd

    whole = start is None or end is None or end - start >= timedelta(days=1)
    min_rows = schema.min_rows if whole else 0
    if frame.empty:
        # An empty batch (which may not even carry its columns) is judged by its size alone.
        window = f" in [{start.isoformat()}, {end.isoformat()})" if start and end else ""
        problems = [f"0 rows{window}, expected at least {min_rows}"] if min_rows else []
        nothing = pd.DataFrame(columns=list(schema.columns))
        return ValidationResult(schema.name, nothing, nothing.assign(**{REASON_COLUMN: []}), problems)
    missing = [name for name in schema.columns if name not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{schema.name}: missing column(s) {', '.join(missing)}; "
            f"got {', '.join(map(str, frame.columns)) or 'no columns'}"
        )
    frame = frame.reset_index(drop=True)
    problems: list[str] = []
    if len(frame) < min_rows:
        problems.append(f"{len(frame)} rows, expected at least {min_rows}")

    typed = pd.DataFrame(index=frame.index)
    reasons = [[] for _ in range(len(frame))]

    def flag(mask: np.ndarray, reason: str) -> None:
        for i in np.flatnonzero(mask):
            reasons[i].append(reason)

    for name, column in schema.columns.items():
        raw = frame[name]
        values = _coerce(raw, column.kind, schema.name, name)
        present = raw.notna().to_numpy()
        null = values.isna().to_numpy()
        flag(present & null, f"{name}: not a valid {column.kind}")
        if not column.nullable:
            flag(~present, f"{name}: missing")
        if column.kind == "int":
            fractional = ~null & (values.fillna(0) % 1 != 0).to_numpy()
            flag(fractional, f"{name}: not a whole number")
        if column.min is not None:
            flag(~null & (values < column.min).to_numpy(), f"{name}: below {column.min}")
        if column.max is not None:
            flag(~null & (values > column.max).to_numpy(), f"{name}: above {column.max}")
        if column.allowed is not None:
            flag(~null & ~values.isin(column.allowed).to_numpy(), f"{name}: unknown value")
        null_share = float(null.mean()) if len(null) else 0.0
        if whole and null_share > column.max_null_share:
            problems.append(f"column {name} is {null_share:.0%} null (at most {column.max_null_share:.0%} expected)")
        typed[name] = values

    if schema.time_column and start is not None and end is not None:
        stamps = typed[schema.time_column]
        outside = stamps.notna() & ((stamps < start) | (stamps >= end))
        flag(outside.to_numpy(), f"{schema.time_column}: outside the interval")

    ok = np.array([not r for r in reasons], dtype=bool)
    # A duplicate is judged among rows that are otherwise valid: the first one wins.
    later = typed[ok].duplicated(list(schema.key), keep="first")
    duplicate = later.reindex(typed.index, fill_value=False).to_numpy()
    flag(duplicate, f"duplicate {'/'.join(schema.key)}")
    ok &= ~duplicate

    rejected = frame[~ok].copy()
    rejected[REASON_COLUMN] = ["; ".join(r) for r, keep in zip(reasons, ok, strict=True) if not keep]
    return ValidationResult(schema.name, typed[ok].reset_index(drop=True), rejected.reset_index(drop=True), problems)


def _coerce(raw: pd.Series, kind: Kind, table: str, name: str) -> pd.Series:
    """Convert a column to its kind; values that do not convert become null (and are flagged)."""
    import pandas as pd

    if kind == "string":
        return raw.where(raw.map(lambda v: isinstance(v, str)), None).astype("object")
    if kind in ("int", "float"):
        if raw.dtype == bool:
            return pd.Series(float("nan"), index=raw.index)
        numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
        if kind == "int" and (numbers.dropna() % 1 == 0).all():
            return numbers.astype("Int64")
        return numbers
    if kind == "wall_clock":
        clock = pd.to_datetime(raw, errors="coerce", format="ISO8601")
        if isinstance(clock.dtype, pd.DatetimeTZDtype):
            raise DataValidationError(
                f"{table}: column {name} holds instants with a time zone; it must be a local wall-clock time"
            )
        return clock
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        raise DataValidationError(
            f"{table}: column {name} holds timestamps without a time zone; the source must return UTC"
        )
    return pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
