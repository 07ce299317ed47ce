"""Answering Airflow's human-in-the-loop tasks while `dag.test()` waits for them.

`dag.test()` runs a human-in-the-loop task until it waits for input, then looks at the database
every second until a response resumes it. A person answers through the REST API; here a thread
calls the REST API's own route function (`update_hitl_detail`: the same validation, the same
`responded_by`, the same resume), without the HTTP server, which `dag.test()` does not run. The
production stack's end-to-end test answers through the HTTP API itself.

A timeout is the scheduler's: `dag.test()` runs no scheduler, so `time_out` moves the task's
deadline to the past and runs the scheduler's own sweep (`check_awaiting_input_timeouts`) once.
"""

from __future__ import annotations

import _thread
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def _waiting(dag_id: str, task_id: str, session):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    return session.scalar(
        select(TaskInstance)
        .where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.task_id == task_id,
            TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
        )
        .order_by(TaskInstance.id.desc())  # ids are UUIDv7: the newest first
        .limit(1)
    )


def _when_asked(dag_id: str, task_id: str, act: Callable, max_wait: float = 900) -> threading.Thread:
    """Run `act(task_instance, session)` in a thread once the task waits for input.

    What the thread uses is imported, and the ORM configured, here first: a thread importing Airflow's
    models while `dag.test()` imports them too deadlocks on the import locks."""
    from airflow.models import import_all_models
    from sqlalchemy.orm import configure_mappers

    import_all_models()
    configure_mappers()
    failures: list[BaseException] = []

    def watch() -> None:
        from airflow.utils.session import create_session

        deadline = time.monotonic() + max_wait
        try:
            while time.monotonic() < deadline:
                with create_session() as session:  # commits on exit
                    ti = _waiting(dag_id, task_id, session)
                    if ti is not None:
                        act(ti, session)
                        return
                time.sleep(0.5)
            raise TimeoutError(f"{dag_id}.{task_id} never waited for input within {max_wait} s")
        except BaseException as error:
            failures.append(error)
            traceback.print_exc()  # the interrupt below may land inside a task, which takes it for its own failure
            _thread.interrupt_main()  # dag.test() would wait for the answer forever

    thread = threading.Thread(target=watch, daemon=True)
    thread.failures = failures  # type: ignore[attr-defined]
    thread.start()
    return thread


def answer(dag_id: str, task_id: str, chosen: list[str], params_input: dict | None = None, user: str = "alice"):
    """A person (`user`) answers the task when it asks."""

    def respond(ti, session) -> None:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail

        update_hitl_detail(
            dag_id=dag_id,
            dag_run_id=ti.run_id,
            task_id=task_id,
            update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=chosen, params_input=params_input or {}),
            user=SimpleAuthManagerUser(username=user, role="admin"),
            session=session,
            map_index=ti.map_index,
        )

    return _when_asked(dag_id, task_id, respond)


def time_out(dag_id: str, task_id: str):
    """Nobody answers: the task's deadline passes and the scheduler's sweep applies its defaults."""

    def expire(ti, session) -> None:
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

        ti.trigger_timeout = datetime.now(UTC) - timedelta(seconds=1)
        session.commit()
        SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()

    return _when_asked(dag_id, task_id, expire)


def finished(thread: threading.Thread) -> None:
    """The thread answered, or its failure is raised here (it has also interrupted the test's wait)."""
    thread.join(timeout=30)
    if thread.failures:  # type: ignore[attr-defined]
        raise thread.failures[0]  # type: ignore[attr-defined]
