"""What the tests share, a module a subject: `data` (real days and state folders), `airflow` (its
database), `servers` (processes, ports, the REST API), `browser` (Chromium), `alerts` (mail and
webhook receivers), `hitl` (answering human-in-the-loop tasks), `scheduler` (the scheduler's own
steps), `online` (reading the online store). Their fixtures are registered by tests/conftest.py."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
