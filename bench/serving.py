"""Hourly serving benchmark: what an hour of features plus scoring costs, task by task, and how fast
the MLOps app's scoring route answers one flight.

Setup (not timed, in a fresh process on a temporary state folder): the features of 1 January -
3 March 2013 in one bulk run, a champion trained on six weeks of them, pushed online.

1. **The hourly cycle**, for six busy hours of 4 March 2013 (10:00-16:00 UTC), each task of
   `feature_pipeline` (ingest, validate, build_features, apply_definitions, materialize) and of
   `batch_inference` (score) in its own process, forked from a process that holds
   what this project's LocalExecutor and Celery workers hold (the Airflow SDK's task supervisor
   and runner, and the libraries `mlops_airflow.preload` imports), as Airflow 3's supervisor forks
   a task on Linux. The child parses the task's DAG file, then does the task's work with whatever
   the work imports. Reported per task: the process's wall time (fork to exit), and within it the
   DAG-file parse and the work. Beside it, the same cycle forked from a bare worker (the SDK only:
   no pandas, Feast, MLflow or scikit-learn), what each task pays without the preload. Airflow's
   own scheduling and API round trips are not in these figures.
2. **The scoring route**: `FlightScorer.score` (what `GET /mlops/api/score` calls, without the HTTP
   and authentication layers) on 200 flights after 20 warm-up calls, p50 and p99, beside the
   floor: Feast's `get_online_features` of the same feature service for the same row plus the
   model's `predict_proba`.

    python -m bench.serving
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.features import Result, isolated

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
HISTORY = (datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 3, 4, 10, tzinfo=UTC))
TRAINING = (datetime(2013, 1, 14, tzinfo=UTC), datetime(2013, 2, 25, tzinfo=UTC))
HOURS = 6
CYCLE_TARGET_S, SCORE_TARGET_MS = 20.0, 50.0
WARMUP, CALLS = 20, 200

# Each task: the DAG file its process parses, and its work. `hour` is the data interval; `batches`
# passes ingest's result to validate, as XCom does.
TASKS = {
    "ingest": ("feature_pipeline", "batches[:] = [b.to_dict() for b in pipeline.ingest(settings, hour)]"),
    "validate": ("feature_pipeline", "pipeline.validate_batches(settings, [pipeline.Batch(**b) for b in batches])"),
    "build_features": ("feature_pipeline", "pipeline.build_features(settings, hour)"),
    "apply_definitions": ("feature_pipeline", "pipeline.apply_definitions(settings)"),
    "materialize": ("feature_pipeline", "pipeline.materialize(settings, hour)"),
    "score": ("batch_inference", "inference.score(settings, hour)"),
}
HEAVY = ("pandas", "feast", "mlflow", "sklearn", "evidently")  # what a bare worker has not imported
WORKERS = ("preloaded", "bare")  # as configured (mlops_airflow.preload), and without it


def prepare(state_dir: str) -> Result:
    from include.flights import model, pipeline, training
    from include.mlops import registry
    from include.mlops.lake import Interval
    from include.mlops.settings import Settings

    settings = Settings(state_dir=Path(state_dir))
    history = Interval(*HISTORY)
    pipeline.validate_batches(settings, pipeline.ingest(settings, history))
    pipeline.build_features(settings, history)
    pipeline.apply_definitions(settings)
    pipeline.materialize(settings, history)
    trained = training.train(settings, Interval(*TRAINING), model.ModelConfig(), reason="benchmark")
    registry.move_champion(settings, settings.model_name, trained["version"], None, "promote", "benchmark setup")
    return {"version": trained["version"]}


def cycle(state_dir: str, worker: str) -> dict[str, dict[str, float]]:
    """Each task of each hour in its own process, forked from a process holding what a worker
    holds (`preloaded` as configured, or `bare`), as Airflow 3's task supervisor forks it: wall,
    DAG-file parse and work seconds."""
    import airflow.sdk.execution_time.supervisor  # a LocalExecutor or Celery worker holds these
    import airflow.sdk.execution_time.task_runner  # noqa: F401

    from include.mlops.lake import Interval

    imported = [name for name in HEAVY if name in sys.modules]
    if imported:
        raise RuntimeError(f"the forking process has imported {imported}: it would flatter the tasks")
    sys.path[:0] = [str(ROOT / "dags"), str(ROOT / "plugins")]  # as Airflow puts them
    if worker == "preloaded":
        import mlops_airflow.preload  # noqa: F401  (what the configured workers import before forking)
    found: dict[str, dict[str, float]] = {}
    for n in range(HOURS):
        start = HISTORY[1] + timedelta(hours=n)
        hour = Interval(start, start + timedelta(hours=1))
        batches: list[dict] = []
        for task, (dag_file, work) in TASKS.items():
            started = time.perf_counter()
            done = _forked(dag_file, work, state_dir, hour, batches)
            wall = time.perf_counter() - started
            if "error" in done:
                raise RuntimeError(f"{task} of {hour} failed: {done['error']}")
            batches = done.pop("batches")
            found[f"{hour.key}/{task}"] = {"wall": wall, **done}
    return found


def _forked(dag_file: str, work: str, state_dir: str, hour: object, batches: list[dict]) -> dict:
    """Run one task in a forked child: parse its DAG file, then do its work; its timings back."""
    import atexit
    import importlib
    import traceback

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the task's process
        os.close(read)
        atexit._clear()  # as Airflow's supervisor: only what the task registers runs at its exit
        try:
            started = time.perf_counter()
            importlib.import_module(dag_file)
            parsed = time.perf_counter() - started
            from include.flights import inference, pipeline
            from include.mlops.settings import Settings

            scope = {"settings": Settings(state_dir=Path(state_dir)), "hour": hour, "batches": batches}
            started = time.perf_counter()
            exec(work, {"pipeline": pipeline, "inference": inference, **scope})
            result = {"parse": parsed, "work": time.perf_counter() - started, "batches": batches}
        except BaseException:
            result = {"error": traceback.format_exc()[-2000:]}
        with os.fdopen(write, "w") as out:
            out.write(json.dumps(result, default=str))
        atexit._run_exitfuncs()  # Feast removes its metrics folder
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as received:
        text = received.read()
    os.waitpid(pid, 0)
    return json.loads(text)


def scoring_route(state_dir: str) -> Result:
    import numpy as np

    from include.flights import features, inference, model, pipeline
    from include.flights.source import default_source
    from include.mlops import tracking
    from include.mlops.feature_store import load_store, model_feature_service
    from include.mlops.settings import Settings

    settings = Settings(state_dir=Path(state_dir))
    at = HISTORY[1] + timedelta(hours=HOURS)
    flights = default_source().flight_schedule(at + timedelta(hours=3), at + timedelta(hours=10))
    ids = list(flights["flight_id"])
    scorer = inference.FlightScorer(settings)
    for flight_id in ids[:WARMUP]:
        scorer.score(flight_id, at)
    ours = []
    for n in range(CALLS):
        started = time.perf_counter()
        scorer.score(ids[n % len(ids)], at)
        ours.append(time.perf_counter() - started)

    version, artifact, _ = inference.champion(settings)
    loaded, inputs, _ = tracking.load_model(artifact)
    store = load_store(settings)
    service = model_feature_service(store, settings.tracking_uri, settings.model_name, version)
    requests = pipeline.request_features(flights, settings).reset_index(drop=True)
    rows = requests[pipeline.ENTITY_KEYS].astype(object).where(requests[pipeline.ENTITY_KEYS].notna(), "unknown")
    floor = []
    for n in range(WARMUP + CALLS):
        i = n % len(requests)
        started = time.perf_counter()
        served = store.get_online_features(service, [rows.iloc[i].to_dict()], full_feature_names=True).to_df()
        joined = requests.iloc[[i]].reset_index(drop=True).join(served.drop(columns=rows.columns))
        x = model.model_input(features.request_time_features(joined), inputs)
        loaded.predict_proba(x)
        if n >= WARMUP:
            floor.append(time.perf_counter() - started)
    milliseconds = {name: np.array(times) * 1000 for name, times in (("ours", ours), ("floor", floor))}
    return {
        name: {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}
        for name, ms in milliseconds.items()
    } | {"flights": len(ids)}


def main() -> int:
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    state = tempfile.mkdtemp(prefix="bench-serving-", dir="/tmp")
    print(f"building features of {HISTORY[0].date()} .. {HISTORY[1]:%Y-%m-%d %H:%M} and a champion ...", flush=True)
    try:
        found: dict[str, object] = {"setup": isolated(prepare, state, log=logs / "serving-setup.log")}
        if "error" not in found["setup"]:
            for worker in WORKERS:
                found[f"cycle_{worker}"] = isolated(cycle, state, worker, log=logs / f"serving-cycle-{worker}.log")
            found["route"] = isolated(scoring_route, state, log=logs / "serving-route.log")
    finally:
        shutil.rmtree(state, ignore_errors=True)
    found["load"] = os.getloadavg()
    (RESULTS / "serving.json").write_text(json.dumps(found, indent=2, default=str) + "\n")
    failed = [name for name, part in found.items() if isinstance(part, dict) and "error" in part]
    if failed:
        print(f"serving benchmark failed in {', '.join(failed)}: {[found[n]['error'] for n in failed]}")
        return 1
    for worker in WORKERS:
        cycle_found: dict[str, dict[str, float]] = found[f"cycle_{worker}"]  # type: ignore[assignment]
        print(f"\nhourly cycle, mean of {HOURS} hours, one process per task forked from a {worker} worker "
              f"(load {found['load'][0]:.1f})")  # fmt: skip
        print(f"{'task':<20}{'wall s':<10}{'parse s':<12}{'work s':<16}")
        total = {"wall": 0.0, "parse": 0.0, "work": 0.0}
        for task in TASKS:
            parts = [v for k, v in cycle_found.items() if k.endswith(f"/{task}")]
            mean = {m: sum(p[m] for p in parts) / len(parts) for m in total}
            total = {m: total[m] + mean[m] for m in total}
            print(f"{task:<20}{mean['wall']:<10.2f}{mean['parse']:<12.2f}{mean['work']:<16.2f}")
        verdict = "ok" if total["wall"] <= CYCLE_TARGET_S else "MISSED"
        target = f"target <= {CYCLE_TARGET_S:.0f} s of task wall time: {verdict}" if worker == WORKERS[0] else ""
        print(f"{'an hour in all':<20}{total['wall']:<10.2f}{total['parse']:<12.2f}{total['work']:<16.2f}{target}")
    route: dict[str, dict[str, float]] = found["route"]  # type: ignore[assignment]
    verdict = "ok" if route["ours"]["p99"] < SCORE_TARGET_MS else "MISSED"
    print(f"\nscoring route, one flight, warm ({CALLS} calls): p50 {route['ours']['p50']:.1f} ms, "
          f"p99 {route['ours']['p99']:.1f} ms; floor (online read + predict_proba) p50 {route['floor']['p50']:.1f} ms, "
          f"p99 {route['floor']['p99']:.1f} ms; target p99 < {SCORE_TARGET_MS:.0f} ms: {verdict}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
