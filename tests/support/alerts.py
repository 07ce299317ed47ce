"""Local servers that receive what the provider notifiers send: an SMTP server (aiosmtpd) and an
HTTP endpoint standing in for Slack's incoming webhook. Both on loopback, each on a free port, each
keeping what arrived; `connections` returns the Airflow connections that point at them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.support.servers import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@contextmanager
def webhook_server() -> Iterator[tuple[int, list[dict]]]:
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(
                {"path": self.path, "body": json.loads(self.rfile.read(int(self.headers["Content-Length"])))}
            )
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


def connections(smtp_port: int, webhook_port: int) -> dict[str, str]:
    """The environment that points Airflow's `smtp_default` and a Slack webhook connection
    (`slack_alerts`) at the servers, and the project's alerts at both."""
    smtp = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": smtp_port,
        "extra": {"from_email": "airflow@example.org", "disable_ssl": True, "disable_tls": True},
    }
    slack = {"conn_type": "slackwebhook", "password": f"http://127.0.0.1:{webhook_port}/services/T0/B0/secret"}
    return {
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp),
        "AIRFLOW_CONN_SLACK_ALERTS": json.dumps(slack),
        "MLOPS_ALERT_EMAIL": "oncall@example.org, ml-team@example.org",
        "MLOPS_ALERT_SLACK_CONN_ID": "slack_alerts",
    }
