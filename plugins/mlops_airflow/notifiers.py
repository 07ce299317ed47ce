"""Notifiers: how a person is called when the loop cannot fix itself.

`EscalationNotifier` is the escalate task's failure callback. Every alert is appended, as one JSON
line, to the alert log (`MLOPS_ALERT_LOG`, default `alerts.log` in the state folder), which is all
the embedded default needs. When configured, it also goes out:

- by e-mail to `MLOPS_ALERT_EMAIL` (comma-separated), through Airflow's SMTP connection
  (`smtp_default`, from the SMTP provider);
- to a webhook, `MLOPS_ALERT_WEBHOOK`, as a JSON POST (Slack- and Teams-style incoming webhooks
  accept the `text` field).

A channel that fails is logged and does not stop the others; the alert log is written first.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context


class EscalationNotifier(BaseNotifier):
    template_fields = ("subject",)

    def __init__(self, subject: str = "[mlops] escalation from {{ dag.dag_id }}", **kwargs: object) -> None:
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
        for channel, configured in (("e-mail", settings.alert_email), ("webhook", settings.alert_webhook)):
            if not configured:
                continue
            try:
                self._email(settings.alert_email, alert) if channel == "e-mail" else self._post(configured, alert)
            except Exception as error:  # one broken channel must not hide the alert from the others
                self.log.error("Could not send the escalation by %s: %s", channel, error)

    @staticmethod
    def _post(url: str, alert: dict[str, str]) -> None:
        body = json.dumps(alert | {"text": f"{alert['subject']}: {alert['message']}"}).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    @staticmethod
    def _email(to: tuple[str, ...], alert: dict[str, str]) -> None:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook() as smtp:
            smtp.send_email_smtp(
                to=list(to),
                subject=alert["subject"],
                html_content=f"<p>{alert['message']}</p><p>{alert['dag_id']} / {alert['run_id']}</p>",
            )
