"""The loop in the Airflow web UI: the MLOps view's routes on Airflow's own API app, authorised and
not, and a real browser (headless Chromium) on `airflow standalone` that logs in, reads the view and
follows a task's extra link into MLflow.

The state behind them is a real small loop: `training_pipeline` (`dag.test()`) trains version 1,
which the gate passes as the first model and promotion makes champion; a second run trains a model
of ten boosting iterations at a learning rate of 0.001, which the gate rejects; the champion scores
two real weeks; `drift_monitoring`, with rules that retrain on any drift of the model's inputs (5%
of its importance), finds the second week drifted from the first and triggers a retrain; the next
check holds while the retrain cools down.
Screenshots are saved under `test-artifacts/`.
"""

from __future__ import annotations

import os
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from include.flights import inference, monitoring, pipeline
from include.mlops.lake import Interval
from include.mlops.settings import Settings
from tests.support.airflow import finish_training_runs, set_task_state, training_runs
from tests.support.browser import ARTIFACTS, chromium, log_in, wait
from tests.support.data import WEEKS, copy_weeks
from tests.support.servers import airflow_standalone, free_port, start, stop, wait_for

LOGICAL_DATE = datetime(2026, 11, 17, tzinfo=UTC)  # the gate judges on 10-16 November
CONF = {"window_start": "2026-10-26", "window_end": "2026-11-09", "max_iter": 30, "configurations": 1}
RULES = {"policy": {"reference_days": 7, "share_threshold": 0.05}}  # the weeks fixture holds a month
ROUTES = [
    "/mlops/",
    "/mlops/api/overview",
    "/mlops/api/drift",
    "/mlops/api/audit",
    "/mlops/api/features",
    "/mlops/api/score?flight_id=x",
]


def day(d: int) -> datetime:
    return datetime(2026, 11, d, tzinfo=UTC)


def day_time(d: int, hour: int) -> datetime:
    return day(d) + timedelta(hours=hour)


@pytest.fixture(scope="module")
def loop(airflow_db: Path, weeks: Path, tmp_path_factory: pytest.TempPathFactory):
    from airflow.dag_processing.dagbag import DagBag

    mlflow_port = free_port()
    state = tmp_path_factory.mktemp("view") / "state"
    with pytest.MonkeyPatch.context() as env:  # the tasks read the environment's settings
        env.setenv("MLOPS_STATE_DIR", str(state))
        env.setenv("MLOPS_MLFLOW_UI_URL", f"http://127.0.0.1:{mlflow_port}")  # the browser test's MLflow
        copy_weeks(weeks, state)
        settings = Settings.from_env()
        bag = DagBag()
        training = bag.get_dag("training_pipeline")
        # Small trees: the default's 31 leaves, fitted on one week of late November 2013, do not beat the
        # constant base rate by the first-model margin.
        baseline = CONF | {"reason": "first", "max_leaf_nodes": 15}
        first = training.test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE, run_conf=baseline)
        again = LOGICAL_DATE + timedelta(
            days=1
        )  # a run of its own: a second run of one logical date replaces the first
        weak = CONF | {"reason": "again", "max_iter": 10, "learning_rate": 0.001}
        second = training.test(logical_date=again, run_after=again, run_conf=weak)
        assert first.state == second.state == "success"

        for d in range(10, 24):
            inference.score(settings, pipeline.interval_predicting(settings, Interval(day(d), day(d + 1))))
        # Run ids (and so the run id of the training run a check triggers) differ from other modules'.
        check = bag.get_dag("drift_monitoring").test(
            logical_date=day_time(24, 2) - timedelta(days=1), run_after=day_time(24, 2), run_conf={"rules": RULES}
        )
        assert check.state == "success"  # the second week drifted from the first: retrain
        rules = monitoring.load_rules(RULES)
        assert monitoring.check(settings, day(25), 7, rules).action == "hold"  # the retrain is cooling down
        yield SimpleNamespace(settings=settings, first=first, second=second, check=check, mlflow_port=mlflow_port)
    finish_training_runs("failed")  # the retrain the check triggered stays queued otherwise


def xcom(run, task_id: str, key: str):
    ti = next(ti for ti in run.get_task_instances() if ti.task_id == task_id)
    return ti.xcom_pull(task_ids=task_id, key=key, map_indexes=ti.map_index)


def test_tasks_link_to_what_they_recorded(loop) -> None:
    from mlflow import MlflowClient

    from include.mlops import registry, tracking

    base = f"http://127.0.0.1:{loop.mlflow_port}"
    tracking.connect(loop.settings)
    client = MlflowClient()
    version = client.get_model_version("flight_delay", "1")
    parent = version.tags["parent_run_id"]
    experiment = client.get_run(parent).info.experiment_id
    ml = "?workflowType=machine_learning"  # MLflow's UI opens runs and models, not GenAI traces
    assert xcom(loop.first, "prepare", "_link_MlflowRunLink") == f"{base}/#/experiments/{experiment}/runs/{parent}{ml}"
    assert (
        xcom(loop.first, "train", "_link_MlflowRunLink")
        == f"{base}/#/experiments/{experiment}/runs/{version.run_id}{ml}"
    )
    assert xcom(loop.first, "gate", "_link_ModelVersionLink") == f"{base}/#/models/flight_delay/versions/1{ml}"
    [move] = registry.audit_trail(loop.settings, "flight_delay")
    assert move.entry_url.startswith(f"{base}/#/experiments/")
    assert xcom(loop.first, "promote", "_link_AuditEntryLink") == move.entry_url
    assert xcom(loop.check, "check", "_link_DriftReportLink").endswith(f"/artifacts/drift/report.html{ml}")


def test_the_links_are_declared_on_the_serialized_tasks(loop) -> None:
    """What the UI lists for a task comes from the serialized DAG, not from the task's code."""
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag("training_pipeline")
    assert dag.get_task("prepare").extra_links == ["MLflow run"]
    assert dag.get_task("train").extra_links == ["MLflow run"]
    assert dag.get_task("gate").extra_links == ["Gate report", "MLflow model version"]
    assert dag.get_task("promote").extra_links == ["Audit entry"]
    assert dag.get_task("register").extra_links == []


# The plugin's routes, served by Airflow's own API app with the plugin mounted, as the api-server does.


@pytest.fixture(scope="module")
def api(loop):
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with pytest.MonkeyPatch.context() as env:
        # The API signs its tokens with this secret; the process may have read its configuration
        # before `airflow db migrate` wrote a generated one.
        env.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(32))
        with TestClient(create_app()) as client:
            yield client


def token(role: str | None) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=f"user-{role}", role=role))


def bearer(role: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role)}"}


@pytest.mark.parametrize("route", ROUTES)
def test_no_route_answers_without_credentials(api, route: str) -> None:
    response = api.get(route)
    assert response.status_code == 401, response.text
    assert "flight_delay" not in response.text


@pytest.mark.parametrize("route", ROUTES)
def test_no_route_answers_a_forged_token_or_a_user_without_a_role(api, route: str) -> None:
    forged = api.get(route, headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 403 and "flight_delay" not in forged.text
    roleless = api.get(route, headers=bearer(None))
    assert roleless.status_code == 403, roleless.text
    assert "reading the runs of training_pipeline is not allowed" in roleless.text


def test_the_ui_session_cookie_is_enough(api) -> None:
    """The view is shown in the Airflow UI, whose requests carry the login cookie, not a header."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    api.cookies.set(COOKIE_NAME_JWT_TOKEN, token("viewer"))
    try:
        assert api.get("/mlops/api/audit").status_code == 200
    finally:
        api.cookies.clear()


def test_the_overview_answers_which_model_is_in_production_and_why(loop, api) -> None:
    response = api.get("/mlops/api/overview", headers=bearer("viewer"))
    assert response.status_code == 200, response.text
    o = response.json()
    assert o["model"] == "flight_delay"
    assert o["champion"]["version"] == 1 and o["champion"]["aliases"] == ["champion"]
    assert o["champion"]["gate"] == "first-model" and o["champion"]["trigger_reason"] == "first"
    assert o["champion"]["family"] == "hist_gradient_boosting"
    assert 0.5 < o["champion"]["metrics"]["roc_auc"] < 1 and o["champion"]["metrics"]["log_loss"] > 0
    assert o["previous"] is None  # the first champion replaced nothing
    assert o["champion_move"]["action"] == "promote"
    assert o["champion_move"]["reason"] == "promotion gate: first-model against no champion"
    assert [v["version"] for v in o["versions"]] == [2, 1]
    assert [(d["candidate_version"], d["outcome"], d["champion_version"]) for d in o["gate"]] == [
        (2, "reject", 1),
        (1, "first-model", None),
    ]
    assert o["gate"][0]["reasons"]
    # When it was judged (now), not the day of the data it judged; the seven evaluation days.
    assert o["gate"][0]["judged_at"] > o["gate"][0]["decided_at"]
    window = Interval.from_key(o["gate"][0]["evaluation_window"])
    assert window.end - window.start == timedelta(days=7)
    # The figures the gate judged, on the evaluation flights, not the training run's validation.
    rejected, first = o["gate"]
    assert set(rejected["metrics"]) == {"candidate", "champion"} and set(first["metrics"]) == {"candidate"}
    assert 0.5 < first["metrics"]["candidate"]["roc_auc"] < 1
    assert rejected["metrics"]["candidate"]["log_loss"] > rejected["metrics"]["champion"]["log_loss"]
    assert o["gate"][0]["report_url"].endswith("/artifacts/gate/001/report.md?workflowType=machine_learning")
    assert [(c["at"][:10], c["action"]) for c in o["drift"]] == [("2026-11-24", "retrain"), ("2026-11-25", "hold")]
    assert o["drift"][1]["held_by"] == []  # the cooldown held it, not a training run
    retrain, hold = o["drift"]
    # A ROC AUC (the storm week of early December 2013 puts this small model near chance).
    assert retrain["drift_share"] >= 0.05 and 0 < retrain["realised_roc_auc"] < 1 and retrain["drifted"]
    assert retrain["retrain_run_id"] == f"drift__{loop.check.run_id}" and retrain["airflow_run_id"] == loop.check.run_id
    assert any(r.startswith("cooling down") for r in hold["reasons"]) and not hold["retrain_run_id"]
    assert [(m["action"], m["to_version"], m["status"]) for m in o["audit"]] == [("promote", 1, "FINISHED")]


def test_the_drift_and_audit_routes(api) -> None:
    drift = api.get("/mlops/api/drift", headers=bearer("viewer")).json()
    assert [c["action"] for c in drift] == ["retrain", "hold"]
    assert drift[0]["run_url"].endswith(f"/runs/{drift[0]['run_id']}?workflowType=machine_learning")
    assert drift[0]["report_url"] == drift[0]["run_url"].replace("?", "/artifacts/drift/report.html?")
    audit = api.get("/mlops/api/audit", headers=bearer("viewer")).json()
    assert audit[0]["airflow.dag_id"] == "training_pipeline" and audit[0]["entry_url"]


def test_the_page_shows_the_champion_the_gate_and_the_chart(api) -> None:
    response = api.get("/mlops/", headers=bearer("viewer"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<strong>In production:</strong> version 1" in html
    assert "promotion gate: first-model against no champion" in html
    assert '<span class="badge reject">reject</span>' in html
    assert "ROC AUC 0." in html and " vs 0." in html  # the gate's own figures, candidate vs champion
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html and 'class="marker retrain"' in html
    assert html.count('class="point realised"') == 2 and 'class="marker promotion"' in html  # one per day


def test_the_features_built_the_backfills_under_way_and_the_training_runs_waiting_for_features(loop, api) -> None:
    from airflow.models.backfill import Backfill
    from airflow.utils.session import create_session

    # The retrain the drift check asked for looked for its 8 weeks' features: only the copied month has them.
    [(retrain, _, state)] = training_runs(f"drift__{loop.check.run_id}")
    assert state == "queued"
    set_task_state("training_pipeline", retrain, "features_ready", "up_for_reschedule")
    with create_session() as session:
        backfill = Backfill(dag_id="feature_pipeline", from_date=day(20), to_date=day(27), dag_run_conf={})
        session.add(backfill)
        session.flush()
        backfill_id = backfill.id
    try:
        found = api.get("/mlops/api/features", headers=bearer("viewer")).json()
        html = api.get("/mlops/", headers=bearer("viewer")).text
    finally:
        with create_session() as session:
            session.query(Backfill).filter(Backfill.id == backfill_id).delete()
        set_task_state("training_pipeline", retrain, "features_ready", None)
    assert found["spans"] == ["2026-10-24 to 2026-11-24 UTC (31 days, end excluded)"] and found["days"] == 31
    [backfill] = found["building"]
    assert (backfill["what"], backfill["dag_id"]) == ("backfill", "feature_pipeline")
    assert backfill["backfill_id"] == backfill_id
    assert (backfill["days_asked"], backfill["days_done"], backfill["first_missing"]) == (7, 4, "2026-11-24")
    assert backfill["runs"] == "0 of 0"
    [waiting] = found["waiting"]
    assert (waiting["run_id"], waiting["days_asked"], waiting["days_done"]) == (retrain, 58, 31)
    assert waiting["first_missing"] == "2026-09-27" and waiting["interval"].startswith("2026-09-27 to 2026-11-24 UTC")
    assert "31 whole days with features: 2026-10-24 to 2026-11-24 UTC" in html
    assert f'target="_top">{retrain}</a>' in html and "27 days, 2026-09-27 first" in html


def test_an_unknown_model_has_nothing_in_production_and_a_bad_name_is_refused(api) -> None:
    unknown = api.get("/mlops/api/overview", params={"model": "no_such_model"}, headers=bearer("viewer"))
    assert unknown.status_code == 200
    assert unknown.json()["champion"] is None and unknown.json()["versions"] == []
    page = api.get("/mlops/", params={"model": "no_such_model"}, headers=bearer("viewer"))
    assert "has no champion yet" in page.text
    bad = api.get("/mlops/api/overview", params={"model": "x' OR '1'='1"}, headers=bearer("viewer"))
    assert bad.status_code == 422 and "not a registered model name" in bad.text


def test_the_scoring_route_answers_one_flight_with_the_online_features(loop, api, source) -> None:
    import pandas as pd

    from include.flights import features, model
    from include.mlops import tracking
    from include.mlops.feature_store import historical_features, load_store, model_feature_service

    settings = loop.settings
    pipeline.materialize(settings, pipeline.feature_days(settings, WEEKS))  # the weeks' latest rows, online
    at = WEEKS.end
    flights = source.flight_schedule(at + timedelta(hours=12), at + timedelta(hours=13))
    flight_id = flights["flight_id"].iloc[0]
    response = api.get(
        "/mlops/api/score", params={"flight_id": flight_id, "at": at.isoformat()}, headers=bearer("viewer")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    version, artifact, run_id = inference.champion(settings)
    assert (body["model_version"], body["model_run_id"]) == (version, run_id) and 0 < body["probability"] < 1
    assert body["as_of"] == at.isoformat() and body["sched_dep_at"] == flights["sched_dep_at"].iloc[0].isoformat()

    # What it was given is what the offline store's point-in-time join gives at the same instant.
    store = load_store(settings)
    service = model_feature_service(store, settings.tracking_uri, settings.model_name, version)
    request = pipeline.request_features(flights.iloc[[0]], settings).assign(event_timestamp=pd.Timestamp(at))
    _, inputs, _ = tracking.load_model(artifact)
    offline = model.model_input(features.request_time_features(historical_features(store, request, service)), inputs)
    offline = offline.iloc[0]
    assert list(body["features"]) == inputs
    assert offline.notna().sum() > 30
    for column, value in body["features"].items():
        assert (value is None and pd.isna(offline[column])) or value == pytest.approx(offline[column]), column

    unknown = api.get("/mlops/api/score", params={"flight_id": "20261124T1200-XX1-JFK"}, headers=bearer("viewer"))
    assert unknown.status_code == 404 and "no flight 20261124T1200-XX1-JFK is scheduled" in unknown.text
    late = api.get(
        "/mlops/api/score", params={"flight_id": flight_id, "at": (at + timedelta(hours=12)).isoformat()},
        headers=bearer("viewer"),
    )  # fmt: skip
    assert late.status_code == 409 and "its prediction is in the predictions log" in late.text


# A real browser on `airflow standalone`.


@pytest.fixture(scope="module")
def standalone(loop, tmp_path_factory: pytest.TempPathFactory):
    """`airflow standalone` on this session's Airflow database and the loop's state, and the MLflow
    server that the links point to; both stopped afterwards."""
    bin_dir = Path(sys.executable).parent
    logs = tmp_path_factory.mktemp("standalone")
    mlflow_dir = loop.settings.mlflow_dir
    mlflow = start(
        [
            *(str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(loop.mlflow_port)),
            *("--backend-store-uri", f"sqlite:///{mlflow_dir}/mlflow.db"),
            *("--default-artifact-root", (mlflow_dir / "artifacts").as_uri()),
        ],
        logs / "mlflow.log",
        os.environ,
    )
    try:
        # DAGs paused: nothing runs while the browser looks.
        with airflow_standalone(logs / "standalone.log", AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True") as airflow:
            wait_for(f"http://127.0.0.1:{loop.mlflow_port}/health", mlflow, logs / "mlflow.log")
            yield airflow
    finally:
        stop(mlflow)


@pytest.fixture(scope="module")
def browser(standalone):
    driver = chromium()
    try:
        log_in(driver, standalone.base, standalone.password)
        yield driver
    finally:
        driver.quit()


def test_a_person_finds_the_champion_the_gate_and_the_chart_in_the_airflow_ui(loop, standalone, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    browser.get(standalone.base + "/plugin/mlops")
    nav = wait(browser, ec.presence_of_element_located((By.XPATH, "//a[normalize-space()='MLOps']")))
    assert nav.get_attribute("href").endswith("/plugin/mlops")  # the view's entry in the navigation
    frame = wait(browser, ec.presence_of_element_located((By.TAG_NAME, "iframe")))
    browser.switch_to.frame(frame)
    champion = wait(browser, ec.presence_of_element_located((By.ID, "champion")))
    assert "In production: version 1" in champion.text
    assert "promotion gate: first-model against no champion" in champion.text
    gate = browser.find_element(By.ID, "gate").text
    assert "v2" in gate and "reject" in gate
    chart = browser.find_element(By.CSS_SELECTOR, "#timeline svg.timeline")
    assert len(chart.find_elements(By.CSS_SELECTOR, "circle.point")) == 4  # two days, two series
    assert chart.find_elements(By.CSS_SELECTOR, "g.marker.retrain")
    assert chart.size["width"] > 600
    browser.switch_to.default_content()
    browser.save_screenshot(str(ARTIFACTS / "mlops-view.png"))
    browser.switch_to.frame(frame)
    browser.execute_script("document.getElementById('gate').scrollIntoView()")
    browser.switch_to.default_content()
    browser.save_screenshot(str(ARTIFACTS / "mlops-view-gate.png"))


def test_a_task_extra_link_opens_the_model_version_in_mlflow(loop, standalone, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    run_id = loop.first.run_id
    browser.get(f"{standalone.base}/dags/training_pipeline/runs/{run_id}/tasks/gate/details")
    link = wait(browser, ec.presence_of_element_located((By.XPATH, "//a[normalize-space()='MLflow model version']")))
    assert link.get_attribute("href") == (
        f"http://127.0.0.1:{loop.mlflow_port}/#/models/flight_delay/versions/1?workflowType=machine_learning"
    )
    assert browser.find_elements(By.XPATH, "//a[normalize-space()='Gate report']")
    browser.save_screenshot(str(ARTIFACTS / "task-extra-links.png"))

    before = set(browser.window_handles)
    link.click()
    wait(browser, lambda d: len(d.window_handles) > len(before))
    browser.switch_to.window((set(browser.window_handles) - before).pop())
    wait(browser, lambda d: "Version 1" in d.find_element(By.TAG_NAME, "body").text)
    assert "flight_delay" in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(ARTIFACTS / "mlflow-model-version.png"))


def test_the_trigger_forms_render_typed_fields_with_their_choices_and_messages(standalone, browser) -> None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    browser.get(f"{standalone.base}/dags/training_pipeline")
    wait(browser, ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Trigger']"))).click()
    for section in ("Training window", "Model", "Search", "Why", "Set by drift monitoring"):
        assert browser.find_element(By.XPATH, f"//button[normalize-space()='{section}']")
    wait(browser, ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Model']"))).click()
    wait(
        browser, ec.visibility_of_element_located((By.XPATH, "//*[normalize-space()='Gradient boosting (histogram)']"))
    )
    form = browser.find_element(By.TAG_NAME, "body").text
    assert "Boosting iterations" in form and "Gradient boosting only: the number of trees (10 to 2000)." in form
    iterations = browser.find_element(By.NAME, "element_max_iter")  # a number field, bounded by the Param
    assert (iterations.get_attribute("aria-valuemin"), iterations.get_attribute("aria-valuemax")) == ("10", "2000")
    browser.save_screenshot(str(ARTIFACTS / "trigger-training.png"))

    def rollback_runs() -> int:
        with create_session() as session:
            return session.query(DagRun).filter(DagRun.dag_id == "model_rollback").count()

    before = rollback_runs()  # other tests of the session may have run it
    browser.get(f"{standalone.base}/dags/model_rollback")
    wait(browser, ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Trigger']"))).click()
    wait(browser, ec.presence_of_element_located((By.ID, "element_reason"))).send_keys("ab")
    assert "Version to restore" in browser.find_element(By.TAG_NAME, "body").text
    browser.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]").click()
    message = "Invalid input for param reason: 'ab' is too short"
    wait(browser, ec.presence_of_element_located((By.XPATH, f'//*[contains(text(), "{message}")]')))
    browser.save_screenshot(str(ARTIFACTS / "trigger-rollback-refused.png"))
    assert rollback_runs() == before  # nothing ran
