"""A new user's first hour, as a test: `make up` on a fresh state folder gets its first champion
with no manual step; then a person trains a weak candidate from the API, and finds in the UI
why the gate rejected it, what is in production, and MLflow's runs where MLflow opens.

`make up` runs as the README says (Airflow standalone and an MLflow server, on free ports and a
temporary state folder), with none of this session's Airflow or MLOPS_ settings (`FirstHour`). Screenshots
go to test-artifacts/first-hour-*.png. How long each step takes is `bench/first_hour.py`'s
business; here only whether it happens (the timeouts are generous, for a busy machine).
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from bench.first_hour import FirstHour
from tests.support.browser import ARTIFACTS, chromium, log_in, wait
from tests.support.servers import free_port, holds_preloaded, process_tree

WEAK = {"reason": None, "max_iter": 10, "learning_rate": 0.001, "configurations": 1}  # near the base rate


@pytest.fixture(scope="module")
def fresh():
    """`make up` from nothing, until its first champion."""
    with FirstHour(airflow_port=free_port(), mlflow_port=free_port()) as up:
        try:
            up.wait_for("first champion", 25 * 60)
        except (RuntimeError, TimeoutError) as error:
            up.keep = True
            pytest.fail(str(error))
        yield up


@pytest.fixture(scope="module")
def api(fresh):
    with httpx.Client(base_url=f"{fresh.base}/api/v2", headers={"Authorization": f"Bearer {fresh.token}"}) as client:
        yield client


def finished(api: httpx.Client, dag_id: str, run_id: str, timeout: float = 20 * 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.get(f"/dags/{dag_id}/dagRuns/{run_id}").raise_for_status().json()
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(5)
    pytest.fail(f"{dag_id} run {run_id} did not finish within {timeout:.0f} s")


def tries(api: httpx.Client, dag_id: str, run_id: str) -> dict[str, tuple[str, int]]:
    found = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").raise_for_status().json()
    return {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in found["task_instances"] if ti["map_index"] < 1}


def test_make_up_gets_a_champion_with_no_manual_step_and_the_weekly_run_trains_on_its_first_try(
    fresh, api: httpx.Client
) -> None:
    assert list(fresh.reached) == ["UI up", "history built", "first champion"]
    runs = api.get("/dags/training_pipeline/dagRuns").raise_for_status().json()["dag_runs"]
    [weekly] = [run for run in runs if run["run_type"] == "scheduled"]
    assert finished(api, "training_pipeline", weekly["dag_run_id"])["state"] == "success"  # its teardown, after promote
    states = tries(api, "training_pipeline", weekly["dag_run_id"])
    assert states["features_ready"][0] == "success"  # a sensor that waited may show a later try number
    for task_id in ("prepare", "train", "register", "gate", "promote"):  # nothing failed and was retried
        assert states[task_id] == ("success", 1), task_id


def test_the_scheduled_hour_of_features_makes_the_scheduler_run_batch_inference_on_it(fresh, api: httpx.Client) -> None:
    """`batch_inference` has no schedule of its own: the scheduler runs it on each hour partition
    of `flight_features`, which the scheduled runs of `feature_pipeline` add (the manual history
    run adds none)."""
    runs = api.get("/dags/feature_pipeline/dagRuns").raise_for_status().json()["dag_runs"]
    hours = {run["data_interval_start"][:19] for run in runs if run["run_type"] == "scheduled"}
    assert hours, runs
    first = min(hours)  # the hour's start is its partition key
    deadline = time.monotonic() + 10 * 60
    while not (made := _runs(api, "batch_inference", first)) and time.monotonic() < deadline:
        time.sleep(5)
    [run] = made
    assert run["run_type"] == "asset_triggered"
    assert finished(api, "batch_inference", run["dag_run_id"])["state"] == "success"
    # One run per scheduled hour, and none from the manual run that built the history.
    assert {run["partition_key"] for run in _runs(api, "batch_inference")} <= hours

    from selenium.webdriver.common.by import By

    driver = chromium()
    try:  # as a person sees it: the DAG's schedule is the asset, its runs keyed by hour
        log_in(driver, fresh.base, fresh.password)
        driver.get(f"{fresh.base}/dags/batch_inference/runs")
        wait(driver, lambda d: "asset" in d.find_element(By.TAG_NAME, "body").text.lower(), 120)
        time.sleep(2)  # the runs' table fills in after the header
        driver.save_screenshot(str(ARTIFACTS / "first-hour-batch-inference-runs.png"))
    finally:
        driver.quit()


def test_the_tasks_send_openlineage_events_with_what_they_read_and_wrote(fresh, api: httpx.Client) -> None:
    """`make up` configures the OpenLineage provider's file transport (`openlineage.jsonl` in the
    state folder): each task's events name the zones of the lake it read and wrote."""
    runs = api.get("/dags/feature_pipeline/dagRuns").raise_for_status().json()["dag_runs"]
    assert all(finished(api, "feature_pipeline", run["dag_run_id"])["state"] == "success" for run in runs)
    events = [json.loads(line) for line in (fresh.state / "openlineage.jsonl").read_text().splitlines()]
    done = {
        event["job"]["name"]: event
        for event in events
        if event["eventType"] == "COMPLETE" and event["job"]["namespace"] == "mlops"
    }
    lake = fresh.state / "lake"

    def names(event: dict, side: str) -> set[str]:
        return {f"{d['namespace']}:{d['name']}" for d in event[side]}

    assert names(done["feature_pipeline.validate"], "inputs") == {f"file:{lake}/raw"}
    assert names(done["feature_pipeline.validate"], "outputs") == {f"file:{lake}/clean", f"file:{lake}/quarantine"}
    assert names(done["feature_pipeline.build_features"], "outputs") == {f"file:{lake}/features"}
    assert names(done["training_pipeline.prepare"], "inputs") == {f"file:{lake}/features", f"file:{lake}/clean"}
    assert "feature_pipeline" in done  # the runs' own events, from the scheduler


def _runs(api: httpx.Client, dag_id: str, partition_key: str | None = None) -> list[dict]:
    runs = api.get(f"/dags/{dag_id}/dagRuns").raise_for_status().json()["dag_runs"]
    return [run for run in runs if partition_key in (None, run["partition_key"])]


def test_the_scheduler_starts_its_workers_with_the_task_libraries_imported(fresh) -> None:
    """The LocalExecutor's workers come from a forkserver that imported `mlops_airflow.preload`
    (the Makefile's `[scheduler] mp_forkserver_preload`), so the tasks they fork start with it."""
    processes = process_tree(fresh.pid)
    workers = [pid for pid, title in processes.items() if "LocalExecutor" in title]
    assert workers, processes
    assert all(holds_preloaded(pid) for pid in workers), {pid: processes[pid] for pid in workers}


@pytest.fixture(scope="module")
def rejected(fresh, api: httpx.Client) -> str:
    """A manual run of a weak configuration, from the API as from the trigger form."""
    body = {"logical_date": None, "conf": WEAK}
    run = api.post("/dags/training_pipeline/dagRuns", json=body).raise_for_status().json()
    assert finished(api, "training_pipeline", run["dag_run_id"])["state"] == "success"
    return run["dag_run_id"]


def test_a_rejected_candidate_says_why_and_the_mlops_view_shows_what_happened(fresh, api, rejected) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    assert tries(api, "training_pipeline", rejected)["promote"][0] == "skipped"
    log = api.get(f"/dags/training_pipeline/dagRuns/{rejected}/taskInstances/promote/logs/1").raise_for_status()
    assert "version 2 was rejected by the gate: " in log.text

    driver = chromium()
    try:
        log_in(driver, fresh.base, fresh.password)
        driver.get(f"{fresh.base}/dags/training_pipeline/runs/{rejected}/tasks/promote")
        wait(driver, lambda d: "was rejected by the gate" in d.find_element(By.TAG_NAME, "body").text, 120)
        driver.save_screenshot(str(ARTIFACTS / "first-hour-rejected-run.png"))

        driver.get(f"{fresh.base}/plugin/mlops")
        driver.switch_to.frame(wait(driver, ec.presence_of_element_located((By.TAG_NAME, "iframe"))))
        champion = wait(driver, ec.presence_of_element_located((By.ID, "champion"))).text
        assert "In production: version 1" in champion and "trained because: scheduled weekly retraining" in champion
        gate = driver.find_element(By.ID, "gate").text
        assert "v2" in gate and "reject" in gate
        versions = driver.find_element(By.ID, "versions").text
        assert "manual" in versions  # the rejected run's reason: it was given none
        features = driver.find_element(By.ID, "features").text
        assert "whole days with features" in features
        driver.switch_to.default_content()
        driver.save_screenshot(str(ARTIFACTS / "first-hour-mlops-view.png"))

        [banner] = [line for line in fresh.log.read_text().splitlines() if line.startswith("MLflow UI:")]
        driver.get(banner.split()[2])  # the MLflow address `make up` prints
        wait(driver, lambda d: "training 2026" in d.find_element(By.TAG_NAME, "body").text, 120)  # runs, not traces
        assert "flight_delay_training" in driver.find_element(By.TAG_NAME, "body").text
        driver.save_screenshot(str(ARTIFACTS / "first-hour-mlflow.png"))
    finally:
        driver.quit()
