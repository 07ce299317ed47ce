"""The replay through Airflow: two weeks of the loop run by the DAGs themselves on the real
scheduler, checked against the library replay (`include.flights.replay`) of the same days.

The library replay is fast because it calls the DAGs' functions without Airflow; this test is
what says it replays what the DAGs do. Airflow runs as `make up` runs it, `airflow standalone`
(LocalExecutor, SQLite) on the embedded stores, with `[scheduler] use_job_schedule = False` so
that only the runs the test asks for run. The days are 15-28 June 2026, which the replay clock
maps onto 1-14 July 2013:

1. warm-up: the features of the 8 weeks before 15 June (and the two days before them), built by
   the feature pipeline's functions and pushed online, as `make up`'s first run does;
2. the first model: a run of `training_pipeline` due at 15 June 00:00 (the 8 weeks before), which
   the gate judges and promotes;
3. one manual run of `batch_inference` that predicts the flights of the five weeks before 15 June
   (and of its first three hours), so that the first drift checks see a whole week and its
   four-week reference scored by the champion, as the library's do;
4. the first day at the hourly cadence, as scheduled: for each of its 24 hours, the run of
   `feature_pipeline` for that hour, then the run of `batch_inference` that predicts, from the
   online store, the flights whose prediction time is the hour's end;
5. each later day D in two manual runs (its features, then its predictions, from the offline
   store), as a catch-up does;
6. after each day, a manual run of `drift_monitoring` due at D+1 01:00 (the check as of D+1
   00:00; the scheduler, which makes no runs here, would make it once the day's 24 hours of
   predictions are in); when that check triggers `training_pipeline`, the training run, gate and promotion
   finish before the next day, as they do in the library replay.

The library replay runs on the same dates (the clock maps them onto 2013 the same way), in its
own folder. The test asserts the same drift decision on every day, the same gate outcome for
every version, the same champion sequence and the same escalations, and the same probability for
every flight both scored, the first day's served online without skew and each made before its
flight's departure minus the lead; it prints both side by side.

About 30 minutes here; behind its own marker, outside `make test` and CI:
`make test-replay-airflow`. `AIRFLOW_REPLAY_DAYS` sets the number of days (at least 7).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from include.flights import inference, pipeline
from include.flights.replay import Replay, ReplayConfig
from include.mlops import records, registry, tracking
from include.mlops.lake import Interval
from include.mlops.settings import Settings
from mlops_airflow.pools import POOLS
from tests.support.airflow import interval_conf
from tests.support.servers import Api, airflow_standalone

pytestmark = pytest.mark.airflow_replay

FIRST_DAY = datetime(2026, 6, 15, tzinfo=UTC)  # replays Monday 1 July 2013
DAYS = int(os.environ.get("AIRFLOW_REPLAY_DAYS", "14"))
TRAINING_DAYS = 56  # training_pipeline's default window, 8 weeks
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Replay:
    """The library replay of the same days."""
    config = ReplayConfig(
        start=FIRST_DAY - TRAINING_DAYS * DAY, end=FIRST_DAY + DAYS * DAY, training_days=TRAINING_DAYS
    )
    replay = Replay(tmp_path_factory.mktemp("library-replay"), config, Settings())
    replay.run()
    return replay


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory):
    """`airflow standalone` on a fresh home and state folder, with the warm-up features built."""
    folder = tmp_path_factory.mktemp("airflow-replay")
    settings = Settings(state_dir=folder / "state")
    # The first training window's days and the two before them, pushed online as `make up` does.
    warm_up = pipeline.feature_days(settings, Interval(FIRST_DAY - TRAINING_DAYS * DAY, FIRST_DAY))
    pipeline.validate_batches(settings, pipeline.ingest(settings, warm_up))
    pipeline.build_features(settings, warm_up)
    pipeline.apply_definitions(settings)
    pipeline.materialize(settings, warm_up)

    home = folder / "airflow"
    env = {
        "AIRFLOW_HOME": str(home),
        "MLOPS_STATE_DIR": str(settings.state_dir),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the triggered runs, none on assets
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
    home.mkdir()
    subprocess.run([BIN / "airflow", "db", "migrate"], env=os.environ | env, check=True, capture_output=True)
    for pool, (slots, description) in POOLS.items():
        subprocess.run(
            [BIN / "airflow", "pools", "set", pool, str(slots), description], env=os.environ | env, check=True
        )
    with airflow_standalone(home / "standalone.log", **env) as standalone:
        api = Api(standalone.base, "admin", standalone.password)
        deadline = time.monotonic() + 300
        for dag_id in ("feature_pipeline", "batch_inference", "drift_monitoring", "training_pipeline"):
            while api.client.get(f"/api/v2/dags/{dag_id}").status_code != 200:  # not parsed yet
                assert time.monotonic() < deadline, f"{dag_id} was not parsed; see {home / 'standalone.log'}"
                time.sleep(2)
        yield SimpleNamespace(api=api, settings=settings)


def airflow_decisions(settings: Settings) -> dict[str, object]:
    """What the DAGs decided, as MLflow recorded it."""
    from mlflow import MlflowClient

    experiment = tracking.connect(settings, records.DRIFT_EXPERIMENT)
    client = MlflowClient()
    checks = sorted(
        client.search_runs([experiment], max_results=5000),
        key=lambda run: run.data.tags["drift.at"],
    )
    versions = client.search_model_versions(f"name = '{settings.model_name}'")
    moves = registry.audit_trail(settings, settings.model_name)
    return {
        "checks": [(run.data.tags["drift.at"], run.data.tags["drift.action"]) for run in checks],
        "escalations": [
            (run.data.tags["drift.at"], run.data.tags["drift.escalation_kind"])
            for run in checks
            if run.data.tags.get("drift.escalation")
        ],
        "gate": {int(v.version): v.tags.get("gate.decision") for v in versions},
        "champions": [m.to_version for m in moves if m.action == "promote" and m.status == "FINISHED"],
        "drift_share": {run.data.tags["drift.at"]: run.data.metrics.get("drift_share") for run in checks},
    }


def library_decisions(replay: Replay) -> dict[str, object]:
    loop = replay.state["loop"]
    events = loop.events
    return {
        "checks": [(check["at"], check["action"]) for check in loop.checks],
        "escalations": [(e.at, e.detail.split(":", 1)[0]) for e in events if e.kind == "escalate"],
        "gate": {e.version: e.gate for e in events if e.kind in ("promote", "reject")},
        "champions": [e.version for e in events if e.kind == "promote"],
    }


def trigger(
    api: Api, dag_id: str, run_id: str, logical_date: datetime | None, run_after: datetime | None = None, **conf: object
) -> str:
    """A run of `dag_id` with that logical date (an hourly DAG's data interval is the hour ending
    there) or due at `run_after`. On SQLite the API refuses a run while the scheduler holds the
    database lock: 503 "Database is locked", or 500 "Database error" when the lock outlasts the
    API's wait (nothing is committed either way); it is asked again a few seconds later, as a
    person would."""
    body = {"dag_run_id": run_id, "logical_date": logical_date and logical_date.isoformat(), "conf": conf}
    body |= {"run_after": run_after.isoformat()} if run_after else {}
    for _ in range(10):
        response = api.client.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        if response.status_code not in (500, 503) or "Database" not in response.text:
            break
        time.sleep(3)
    assert response.is_success, f"POST {dag_id} dagRuns: {response.status_code} {response.text}"
    return run_id


def test_the_dags_replay_the_same_decisions_as_the_library(library: Replay, airflow) -> None:
    api, settings = airflow.api, airflow.settings
    started = time.monotonic()
    expected = dict(library_decisions(library)["checks"])

    first = api.call(
        "POST",
        "/dags/training_pipeline/dagRuns",
        dag_run_id="replay__first_model",
        logical_date=None,
        run_after=FIRST_DAY.isoformat(),
        conf={"reason": "the replay's first model"},
    )["dag_run_id"]
    states = api.wait("training_pipeline", first, timeout=900)
    assert states["promote"] == "success", states
    before = pipeline.interval_predicting(settings, Interval(FIRST_DAY - 35 * DAY, FIRST_DAY + 3 * HOUR))
    conf = interval_conf(before.start.isoformat(), before.end.isoformat())
    api.wait("batch_inference", trigger(api, "batch_inference", "replay__before", before.end, **conf), timeout=900)

    for n, day in enumerate(FIRST_DAY + k * DAY for k in range(DAYS)):
        if n == 0:  # as scheduled: each hour's features, then the predictions made at its end
            for hour in (day + (h + 1) * HOUR for h in range(24)):
                run_id = f"replay__{hour:%Y%m%dT%H%M}"
                api.wait("feature_pipeline", trigger(api, "feature_pipeline", run_id, hour), timeout=900)
                scoring = api.wait("batch_inference", trigger(api, "batch_inference", run_id, hour), timeout=900)
                assert scoring["score"] == "success", scoring
        else:  # a catch-up: the day's features, then its predictions, in one run each
            conf = interval_conf(day.isoformat(), (day + DAY).isoformat())
            run_id = f"replay__{day:%Y%m%d}"
            api.wait("feature_pipeline", trigger(api, "feature_pipeline", run_id, day + DAY, **conf), timeout=1800)
            scoring = api.wait("batch_inference", trigger(api, "batch_inference", run_id, day + DAY, **conf), 900)
            assert scoring["score"] == "success"
        check = trigger(api, "drift_monitoring", f"replay__check_{day:%Y%m%d}", None, day + DAY + HOUR)
        state, tasks = api.finished("drift_monitoring", check, timeout=900)
        assert state == "success", tasks  # an escalation triggers drift_escalation, which waits for a person
        if tasks["trigger_training"] == "success":
            api.wait("training_pipeline", f"drift__{check}", timeout=1200)
        at = (day + DAY).isoformat()
        action = dict(airflow_decisions(settings)["checks"]).get(at)
        print(f"{day:%Y-%m-%d}: {action} (library: {expected[at]}), {time.monotonic() - started:.0f} s", flush=True)

    # The first day was predicted hour by hour from the online store, without skew, in time.
    first_day = inference.predictions(settings, Interval(FIRST_DAY + 3 * HOUR, FIRST_DAY + DAY + 3 * HOUR))
    assert len(first_day) > 500 and (first_day["served_from"] == "online").all()
    assert (first_day[inference.SKEW] == "").all()
    assert (first_day["event_timestamp"] <= first_day["sched_dep_at"] - settings.prediction_lead).all()

    dags, lib = airflow_decisions(settings), library_decisions(library)
    print("\nday (check at)              library    airflow   airflow drift share")
    airflow_actions = dict(dags["checks"])
    for at, action in lib["checks"]:
        print(f"{at}  {action:<10} {airflow_actions.get(at, '-'):<9} {dags['drift_share'].get(at)}")
    print(f"gate      library {lib['gate']}\n          airflow {dags['gate']}")
    print(f"champions library {lib['champions']}\n          airflow {dags['champions']}")
    print(f"escalations library {lib['escalations']}\n            airflow {dags['escalations']}")
    print(f"{DAYS} days through Airflow in {time.monotonic() - started:.0f} s")

    # The same probabilities for the same flights: batch_inference's log and the library's scoring.
    scored = inference.predictions(settings, Interval(FIRST_DAY, FIRST_DAY + DAYS * DAY))
    replayed = pd.concat(library.predictions["loop"], ignore_index=True)
    both = replayed.merge(scored, on="flight_id", suffixes=("_library", "_airflow"))
    difference = (both["prediction_library"] - both["prediction_airflow"]).abs().max()
    print(f"scored: {len(scored)} flights by batch_inference, {len(replayed)} by the library, {len(both)} by both;")
    print(f"the largest difference in probability: {difference:.1e}")

    assert len(both) == len(replayed) and len(lib["checks"]) == DAYS
    assert (both["version"] == both["model_version"]).all()
    assert difference < 1e-9
    assert dags["checks"] == lib["checks"]
    assert dags["gate"] == lib["gate"]
    assert dags["champions"] == lib["champions"]
    assert dags["escalations"] == lib["escalations"]
