"""The scheduler's part of an asset-driven schedule, in a test that has no scheduler running.

`make_partition_runs` is one pass of the scheduler's own step that turns the partitions asset events
brought into DAG runs (`SchedulerJobRunner._create_dagruns_for_partitioned_asset_dags`); `run`
runs such a run's tasks in this process, with the loop `dag.test()` uses for the run it makes (the
same task runner: `dag.test()` itself cannot run a run made by someone else), on the DAG as stored
in the database, as the scheduler reads it. The first hour's `make up` does both for real.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun


def unpause(*dag_ids: str) -> None:
    """Asset events queue runs of unpaused DAGs only (DAGs are paused when first seen here)."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id.in_(dag_ids)).update({"is_paused": False})


def make_partition_runs() -> list[tuple[str, str]]:
    """The runs the scheduler makes now from the partitions that arrived: (dag id, run id) each."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        before = {(r.dag_id, r.run_id) for r in session.query(DagRun.dag_id, DagRun.run_id)}
        SchedulerJobRunner(job=Job(), num_runs=1)._create_dagruns_for_partitioned_asset_dags(session)
        session.flush()
        after = {(r.dag_id, r.run_id) for r in session.query(DagRun.dag_id, DagRun.run_id)}
    return sorted(after - before)


def run(dag_id: str, run_id: str) -> DagRun:
    """Run a queued run to its end, as `dag.test()` runs its own, its tasks from the DAG file parsed
    afresh, as a worker parses it; the finished run."""
    import time

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils import timezone
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    dag = DagBag().get_dag(dag_id)
    with create_session() as session:
        dr = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        dr.dag = SerializedDagModel.get_dag(dag_id, session=session)  # as stored, as the scheduler reads it
        dr.state, dr.start_date = DagRunState.RUNNING, timezone.utcnow()
        session.commit()
        while dr.state == DagRunState.RUNNING:
            session.expire_all()
            schedulable, _ = dr.update_state(session=session)
            for ti in schedulable:
                ti.try_number += 1
                ti.state, ti.scheduled_dttm = TaskInstanceState.SCHEDULED, timezone.utcnow()
            session.commit()
            scheduled = dr.get_task_instances(state=[TaskInstanceState.SCHEDULED], session=session)
            for ti in scheduled:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
            if not scheduled:
                time.sleep(1)  # a retry's delay
    with create_session() as session:
        done = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        session.expunge(done)
        return done
