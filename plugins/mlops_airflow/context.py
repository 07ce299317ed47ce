"""Turn a task's Airflow context into the library's terms."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.mlops.lake import Interval


def data_interval(context: Context) -> Interval:
    """The run's data interval; a manual run without a logical date takes the last whole UTC day
    before it was triggered, so that it never depends on the wall clock at execution."""
    from include.mlops.lake import Interval

    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None:
        end = context["dag_run"].run_after.replace(hour=0, minute=0, second=0, microsecond=0)
        start = end - timedelta(days=1)
    return Interval(start, end)
