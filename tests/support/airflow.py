"""The tests' Airflow: its metadata database, and the edits of it a test makes to stage a situation
(a training run left queued, a sensor rescheduled) that `dag.test()` would not reach by itself."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (SQLite) for this session."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ,
    )
    return Path(os.environ["AIRFLOW_HOME"])


def finish_training_runs(state: str) -> None:
    """Put the training runs that drift checks triggered (`drift__...`) in `state`."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).filter(DagRun.dag_id == "training_pipeline").all():
            if run.run_id.startswith("drift__"):
                run.state = state


def training_runs(prefix: str = "drift__") -> list:
    """The runs of training_pipeline whose id starts with `prefix`: (run id, conf, state)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "training_pipeline").all()
        return [(r.run_id, r.conf, r.state) for r in runs if r.run_id.startswith(prefix)]


def set_task_state(dag_id: str, run_id: str, task_id: str, task_state: str | None) -> None:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id).one()
        ti.state = task_state


def midnight(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def interval_conf(start: str, end: str) -> dict[str, str]:
    """A manual run's conf that sets its data interval (the DAGs' `interval_start`/`interval_end`)."""
    return {"interval_start": start, "interval_end": end}
