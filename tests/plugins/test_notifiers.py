"""The alert notifier on its own: the alert log first, then each configured provider notifier, a
broken channel never hiding the alert from the others. (The whole path, from a drift check's
incident to the person asked, through `dag.test()`, is in tests/dags/test_drift_escalation.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlops_airflow.notifiers import AlertNotifier
from tests.support.alerts import connections, smtp_server, webhook_server


def test_a_channel_that_fails_does_not_stop_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = {
        "ti": SimpleNamespace(dag_id="drift_escalation", run_id="escalation__scheduled__2026-11-23", task_id="act"),
    }
    notifier = AlertNotifier(
        subject="[mlops] {{ ti.dag_id }}: no answer",
        message="flight_delay (data quality): weather__temp out of range since 2026-11-20",
    )
    with smtp_server() as (smtp_port, inbox), webhook_server() as (webhook_port, posted):
        for name, value in connections(smtp_port, webhook_port).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path))
        monkeypatch.setenv("MLOPS_ALERT_SLACK_CONN_ID", "no_such_connection")
        notifier(context)
    [alert] = [json.loads(line) for line in (tmp_path / "alerts.log").read_text().splitlines()]
    assert alert["subject"] == "[mlops] drift_escalation: no answer" and "weather__temp" in alert["message"]
    [mail] = inbox.messages
    assert "weather__temp out of range" in mail.get_body().get_content()
    assert "escalation__scheduled__2026-11-23" in mail.get_body().get_content()
    assert posted == []


def test_an_hour_late_calls_people_through_the_deadline_alert_and_a_manual_run_does_not(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`batch_inference`'s deadline alert, its callback called as Airflow's executor calls it
    (`execute_callback`, with the path and arguments the parsed DAG declares and the context the
    scheduler gives: the run as the REST API shows it, and the deadline)."""
    import structlog
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.execution_time.callback_supervisor import execute_callback

    [alert] = DagBag().get_dag("batch_inference").deadline
    run = {"dag_id": "batch_inference", "dag_run_id": "asset_triggered__2026-11-26T01:00:03", "state": "running"}
    deadline = {"id": "0199", "deadline_time": "2026-11-26T01:30:03+00:00"}
    with smtp_server() as (smtp_port, inbox), webhook_server() as (webhook_port, posted):
        for name, value in connections(smtp_port, webhook_port).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path))
        for partition in ("2026-11-26T00:00:00", None):
            context = {"dag_run": run | {"partition_key": partition}, "deadline": deadline}
            done = execute_callback(
                alert.callback.path, alert.callback.kwargs | {"context": context}, "", None, structlog.get_logger()
            )
            assert done == (True, None)
    [line] = (tmp_path / "alerts.log").read_text().splitlines()  # the manual run's: logged, nobody called
    sent = json.loads(line)
    assert sent["subject"] == "[mlops] predictions late" and "partition 2026-11-26T00:00:00" in sent["message"]
    [mail] = inbox.messages
    assert "predictions are late for the flights they cover" in mail.get_body().get_content()
    [slack] = posted
    assert "asset_triggered__2026-11-26T01:00:03" in slack["body"]["text"]
