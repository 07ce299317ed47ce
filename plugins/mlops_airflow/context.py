"""Turn a task's Airflow context into the library's terms."""

from __future__ import annotations

from datetime import datetime, timedelta
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
        end = run_day(context)
        start = end - timedelta(days=1)
    return Interval(start, end)


def airflow_ids(context: Context) -> dict[str, str]:
    """The Airflow identity of a task try, for MLflow tags and audit entries."""
    ti = context["ti"]
    ids = {"airflow.dag_id": ti.dag_id, "airflow.run_id": ti.run_id, "airflow.try_number": str(ti.try_number)}
    user = getattr(context.get("dag_run"), "triggering_user_name", None)
    return ids | ({"airflow.triggered_by": user} if user else {})


def run_time(context: Context) -> datetime:
    """When the run was due: the end of its data interval when scheduled or backfilled, the moment
    of the trigger when manual. Labels known by then are the ones a run may use."""
    return context["dag_run"].run_after


def run_day(context: Context) -> datetime:
    """Midnight UTC of the run's time: where the run's whole-day windows (training, evaluation) end."""
    return run_time(context).replace(hour=0, minute=0, second=0, microsecond=0)


def training_window(context: Context) -> Interval:
    """The training window of a run: from its params, or the 8 weeks of whole UTC days before the
    run's time.

    The window may not end after the run's time (`run_time`): its labels could not have landed.
    """
    from datetime import UTC, datetime

    from include.mlops.lake import Interval

    params = context["params"]
    now = run_time(context)
    end = (
        datetime.fromisoformat(params["window_end"]).replace(tzinfo=UTC)
        if params.get("window_end")
        else run_day(context)
    )
    start = (
        datetime.fromisoformat(params["window_start"]).replace(tzinfo=UTC)
        if params.get("window_start")
        else end - timedelta(weeks=8)
    )
    if end > now:
        raise ValueError(f"training window end {end.date()} is after the run's time {now.isoformat()}")
    if start >= end:
        raise ValueError(f"training window start {start.date()} is not before its end {end.date()}")
    return Interval(start, end)
