"""End to end on the production stack, twice: natively (`scripts/stack.py`, the `stack` marker,
`make test-stack`) and in containers (docker-compose.yaml with scripts/docker/host.yaml,
`scripts/docker_stack.py`, the `compose` marker, `make test-compose`); `.ci/run` runs both. MLflow
tracking server on PostgreSQL; Airflow api-server, scheduler, dag-processor, triggerer and Celery
workers (the default queue's: two natively, one in containers; one for `training`) on PostgreSQL
and Redis; Feast with its SQL registry and the Redis online store. Natively, PostgreSQL and Redis
are the machine's; in containers, the compose file's own services. Driven as a user drives it,
through Airflow's REST API: a token from `/auth/token` (FAB auth manager), unpause, trigger,
poll, with bounded waits.

The days: features for 26 October-16 November 2026 (replaying 2013), built by four manual runs of
the hourly `feature_pipeline` (a week each, the last a day); a model
trained on 28 October-6 November, validated on 7-9 November and judged on 10-16 November (a
shorter training window gives a model no better than the base rate, which the gate rejects); the
champion scores 15 and 16 November in one manual run, whose features carry an injected fault (temperatures in °C
instead of °F); the drift check of 17 November names it as a data-quality incident, alerts a
person and retrains nothing.

Then the faults, on the same stack and in this order (each builds on the loop's state): the MLflow
server stopped during training and restarted; a Celery worker killed during a task; PostgreSQL
restarted during a run. Nothing may be lost and nothing half done. Last, a worker asked to stop
shuts down warm.

The stack runs as deployed, but for what makes the tests finish in minutes rather than hours:
- `[scheduler] use_job_schedule = False`: only the runs the test triggers run, none of the
  DAGs' scheduled ones;
- a cluster policy (`airflow_local_settings.py` in the stack's Airflow home) shortens every
  task's retry delay to 30 s, where the DAGs wait one or two minutes;
- `[scheduler] task_instance_heartbeat_timeout` is 20 s, so a task whose worker died is noticed
  in seconds instead of 5 minutes;
- MLflow's client retries a failed request twice instead of 7 times (minutes of back-off).
Each gets its own ports and state folder; natively its own databases and Redis databases, which it
drops afterwards; in containers its own compose project, whose containers and volumes it removes.
"""

from __future__ import annotations

import secrets
import subprocess
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from functools import partial
from types import SimpleNamespace

import pandas as pd
import psycopg
import pytest

from include.flights import pipeline
from include.mlops.lake import Interval, Lake
from include.mlops.settings import Settings
from scripts import docker_stack, stack
from tests.support.airflow import interval_conf, midnight
from tests.support.data import inject_shift
from tests.support.servers import Api, free_port, holds_preloaded, process_tree

FEATURE_DAYS = [date(2026, 10, 26) + timedelta(days=n) for n in range(22)]  # 26 October-16 November
# The window starts two days after the first feature day: its first departures are predicted on the day
# before, with the aircraft's departures of the 24 hours before that.
TRAINING_CONF = {"window_start": "2026-10-28", "window_end": "2026-11-17", "max_iter": 30, "reason": "end to end"}
JUDGED_ON = datetime(2026, 11, 17, tzinfo=UTC)  # the gate's evaluation week is the 7 days before it
SCORED = [date(2026, 11, 15), date(2026, 11, 16)]
DAGS = ("feature_pipeline", "training_pipeline", "batch_inference", "drift_monitoring", "drift_escalation")
RETRY_POLICY = """\
from datetime import timedelta


def task_policy(task):
    task.retry_delay = timedelta(seconds=30)
"""


@pytest.fixture(
    scope="module",
    params=[pytest.param("native", marks=pytest.mark.stack), pytest.param("containers", marks=pytest.mark.compose)],
)
def production(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The stack, natively (`stack`) or in containers (`compose`), with the settings above."""
    from cryptography.fernet import Fernet

    folder = tmp_path_factory.mktemp(request.param)
    values = {
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        "AIRFLOW_PORT": str(free_port()),
        "MLFLOW_PORT": str(free_port()),
    }
    values["MLOPS_MLFLOW_UI_URL"] = f"http://127.0.0.1:{values['MLFLOW_PORT']}"
    (folder / "airflow" / "config").mkdir(parents=True)
    (folder / "airflow" / "config" / "airflow_local_settings.py").write_text(RETRY_POLICY)
    settings = {
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the runs the test triggers
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    }
    if request.param == "native":
        values |= {
            "POSTGRES_USER": "postgres",
            "POSTGRES_PASSWORD": "unused-with-trust-auth",
            "STACK_DIR": str(folder),
            "STACK_DB_PREFIX": f"mlops_e2e_{uuid.uuid4().hex[:8]}_",
            "STACK_REDIS_DB_BASE": "12",  # 12: the Celery broker, 13: Feast's online store
        }
        production = stack.Stack(values)
        up, down = partial(production.up, scale={"airflow-worker": 2}), partial(production.down, purge=True)
        workers = ("airflow-worker", "airflow-worker-2")  # `--scale airflow-worker=2`
    else:
        values |= {"POSTGRES_USER": "mlops", "POSTGRES_PASSWORD": secrets.token_urlsafe(12)}
        values |= {name: str(free_port()) for name in docker_stack.overlay_ports()}
        production = docker_stack.ComposeStack(
            values,
            project=f"mlops_e2e_{uuid.uuid4().hex[:8]}",
            folder=folder,
            airflow_environment=settings,
            airflow_volumes=[f"{folder / 'airflow' / 'config'}:/opt/airflow/config:ro"],
        )
        up, down = production.up, production.down
        # One default worker: a killed container is started again by its restart policy.
        workers = ("airflow-worker",)
    with pytest.MonkeyPatch.context() as env:
        for key, value in settings.items():
            env.setenv(key, value)  # the native services' environment, and the test's MLflow client's
        started = time.monotonic()
        try:
            up()
            if request.param == "containers":  # on the host's network, from the images built here
                running = {name: production.inspect(name) for name in production.services()}
                assert {c["HostConfig"]["NetworkMode"] for c in running.values()} == {"host"}, running
                assert {c["Config"]["Image"] for c in running.values()} == {
                    docker_stack.IMAGE,
                    docker_stack.SERVICES_IMAGE,
                }
                # The image installs requirements.lock alone: no test or lint tooling ships.
                found = docker_stack.docker(
                    "run", "--rm", "--network", "none", docker_stack.IMAGE, "python", "-c",
                    "import importlib.util as u; print([m for m in ('pytest', 'selenium', 'ruff') if u.find_spec(m)])",
                    capture=True,
                )  # fmt: skip
                assert found.stdout.strip() == "[]", found.stdout
            api = Api(f"http://127.0.0.1:{production.airflow_port}", "admin", values["AIRFLOW_ADMIN_PASSWORD"])
            yield SimpleNamespace(stack=production, api=api, started=started, default_workers=workers)
        finally:
            stopping = time.monotonic()
            down()
            print(f"\n{request.param}: down in {time.monotonic() - stopping:.0f} s")


def test_the_whole_loop_through_the_rest_api(production) -> None:
    api, deployed = production.api, production.stack
    for dag_id in DAGS:
        api.call("PATCH", f"/dags/{dag_id}", is_paused=False)

    # Features for real days: manual runs of a week each, at once (the production stores take
    # concurrent writers; the DAG's own limit of one active run is for the embedded ones).
    weeks = [FEATURE_DAYS[n : n + 7] for n in range(0, len(FEATURE_DAYS), 7)]
    runs = [
        api.trigger("feature_pipeline", f"e2e__features_{n}", midnight(week[-1] + timedelta(days=1)),
                    **interval_conf(midnight(week[0]), midnight(week[-1] + timedelta(days=1))))
        for n, week in enumerate(weeks)
    ]  # fmt: skip
    for run_id in runs:
        assert set(api.wait("feature_pipeline", run_id, timeout=600).values()) == {"success"}
    lake = Lake(Settings.from_env(deployed.environment()).lake_dir)
    built = Interval(datetime.fromisoformat(midnight(FEATURE_DAYS[0])), JUDGED_ON)
    assert lake.missing_days("features", "weather", built) == []
    features_done = time.monotonic()

    # Training, the gate and the promotion, as of 17 November.
    training = api.trigger(
        "training_pipeline", "e2e__training", midnight(JUDGED_ON.date()), JUDGED_ON.isoformat(), **TRAINING_CONF
    )
    # The production profile asks a person before the champion moves: they approve through the REST API.
    response = api.answer("training_pipeline", training, "approve", ["Approve"], timeout=600)
    assert response["responded_by"]["name"] == "admin" and response["chosen_options"] == ["Approve"]
    states = api.wait("training_pipeline", training, timeout=300)
    assert states["gate"] == "success" and states["approve"] == "success" and states["promote"] == "success", states
    asked = api.call("GET", f"/dags/training_pipeline/dagRuns/{training}/taskInstances/approve/-1/hitlDetails")
    assert asked["subject"] == "Promote version 1 of flight_delay to production?"
    assert "# Promotion gate: flight_delay version 1" in asked["body"]
    assert asked["responded_by_user"]["name"] == "admin" and asked["chosen_options"] == ["Approve"]
    train = [t for t in api.tasks("training_pipeline", training) if t["task_id"] == "train"]
    assert train and all(t["queue"] == "training" for t in train)
    training_worker = deployed.log("airflow-worker-training")
    default_workers = "".join(deployed.log(name) for name in production.default_workers)
    assert f"dag_id=training_pipeline/run_id={training}/task_id=train/" in training_worker
    assert "task_id=train/" not in default_workers and f"run_id={training}/task_id=prepare/" in default_workers

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=deployed.environment()["AIRFLOW_CONN_MLFLOW_DEFAULT"])
    champion = client.get_model_version_by_alias("flight_delay", "champion")
    assert champion.version == "1" and champion.tags["gate.decision"] == "first-model"
    assert client.get_run(champion.run_id).data.tags["airflow.run_id"] == training
    audit = client.get_experiment_by_name("registry_audit").experiment_id
    [move] = client.search_runs([audit], filter_string="params.action = 'promote'")
    assert move.data.params["airflow.approval_answered_by"] == "admin"  # who approved, in the promotion's entry
    assert move.data.params["airflow.approval_answer"] == "Approve"
    trained = time.monotonic()

    # The champion scores two days whose features carry a broken feed's shift.
    settings = Settings.from_env(deployed.environment())
    inject_shift(settings, Interval(datetime(2026, 11, 15, tzinfo=UTC), datetime(2026, 11, 17, tzinfo=UTC)))
    scored = pipeline.interval_predicting(settings, Interval(datetime.fromisoformat(midnight(SCORED[0])), JUDGED_ON))
    conf = interval_conf(scored.start.isoformat(), scored.end.isoformat())
    run_id = api.trigger("batch_inference", "e2e__scoring", scored.end.isoformat(), **conf)
    assert api.wait("batch_inference", run_id, timeout=300)["score"] == "success"

    # The check of 17 November sees a broken feed: a data-quality incident that calls a person and
    # asks for no retrain. The log holds no production weeks before these two days, so the check
    # compares them with the champion's training sample.
    check = api.trigger(
        "drift_monitoring",
        "e2e__drift",
        midnight(JUDGED_ON.date() - timedelta(days=1)),
        (JUDGED_ON + timedelta(hours=1)).isoformat(),
        window_days=2,
        rules={"policy": {"reference": "training"}},
    )
    states = api.wait("drift_monitoring", check, timeout=300)
    assert states["check"] == "success" and states["escalate"] == "success", states
    assert states["trigger_training"] == "skipped", states
    xcom = f"/dags/drift_monitoring/dagRuns/{check}/taskInstances/check/xcomEntries/return_value"
    result = api.call("GET", xcom)["value"]
    assert result["action"] == "incident" and result["escalation_kind"] == "data_quality", result["reasons"]
    assert "weather__temp out_of_range" in result["incidents"]
    # A person is asked what to do, and mutes data-quality escalations for three days.
    escalation = f"escalation__{check}"
    form = {"window_start": None, "window_end": None, "family": "hist_gradient_boosting", "mute_days": 3}
    response = api.answer("drift_escalation", escalation, "ask", ["Mute"], timeout=300, **form)
    assert response["responded_by"]["name"] == "admin"
    states = api.wait("drift_escalation", escalation, timeout=300)
    assert states["act"] == "success" and states["roll_back"] == "skipped" and states["retrain"] == "skipped", states
    alerts = Settings.from_env(deployed.environment()).alert_log_path.read_text()
    assert "(data quality)" in alerts and "weather__temp" in alerts  # the person was called
    answered = client.get_run(result["run_id"]).data.tags
    assert (answered["drift.answer"], answered["drift.answered_by"]) == ("Mute", "admin"), answered
    assert answered["drift.muted_until"] > answered["drift.answered_at"]
    print(
        f"\nend to end: start {features_done - production.started:.0f} s including {len(FEATURE_DAYS)} feature days, "
        f"training {trained - features_done:.0f} s, scoring and drift {time.monotonic() - trained:.0f} s"
    )


def test_the_workers_fork_their_tasks_with_the_task_libraries_imported(production) -> None:
    """Each Celery worker imports `mlops_airflow.preload` before it starts its pool
    (`mlops_airflow.celery_config`), so the pool's processes, which fork the tasks, hold it. A
    pool process is titled `ForkPoolWorker-<n>`, or `airflow supervisor: <task>` once it has
    supervised a task."""
    deployed = production.stack
    for worker in (*production.default_workers, "airflow-worker-training"):
        if isinstance(deployed, stack.Stack):
            root = deployed.running()[worker]
        else:
            root = deployed.inspect(worker)["State"]["Pid"]
        processes = process_tree(root)
        pool = [pid for pid, title in processes.items() if "ForkPoolWorker" in title or "airflow supervisor" in title]
        assert pool, (worker, list(processes.values()))
        assert all(holds_preloaded(pid) for pid in pool), (worker, {pid: processes[pid] for pid in pool})


def test_mlflow_stopped_during_training_then_restarted(production) -> None:
    """The `train` attempt that loses the tracking server fails; once the server is back, its
    retry trains again, and the gate judges the one version registered. The run the dead attempt
    left open is closed as FAILED, and the champion is a version the gate passed."""
    api, deployed = production.api, production.stack
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=deployed.environment()["AIRFLOW_CONN_MLFLOW_DEFAULT"])
    versions_before = {v.version for v in client.search_model_versions("name = 'flight_delay'")}
    run_id = api.trigger(
        "training_pipeline",
        "e2e__mlflow_down",
        (JUDGED_ON + timedelta(hours=6)).isoformat(),
        JUDGED_ON.isoformat(),
        **TRAINING_CONF | {"max_iter": 40, "reason": "MLflow stopped during training", "require_approval": False},
    )
    api.wait_for_task("training_pipeline", run_id, "train", {"running"}, timeout=300, map_index=0)
    deployed.kill("mlflow")  # at once: a graceful stop waits for open connections
    deployed.stop(["mlflow"], timeout=0)  # and no restart policy brings it back before the test does
    failed = api.wait_for_task("training_pipeline", run_id, "train", {"up_for_retry", "failed"}, 120, map_index=0)
    assert failed["state"] == "up_for_retry", failed
    # The retry is held, as an operator holds training during an outage, by draining the training
    # pool until the server answers again: its restart takes about a minute here, longer than the
    # test's retry delay. (Pausing the DAG would not hold it: a paused DAG's running runs go on.)
    pool = api.call("GET", "/pools/training")
    kept = {"pool": "training", "include_deferred": pool["include_deferred"]}  # a patch names the whole pool
    api.call("PATCH", "/pools/training", **kept, slots=0)
    deployed.start("mlflow")
    deployed.wait_healthy()
    held = api.task("training_pipeline", run_id, "train", map_index=0)["state"]
    assert held in ("up_for_retry", "scheduled"), held  # waiting for a slot, not run while the server was down
    api.call("PATCH", "/pools/training", **kept, slots=pool["slots"])

    states = api.wait("training_pipeline", run_id, timeout=300)
    # 2, or 3 if the pool was drained only after the second attempt had started (and failed).
    assert api.task("training_pipeline", run_id, "train", map_index=0)["try_number"] >= 2
    assert states["register"] == "success" and states["gate"] == "success" and states["close_run"] == "success"

    new = [v for v in client.search_model_versions("name = 'flight_delay'") if v.version not in versions_before]
    assert len(new) == 1, [v.version for v in new]  # one version: the retry's, nothing from the dead attempt
    version = client.get_model_version("flight_delay", new[0].version)
    champion = client.get_model_version_by_alias("flight_delay", "champion")
    assert champion.tags["gate.decision"] in ("first-model", "promote"), champion.tags
    assert version.tags["gate.decision"] in ("promote", "reject")
    assert (champion.version == version.version) == (version.tags["gate.decision"] == "promote")
    assert (states["promote"] == "success") == (version.tags["gate.decision"] == "promote")
    parent = version.tags["parent_run_id"]
    children = client.search_runs(
        [client.get_run(parent).info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    assert client.get_run(parent).info.status == "FINISHED"
    assert not [c.info.run_id for c in children if c.info.status == "RUNNING"]  # nothing left half open
    assert [c.info.run_id for c in children if c.info.status == "FINISHED"] == [version.run_id]


def test_a_worker_killed_during_a_task(production) -> None:
    """The worker running `build_features` is killed (SIGKILL to it and its task: natively its
    process group, in containers the container's first process). The scheduler notices the lost
    task and the retry runs on a default worker (natively the other one; in containers the same
    service, started again by its restart policy). The day's features are written once: each
    partition holds the rows the successful attempt counted, no row twice."""
    api, deployed = production.api, production.stack
    day = date(2026, 11, 17)
    run_id = api.trigger(
        "feature_pipeline", "e2e__worker_killed", midnight(day + timedelta(days=1)),
        **interval_conf(midnight(day), midnight(day + timedelta(days=1))),
    )  # fmt: skip
    api.wait_for_task("feature_pipeline", run_id, "build_features", {"running"}, timeout=300)
    first = f"run_id={run_id}/task_id=build_features/attempt=1.log"
    victim = next((name for name in production.default_workers if first in deployed.log(name)), None)
    assert victim, f"no default worker logged {first}"
    deployed.kill(victim)

    states = api.wait("feature_pipeline", run_id, timeout=300)
    assert set(states.values()) == {"success"}, states
    assert api.task("feature_pipeline", run_id, "build_features")["try_number"] == 2
    second = f"run_id={run_id}/task_id=build_features/attempt=2.log"
    assert any(second in deployed.log(name) for name in production.default_workers)

    written = api.call(
        "GET", f"/dags/feature_pipeline/dagRuns/{run_id}/taskInstances/build_features/xcomEntries/return_value"
    )["value"]
    lake = Lake(Settings.from_env(deployed.environment()).lake_dir)
    interval = Interval(datetime(2026, 11, 17, tzinfo=UTC), datetime(2026, 11, 18, tzinfo=UTC))
    for view in ("weather", "origin_ops", "carrier_ops", "route_ops"):
        (partition,) = lake.partitions("features", view, interval)
        frame = pd.read_parquet(partition)
        assert len(frame) == written[view] > 0, view
        assert not frame.duplicated().any(), view


def test_postgresql_restarted_during_a_run(production) -> None:
    """PostgreSQL (Airflow's, MLflow's and Feast's registry database) restarts while
    `feature_pipeline` builds a day. What happens depends on who queries while it is down: a
    connection pool reconnects on its next checkout; a scheduler, dag-processor or triggerer that
    hits the shutdown exits and is started again by its restart policy, as compose restarts a
    container; a task that loses the database fails and retries. Either way the run completes."""
    api, deployed = production.api, production.stack
    day = date(2026, 11, 18)
    run_id = api.trigger(
        "feature_pipeline", "e2e__postgres_restarted", midnight(day + timedelta(days=1)),
        **interval_conf(midnight(day), midnight(day + timedelta(days=1))),
    )  # fmt: skip
    api.wait_for_task("feature_pipeline", run_id, "build_features", {"running"}, timeout=300)
    restarted_at = datetime.now(UTC)
    if isinstance(deployed, stack.Stack):
        restart_postgres(deployed.admin_url())  # the machine's
    else:
        deployed.restart("postgres")  # the container's: a fast shutdown, then the same data volume
    wait_for_postgres(deployed.admin_url())  # until then the API server answers 500, as it should

    states = api.wait("feature_pipeline", run_id, timeout=420)
    assert set(states.values()) == {"success"}, states
    with psycopg.connect(deployed.admin_url()) as conn:
        assert conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0] > restarted_at
    tries = {t["task_id"]: t["try_number"] for t in api.tasks("feature_pipeline", run_id)}
    print(f"\nPostgreSQL restart: tries per task {tries}; restarted by their policy: {deployed.restarted()}")
    deployed.wait_healthy()  # every service answers again
    if isinstance(deployed, stack.Stack):  # natively, every process runs again but the killed worker
        assert set(deployed.services()) - set(production.default_workers) <= set(deployed.running())


def test_a_worker_asked_to_stop_shuts_down_warm(production) -> None:
    """`docker compose stop` sends SIGTERM, which the container's init process passes to the
    Celery worker alone (natively, SIGTERM to the worker's process group): the worker stops taking
    tasks and lets its running ones finish (Celery's warm shutdown) rather than dying mid-task."""
    deployed = production.stack
    deployed.stop(["airflow-worker-training"], timeout=120)
    assert "worker: Warm shutdown" in deployed.log("airflow-worker-training")


def restart_postgres(admin_url: str) -> None:
    """Restart the machine's PostgreSQL cluster (Debian's pg_ctlcluster)."""
    with psycopg.connect(admin_url) as conn:
        data_directory = conn.execute("SHOW data_directory").fetchone()[0]  # /var/lib/postgresql/<v>/<cluster>
    version, cluster = data_directory.rstrip("/").split("/")[-2:]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart"], check=True, timeout=120)


def wait_for_postgres(admin_url: str) -> None:
    """Until PostgreSQL answers again after a restart (a container's starts its server after the
    container is up)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            psycopg.connect(admin_url).close()
            return
        except psycopg.OperationalError:
            time.sleep(1)
    pytest.fail("PostgreSQL did not answer within 60 s of its restart")
