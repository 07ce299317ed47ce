"""Servers the tests start and talk to: free ports, `airflow standalone` as `make up` runs it, Airflow's
REST API as a user calls it, and the processes a server runs (to check what its workers imported)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from tests.support import ROOT


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """Airflow's REST API as a user calls it: a token, then JSON requests."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=30)
        response = self.client.post("/auth/token", json={"username": username, "password": password})
        assert response.status_code == 201, response.text
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def call(self, method: str, path: str, **body: object) -> dict:
        response = self.client.request(method, f"/api/v2{path}", json=body or None)
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def trigger(self, dag_id: str, run_id: str, logical_date: str, run_after: str | None = None, **conf) -> str:
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf}
        self.call("POST", f"/dags/{dag_id}/dagRuns", **body | ({"run_after": run_after} if run_after else {}))
        return run_id

    def wait(self, dag_id: str, run_id: str, timeout: float) -> dict[str, str]:
        """Until the run ends; its task states. A failed run fails the test with them."""
        state, tasks = self.finished(dag_id, run_id, timeout)
        assert state == "success", f"{dag_id} {run_id} failed: {tasks}"
        return tasks

    def finished(self, dag_id: str, run_id: str, timeout: float) -> tuple[str, dict[str, str]]:
        """Until the run ends: its state and its task states."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state, {t["task_id"]: t["state"] for t in self.tasks(dag_id, run_id)}
            time.sleep(3)
        pytest.fail(f"{dag_id} {run_id} did not finish within {timeout:.0f} s: {self.tasks(dag_id, run_id)}")

    def backfill_runs(self, dag_id: str, backfill_id: int, expected: int, timeout: float = 60) -> list[dict]:
        """The runs the backfill created (it creates them at once, then the scheduler runs them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.call("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
            runs = [run for run in runs if run["run_type"] == "backfill"]
            if len(runs) >= expected:
                return runs
            time.sleep(2)
        pytest.fail(f"the backfill {backfill_id} of {dag_id} created {len(runs)} of {expected} runs in {timeout:.0f} s")

    def tasks(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def task(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict:
        suffix = f"/{map_index}" if map_index >= 0 else ""
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{suffix}")

    def answer(self, dag_id: str, run_id: str, task_id: str, chosen: list[str], timeout: float, **form) -> dict:
        """A person's answer to a human-in-the-loop task, once it waits for one: the response Airflow
        recorded (who, when, what)."""
        self.wait_for_task(dag_id, run_id, task_id, {"awaiting_input"}, timeout)
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
        return self.call("PATCH", path, chosen_options=chosen, params_input=form)

    def wait_for_task(self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float, **kw) -> dict:
        """Poll one task instance until it is in one of `states` (a mapped one may not exist yet)."""
        suffix = f"/{kw['map_index']}" if "map_index" in kw else ""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{suffix}"
        deadline, state = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            response = self.client.get(path)
            assert response.is_success or response.status_code == 404, f"GET {path}: {response.text}"
            state = response.json()["state"] if response.is_success else None
            if state in states:
                return response.json()
            time.sleep(0.3)
        pytest.fail(f"{dag_id} {run_id} {task_id} not {states} within {timeout:.0f} s: {state}")


def start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """A server in its own process group, its output in `log`."""
    with open(log, "w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's group; SIGKILL to whatever of it is left after a minute."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):  # whatever of the group outlived its leader
        os.killpg(server.pid, signal.SIGKILL)


def wait_for(url: str, server: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"{url} exited during start-up:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def airflow_standalone(log: Path, **env: str) -> Iterator[SimpleNamespace]:
    """`airflow standalone`, as `make up` runs it (scheduler with the LocalExecutor, dag-processor,
    triggerer, API server), in this session's environment with `env` on top; its address and the
    admin's password. Stopped afterwards."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = (
        os.environ
        | {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",  # where tasks report
        }
        | env
    )
    server = start([str(bin_dir / "airflow"), "standalone"], log, env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/api/v2/monitor/health", server, log)
        passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        yield SimpleNamespace(base=base, password=json.loads(passwords.read_text())["admin"])
    finally:
        stop(server)


# The library the configured workers import before they fork a task (plugins/mlops_airflow/preload.py),
# as it shows in a process's memory map once imported: scikit-learn's gradient boosting extension.
PRELOADED = "sklearn/ensemble/_hist_gradient_boosting/"


def process_tree(root: int) -> dict[int, str]:
    """`root` and the processes descending from it, each with its command line (its title, where
    the process set one)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    found = {}
    for pid in tree:
        with contextlib.suppress(OSError):
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return found


def holds_preloaded(pid: int) -> bool:
    """Whether the process has imported what the workers preload."""
    return PRELOADED in Path(f"/proc/{pid}/maps").read_text()
