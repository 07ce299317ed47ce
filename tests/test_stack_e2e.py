"""End to end on the production stack, natively (`scripts/stack.py`): MLflow tracking server on
PostgreSQL; Airflow api-server, scheduler, dag-processor, triggerer and two Celery workers (the
default queue and `training`) on PostgreSQL and Redis; Feast with its SQL registry and the Redis
online store. Driven as a user drives it, through Airflow's REST API: a token from `/auth/token`
(FAB auth manager), unpause, trigger, poll, with bounded waits.

The days: features for 3-16 November 2026 (replaying 2013), built by a backfill; a model trained on 3-9 November and
judged on 10-16 November; the champion scores 15 and 16 November, whose features carry an
injected shift (temperatures in °C instead of °F); the drift check of 17 November asks for a
retrain and triggers `training_pipeline`.

The stack runs with `[scheduler] use_job_schedule = False`: only the runs the test triggers run,
none of the DAGs' scheduled ones. It gets its own databases, Redis databases, ports and state
folder, and drops them afterwards. Behind the `stack` marker: `make test-stack` (and `.ci/run`).
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest

from include.mlops.lake import Interval
from include.mlops.settings import Settings
from scripts import stack
from tests.conftest import free_port, inject_shift

pytestmark = pytest.mark.stack

FEATURE_DAYS = [date(2026, 11, 3) + timedelta(days=n) for n in range(14)]  # 3-16 November
TRAINING_CONF = {"window_start": "2026-11-03", "window_end": "2026-11-10", "max_iter": 30, "reason": "end to end"}
JUDGED_ON = datetime(2026, 11, 17, tzinfo=UTC)  # the gate's evaluation week is the 7 days before it
SCORED = [date(2026, 11, 15), date(2026, 11, 16)]
DAGS = ("feature_pipeline", "training_pipeline", "batch_inference", "drift_monitoring")


def midnight(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


class Api:
    """Airflow's REST API as a user calls it: a token, then JSON requests."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=30)
        response = self.client.post("/auth/token", json={"username": username, "password": password})
        assert response.status_code == 201, response.text
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def call(self, method: str, path: str, **body: object) -> dict:
        response = self.client.request(method, f"/api/v2{path}", json=body or None)
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def trigger(self, dag_id: str, run_id: str, logical_date: str, run_after: str | None = None, **conf) -> str:
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf}
        self.call("POST", f"/dags/{dag_id}/dagRuns", **body | ({"run_after": run_after} if run_after else {}))
        return run_id

    def wait(self, dag_id: str, run_id: str, timeout: float) -> dict[str, str]:
        """Until the run ends; its task states. A failed run fails the test with them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                tasks = self.tasks(dag_id, run_id)
                assert state == "success", f"{dag_id} {run_id} failed: {tasks}"
                return {t["task_id"]: t["state"] for t in tasks}
            time.sleep(3)
        pytest.fail(f"{dag_id} {run_id} did not finish within {timeout:.0f} s: {self.tasks(dag_id, run_id)}")

    def backfill_runs(self, dag_id: str, backfill_id: int, expected: int, timeout: float = 60) -> list[dict]:
        """The runs the backfill created (it creates them at once, then the scheduler runs them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.call("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
            runs = [run for run in runs if run["run_type"] == "backfill"]
            if len(runs) >= expected:
                return runs
            time.sleep(2)
        pytest.fail(f"the backfill {backfill_id} of {dag_id} created {len(runs)} of {expected} runs in {timeout:.0f} s")

    def tasks(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory):
    from cryptography.fernet import Fernet

    folder = tmp_path_factory.mktemp("stack")
    values = {
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "unused-with-trust-auth",
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        "AIRFLOW_PORT": str(free_port()),
        "MLFLOW_PORT": str(free_port()),
        "STACK_DIR": str(folder),
        "STACK_DB_PREFIX": f"mlops_e2e_{uuid.uuid4().hex[:8]}_",
        "STACK_REDIS_DB_BASE": "12",  # 12: the Celery broker, 13: Feast's online store
    }
    values["MLOPS_MLFLOW_UI_URL"] = f"http://127.0.0.1:{values['MLFLOW_PORT']}"
    production = stack.Stack(values)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE", "False")  # only the runs the test triggers
        started = time.monotonic()
        try:
            production.up()
            api = Api(f"http://127.0.0.1:{production.airflow_port}", "admin", values["AIRFLOW_ADMIN_PASSWORD"])
            yield SimpleNamespace(stack=production, api=api, started=started)
        finally:
            production.down(purge=True)


def test_the_whole_loop_through_the_rest_api(production) -> None:
    api, native = production.api, production.stack
    for dag_id in DAGS:
        api.call("PATCH", f"/dags/{dag_id}", is_paused=False)

    # Features for real days: a backfill of feature_pipeline, four days at a time (the production
    # stores take concurrent writers; the DAG's own limit of one active run is for the embedded ones).
    backfill = api.call(
        "POST",
        "/backfills",
        dag_id="feature_pipeline",
        from_date=midnight(FEATURE_DAYS[0]),
        to_date=midnight(FEATURE_DAYS[-1]),
        max_active_runs=4,
        reprocess_behavior="none",
    )
    runs = api.backfill_runs("feature_pipeline", backfill["id"], expected=len(FEATURE_DAYS))
    for run in runs:
        assert set(api.wait("feature_pipeline", run["dag_run_id"], timeout=600).values()) == {"success"}
    assert sorted(run["data_interval_start"][:10] for run in runs) == [str(d) for d in FEATURE_DAYS]
    features_done = time.monotonic()

    # Training, the gate and the promotion, as of 17 November.
    training = api.trigger(
        "training_pipeline", "e2e__training", midnight(JUDGED_ON.date()), JUDGED_ON.isoformat(), **TRAINING_CONF
    )
    states = api.wait("training_pipeline", training, timeout=600)
    assert states["gate"] == "success" and states["promote"] == "success", states
    train = [t for t in api.tasks("training_pipeline", training) if t["task_id"] == "train"]
    assert train and all(t["queue"] == "training" for t in train)
    training_worker = (native.dir / "logs" / "airflow-worker-training.log").read_text()
    default_worker = (native.dir / "logs" / "airflow-worker.log").read_text()
    assert f"dag_id=training_pipeline/run_id={training}/task_id=train/" in training_worker
    assert "task_id=train/" not in default_worker and f"run_id={training}/task_id=prepare/" in default_worker

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=native.environment()["MLOPS_MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias("flight_delay", "champion")
    assert champion.version == "1" and champion.tags["gate.decision"] == "first-model"
    assert client.get_run(champion.run_id).data.tags["airflow.run_id"] == training
    trained = time.monotonic()

    # The champion scores two days whose features carry a broken feed's shift.
    settings = Settings.from_env(native.environment())
    inject_shift(settings, Interval(datetime(2026, 11, 15, tzinfo=UTC), datetime(2026, 11, 17, tzinfo=UTC)))
    for d in SCORED:
        run_id = api.trigger("batch_inference", f"e2e__{d}", midnight(d + timedelta(days=1)))
        assert api.wait("batch_inference", run_id, timeout=300)["score"] == "success"

    # The check of 17 November sees it, and asks for a retrain.
    check = api.trigger(
        "drift_monitoring",
        "e2e__drift",
        midnight(JUDGED_ON.date() - timedelta(days=1)),
        (JUDGED_ON + timedelta(hours=1)).isoformat(),
        window_days=2,
    )
    states = api.wait("drift_monitoring", check, timeout=300)
    assert states["trigger_training"] == "success" and states["record_retrain"] == "success", states
    retrain = api.call("GET", f"/dags/training_pipeline/dagRuns/drift__{check}")
    assert retrain["conf"]["reason"].startswith("drift_monitoring 2026-11-17: ")
    assert "weather__temp" in retrain["conf"]["drifted_features"]
    print(
        f"\nend to end: start {features_done - production.started:.0f} s including {len(FEATURE_DAYS)} feature days, "
        f"training {trained - features_done:.0f} s, scoring and drift {time.monotonic() - trained:.0f} s"
    )
