"""Notifiers: how a person is called when the loop cannot fix itself.

`EscalationNotifier` is the escalate task's failure callback. Every alert is appended, as one JSON
line, to the alert log (`MLOPS_ALERT_LOG`, default `alerts.log` in the state folder), which is all
the embedded default needs. When configured, Airflow's provider notifiers also send it:

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


class EscalationNotifier(BaseNotifier):
    template_fields = ("subject",)

    def __init__(self, subject: str = "[mlops] escalation from {{ ti.dag_id }}", **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.subject = subject

    def notify(self, context: Context) -> None:
        from include.mlops.settings import Settings

        settings = Settings.from_env()
        ti = context["ti"]
        alert = {
            "sent_at": datetime.now(UTC).isoformat(),  # when the alert went out, not data time
            "subject": self.subject,
            "message": str(context.get("exception") or "escalation without a message"),
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
        }
        path = settings.alert_log_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(json.dumps(alert) + "\n")
        self.log.warning("Escalation recorded in %s: %s", path, alert["message"])
        for channel, notifier in channels(settings, alert):
            try:
                notifier.notify(context)  # the texts are final: nothing left to render
            except Exception as error:  # one broken channel must not hide the alert from the others
                self.log.error("Could not send the escalation by %s: %s", channel, error)


def channels(settings: Settings, alert: dict[str, str]) -> list[tuple[str, BaseNotifier]]:
    """The provider notifiers the settings configure, each with the alert's text."""
    found: list[tuple[str, BaseNotifier]] = []
    where = f"{alert['dag_id']} / {alert['run_id']} / {alert['task_id']}"
    if settings.alert_email:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        body = f"<p>{html.escape(alert['message'])}</p><p>{html.escape(where)}</p>"
        found.append(
            ("e-mail", SmtpNotifier(to=list(settings.alert_email), subject=alert["subject"], html_content=body))
        )
    if settings.alert_slack_conn_id:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        text = f"*{alert['subject']}*\n{alert['message']}\n{where}"
        found.append(("Slack", SlackWebhookNotifier(slack_webhook_conn_id=settings.alert_slack_conn_id, text=text)))
    return found
