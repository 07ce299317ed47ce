"""Notifiers: how a person is called when the loop needs one.

`AlertNotifier` calls a person to a human-in-the-loop task (an escalation to answer, a promotion to
approve: the task's subject, its body and the link where it is answered) or tells them what
happened (`message`). Every alert is appended, as one JSON line, to the alert log
(`MLOPS_ALERT_LOG`, default `alerts.log` in the state folder), which is all the embedded default
needs. When configured, Airflow's provider notifiers also send it:

- by e-mail to `MLOPS_ALERT_EMAIL` (comma-separated), with the SMTP provider's `SmtpNotifier` on
  Airflow's SMTP connection (`[email] email_conn_id`, default `smtp_default`);
- to Slack, with the Slack provider's `SlackWebhookNotifier` on the connection named by
  `MLOPS_ALERT_SLACK_CONN_ID` (type `slackwebhook`: the incoming webhook's URL as its password).

Connections are defined as Airflow defines them (Admin > Connections, `airflow connections add`,
or `AIRFLOW_CONN_<ID>`). A channel that fails is logged and does not stop the others; the alert log
is written first.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.mlops.settings import Settings


class AlertNotifier(BaseNotifier):
    template_fields = ("subject", "message")

    def __init__(self, subject: str = "", message: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.subject = subject
        self.message = message

    def notify(self, context: Context) -> None:
        ti, task = context["ti"], context.get("task")
        subject = self.subject or getattr(task, "subject", "") or f"[mlops] {ti.dag_id}"
        where = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id}
        alert(subject, self.message or _asking(context), where, context)


def deadline_missed(context: dict, subject: str, promise: str) -> None:
    """The callback of a DAG's deadline alert, which Airflow's executor calls once the deadline has
    passed with the run unfinished. `context` is Airflow's deadline context: the run (as the REST
    API shows it) and the deadline. The promise is an hour's, so a run Airflow made for a partition
    (an hour of features to predict) calls people; a manual run of a longer interval made no
    promise, and its passed deadline is only logged."""
    import logging

    run, deadline = context["dag_run"], context["deadline"]
    what = f"{run['dag_id']} run {run['dag_run_id']} is not finished at its deadline {deadline['deadline_time']}"
    if not run.get("partition_key"):
        logging.getLogger(__name__).info("%s: a manual run, which makes no promise; nobody called", what)
        return
    where = {"dag_id": run["dag_id"], "run_id": run["dag_run_id"], "task_id": ""}
    alert(subject, f"{what} (partition {run['partition_key']}, state {run['state']}): {promise}", where, context)


def alert(subject: str, message: str, where: dict[str, str], context: Context | dict) -> None:
    """Append the alert to the alert log, then send it through every configured channel; a channel
    that fails is logged and does not stop the others."""
    import logging

    from include.mlops.settings import Settings

    log = logging.getLogger(__name__)
    settings = Settings.from_env()
    record = {"sent_at": datetime.now(UTC).isoformat(), "subject": subject, "message": message} | where
    path = settings.alert_log_path  # sent_at: when the alert went out, not data time
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    log.warning("Alert recorded in %s: %s: %s", path, subject, message)
    for channel, notifier in channels(settings, record):
        try:
            notifier.notify(context)  # the texts are final: nothing left to render
        except Exception as error:  # one broken channel must not hide the alert from the others
            log.error("Could not send the alert by %s: %s", channel, error)


def _asking(context: Context) -> str:
    """A human-in-the-loop task's question: its body and where to answer it."""
    task = context.get("task")
    try:
        link = task.generate_link_to_ui(task_instance=context["task_instance"])
    except (AttributeError, ValueError):  # not a human-in-the-loop task, or no [api] base_url to link to
        link = ""
    answer = f"\n\nAnswer in Airflow: {link}" if link else "\n\nAnswer in Airflow's UI (Browse > Required Actions)."
    return (getattr(task, "body", None) or "") + answer


def channels(settings: Settings, alert: dict[str, str]) -> list[tuple[str, BaseNotifier]]:
    """The provider notifiers the settings configure, each with the alert's text."""
    found: list[tuple[str, BaseNotifier]] = []
    where = " / ".join(alert[key] for key in ("dag_id", "run_id", "task_id") if alert[key])
    if settings.alert_email:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        body = f"<pre>{html.escape(alert['message'])}</pre><p>{html.escape(where)}</p>"
        found.append(
            ("e-mail", SmtpNotifier(to=list(settings.alert_email), subject=alert["subject"], html_content=body))
        )
    if settings.alert_slack_conn_id:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        text = f"*{alert['subject']}*\n{alert['message']}\n{where}"
        found.append(("Slack", SlackWebhookNotifier(slack_webhook_conn_id=settings.alert_slack_conn_id, text=text)))
    return found
