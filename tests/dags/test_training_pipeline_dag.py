"""The training_pipeline DAG with `dag.test()` over real weeks, and its Params form."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from include.flights import model
from include.mlops import registry, tracking
from include.mlops.settings import Settings
from tests.support import hitl
from tests.support.data import copy_weeks

# A run on Tuesday 17 November: trained on 26 October to 6 November, validated on 7-9 November and
# judged by the gate on 10-16 November. (The week after, 3-9 December 2013 on the replay clock,
# has twice the usual share of late flights: the gate rejects every model of November on it, as it
# should, since even the constant base rate scores a log loss of 0.79 there.)
LOGICAL_DATE = datetime(2026, 11, 17, tzinfo=UTC)
CONF = {"window_start": "2026-10-26", "window_end": "2026-11-17", "max_iter": 30, "configurations": 2, "reason": "test"}


@pytest.fixture(scope="module")
def dag(airflow_db: Path, weeks: Path):
    from airflow.dag_processing.dagbag import DagBag

    copy_weeks(weeks, Settings.from_env().state_dir)  # the tasks use the environment's state folder
    return DagBag().get_dag("training_pipeline")


def test_a_run_trains_every_configuration_and_registers_the_best(dag) -> None:
    """With approval asked for: alice approves the promotion the gate passed."""
    approving = hitl.answer("training_pipeline", "approve", ["Approve"], user="alice")
    run = dag.test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE, run_conf=CONF | {"require_approval": True})
    hitl.finished(approving)
    assert run.state == "success"
    states = [(ti.task_id, ti.map_index, ti.state) for ti in run.get_task_instances()]
    assert sorted(s for s in states if s[0] == "train") == [("train", 0, "success"), ("train", 1, "success")]
    assert ("close_run", -1, "success") in states

    tracking.connect(Settings.from_env())
    client = MlflowClient()
    version = client.get_model_version("flight_delay", "1")
    parent = client.get_run(version.tags["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["airflow.dag_id"] == "training_pipeline"
    assert parent.data.tags["airflow.run_id"] == run.run_id
    assert parent.data.tags["feast.feature_service"] == "flight_delay_v1"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 2
    assert version.run_id in {child.info.run_id for child in children}
    default = str(model.ModelConfig().learning_rate)
    assert {child.data.params["learning_rate"] for child in children} != {default}  # the search varied it

    # The first model passes the value thresholds alone and becomes the champion, audited.
    assert ("gate", -1, "success") in states and ("promote", -1, "success") in states
    assert version.tags["gate.decision"] == "first-model"
    assert int(client.get_model_version_by_alias("flight_delay", "champion").version) == 1
    gate_ti = next(ti for ti in run.get_task_instances() if ti.task_id == "gate")
    assert gate_ti.xcom_pull(task_ids="gate", key="_link_ModelVersionLink").endswith(
        "/#/models/flight_delay/versions/1?workflowType=machine_learning"
    )
    trail = registry.audit_trail(Settings.from_env(), "flight_delay")
    assert [(m.action, m.from_version, m.to_version, m.status) for m in trail] == [("promote", None, 1, "FINISHED")]
    assert trail[0].context["airflow.run_id"] == run.run_id
    assert (trail[0].context["airflow.approval_answer"], trail[0].context["airflow.approval_answered_by"]) == (
        "Approve",
        "alice",
    )


def test_a_promotion_the_person_rejects_or_leaves_unanswered_does_not_happen(dag, monkeypatch) -> None:
    """A first model the gate passes, twice (a model of its own name, so no champion yet): bob
    rejects the first; nobody answers the second, whose timeout takes the default, Reject."""
    monkeypatch.setenv("MLOPS_MODEL_NAME", "flight_delay_approval")
    conf = CONF | {"configurations": 1, "require_approval": True}
    nobody = "nobody: no answer within the timeout, the default applied"
    answers = {  # each responder starts with its run: both watch the same task
        "1": (lambda: hitl.answer("training_pipeline", "approve", ["Reject"], user="bob"), "bob"),
        "2": (lambda: hitl.time_out("training_pipeline", "approve"), nobody),
    }
    client = MlflowClient()
    for version, (respond, who) in answers.items():
        due = LOGICAL_DATE + timedelta(hours=int(version))
        responder = respond()
        run = dag.test(logical_date=due, run_after=due, run_conf=conf)
        hitl.finished(responder)
        states = {ti.task_id: ti.state for ti in run.get_task_instances() if ti.map_index < 0}
        assert (states["gate"], states["approve"], states["promote"]) == ("success", "success", "skipped"), states
        assert states["train_fallback"] == "skipped"  # the gate passed it: no fallback
        tracking.connect(Settings.from_env())
        tags = client.get_model_version("flight_delay_approval", version).tags
        assert tags["gate.decision"] == "first-model"
        assert (tags["approval.answer"], tags["approval.answered_by"]) == ("Reject", who)
    assert client.get_registered_model("flight_delay_approval").aliases == {}  # no champion
    assert registry.audit_trail(Settings.from_env(), "flight_delay_approval") == []


def test_a_rejected_candidate_leaves_the_champion_and_rollback_works_from_its_form(dag) -> None:
    """A model that barely learned (10 iterations at a learning rate of 0.001) is surely worse than
    the champion on the same week: not promoted."""
    from airflow.dag_processing.dagbag import DagBag

    weak = CONF | {"configurations": 1, "max_iter": 10, "learning_rate": 0.001, "reason": None}
    run = dag.test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE, run_conf=weak)
    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances() if ti.map_index < 0}
    assert states["gate"] == "success" and states["promote"] == "skipped"
    assert states["train_fallback"] == "skipped"  # a champion is in place: no fallback
    tracking.connect(Settings.from_env())
    client = MlflowClient()
    rejected = client.get_model_version("flight_delay", "2")
    assert rejected.tags["gate.decision"] == "reject"
    # Triggered without a reason: recorded as what it was, a manual run.
    assert client.get_run(rejected.tags["parent_run_id"]).data.tags["trigger_reason"] == "manual"
    assert int(client.get_model_version_by_alias("flight_delay", "champion").version) == 1

    rollback = DagBag().get_dag("model_rollback")
    explicit = rollback.test(run_conf={"target_version": 2, "reason": "try the rejected one"})
    assert explicit.state == "success"
    assert int(client.get_model_version_by_alias("flight_delay", "champion").version) == 2
    back = rollback.test(run_conf={"target_version": None, "reason": "back to the previous champion"})
    assert back.state == "success"
    assert int(client.get_model_version_by_alias("flight_delay", "champion").version) == 1
    assert int(client.get_model_version_by_alias("flight_delay", "previous_champion").version) == 2
    trail = registry.audit_trail(Settings.from_env(), "flight_delay")
    assert [(m.action, m.from_version, m.to_version) for m in trail] == [
        ("promote", None, 1),
        ("rollback", 1, 2),
        ("rollback", 2, 1),
    ]
    assert trail[-1].reason == "back to the previous champion"
    rollback_ti = next(ti for ti in back.get_task_instances() if ti.task_id == "rollback")
    assert rollback_ti.xcom_pull(task_ids="rollback", key="_link_AuditEntryLink") == trail[-1].entry_url  # its link


def test_a_rejected_first_model_triggers_the_logistic_baseline_on_the_same_window(dag, monkeypatch) -> None:
    """No champion yet (a model of its own name), and a candidate that learned nothing: the run asks
    for the fallback family on its window, once."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    monkeypatch.setenv("MLOPS_MODEL_NAME", "flight_delay_fresh")
    due = LOGICAL_DATE + timedelta(days=3)
    nothing = CONF | {"configurations": 1, "max_iter": 10, "learning_rate": 0.001, "reason": None}
    run = dag.test(logical_date=due, run_after=due, run_conf=nothing)
    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances() if ti.map_index < 0}
    assert (states["promote"], states["first_model_rejected"], states["train_fallback"]) == (
        "skipped",
        "success",
        "success",
    )
    with create_session() as session:
        [fallback] = session.query(DagRun).filter(DagRun.run_id == f"first_model__{run.run_id}").all()
        conf, run_after = fallback.conf, fallback.run_after
        fallback.state = "failed"  # not run here: nothing else in this module should wait on it
    assert run_after == due
    assert {k: conf[k] for k in ("family", "window_start", "window_end")} == {
        "family": "logistic_regression",
        "window_start": "2026-10-26",
        "window_end": "2026-11-17",
    }
    assert conf["reason"].startswith("first model: hist_gradient_boosting version 1 was rejected by the gate (")
    assert conf["reason"].endswith("); the logistic baseline on the same window")


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"window_start": "2026-11-10", "window_end": "2026-11-03"}, "is not before its end"),
        ({"window_start": "2026-11-01", "window_end": "2026-12-20"}, "is after the run's time"),
    ],
    ids=["end before start", "future end"],
)
def test_the_window_is_checked_against_the_run(conf: dict, message: str) -> None:
    from mlops_airflow.context import training_window

    context = {"params": CONF | conf, "dag_run": SimpleNamespace(run_after=datetime(2026, 11, 23, 3, tzinfo=UTC))}
    with pytest.raises(ValueError, match=message):
        training_window(context)


def test_a_manual_run_may_train_up_to_the_day_it_was_triggered() -> None:
    """A manual run's data interval is the last whole week, but its labels land until the trigger."""
    from mlops_airflow.context import training_window

    triggered = datetime(2026, 11, 27, 20, 51, tzinfo=UTC)  # a Friday; the data interval ended on Monday
    default = training_window({"params": {}, "dag_run": SimpleNamespace(run_after=triggered)})
    assert (default.start, default.end) == (datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC))
    chosen = {"window_start": "2026-11-16", "window_end": "2026-11-26"}
    window = training_window({"params": chosen, "dag_run": SimpleNamespace(run_after=triggered)})
    assert window.end == datetime(2026, 11, 26, tzinfo=UTC)


@pytest.mark.parametrize(
    "conf",
    [{"window_start": "2026-11-10", "window_end": "2026-11-03"}, {"window_end": "2026-12-20"}],
    ids=["end before start", "future end"],
)
def test_an_invalid_window_fails_the_run_before_anything_trains(dag, conf: dict) -> None:
    run = dag.test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE, run_conf=CONF | conf)
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances() if ti.map_index < 0}
    assert states["features_ready"] == "failed"
    assert states["prepare"] == "upstream_failed"
    assert states["register"] == "upstream_failed"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("family", "random_forest"),
        ("configurations", 0),
        ("configurations", 9),
        ("reason", ""),
        ("window_end", "2026-13-40"),
        ("learning_rate", 0),
    ],
)
def test_the_form_rejects_invalid_values(dag, name: str, value: object) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError, match=f"Invalid input for param {name}"):
        params[name] = value
