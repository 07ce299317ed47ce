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
        from include.mlops.settings import Settings

        settings = Settings.from_env()
        ti, task = context["ti"], context.get("task")
        subject = self.subject or getattr(task, "subject", "") or f"[mlops] {ti.dag_id}"
        message = self.message or _asking(context)
        alert = {
            "sent_at": datetime.now(UTC).isoformat(),  # when the alert went out, not data time
            "subject": subject,
            "message": message,
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
        }
        path = settings.alert_log_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(json.dumps(alert) + "\n")
        self.log.warning("Alert recorded in %s: %s: %s", path, subject, message)
        for channel, notifier in channels(settings, alert):
            try:
                notifier.notify(context)  # the texts are final: nothing left to render
            except Exception as error:  # one broken channel must not hide the alert from the others
                self.log.error("Could not send the alert by %s: %s", channel, error)


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
    where = f"{alert['dag_id']} / {alert['run_id']} / {alert['task_id']}"
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
