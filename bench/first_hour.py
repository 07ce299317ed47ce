"""A new user's first hour: from `make up` on a fresh state folder to a working loop.

Runs `make up STATE=<a temporary folder>` on its own ports and times from its start:

- **UI up**: Airflow's API answers and the admin password exists (what `make up` waits for);
- **history built**: the manual `feature_pipeline` run that builds the default training window's
  features (`history__...`) succeeded;
- **first champion**: a model version holds the `champion` alias, put there by the first weekly
  `training_pipeline` run and its gate, with no manual step.

Everything it starts, it stops; the state folder is deleted (kept, and named, when the loop did
not get its champion). The machine's load is printed beside
the figures (the target, under 6 minutes to the first champion, is for an otherwise idle machine).

    python -m bench.first_hour
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
AIRFLOW_PORT, MLFLOW_PORT = 18080, 15000
TIMEOUT_S = 30 * 60
TARGET_S = 6 * 60


def environment() -> dict[str, str]:
    """`make up`'s environment, with the benchmark's own ports."""
    return os.environ | {
        "AIRFLOW__API__PORT": str(AIRFLOW_PORT),
        "MLFLOW_PORT": str(MLFLOW_PORT),
        "MLOPS_MLFLOW_UI_URL": f"http://localhost:{MLFLOW_PORT}",
    }


def _get(url: str, token: str | None = None) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def _token(base: str, password: str) -> str:
    body = json.dumps({"username": "admin", "password": password}).encode()
    request = urllib.request.Request(f"{base}/auth/token", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["access_token"]


def _history_state(base: str, token: str) -> str | None:
    runs = _get(f"{base}/api/v2/dags/feature_pipeline/dagRuns?limit=100", token)["dag_runs"]
    found = [run["state"] for run in runs if run["dag_run_id"].startswith("history__")]
    return found[0] if found else None


def _champion(state: Path) -> int | None:
    from mlflow import MlflowClient

    from include.mlops import registry

    database = state / "mlflow" / "mlflow.db"
    if not database.exists():
        return None
    client = MlflowClient(tracking_uri=f"sqlite:///{database}", registry_uri=f"sqlite:///{database}")
    try:
        return registry.alias_version(client, "flight_delay", registry.CHAMPION)
    except Exception:  # the registry's tables are not there yet
        return None


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="bench-first-hour-", dir="/tmp"))
    base = f"http://127.0.0.1:{AIRFLOW_PORT}"
    passwords = state / "airflow" / "simple_auth_manager_passwords.json.generated"
    log = open(state.with_suffix(".log"), "w")  # noqa: SIM115  (kept open for the process's life)
    started = time.monotonic()
    up = subprocess.Popen(
        ["make", "up", f"STATE={state}"], cwd=ROOT, env=environment(), stdout=log, stderr=log, start_new_session=True
    )
    found: dict[str, float] = {}
    token = None
    try:
        while time.monotonic() - started < TIMEOUT_S and "first champion" not in found:
            time.sleep(5)
            if up.poll() is not None:
                raise RuntimeError(f"make up exited ({up.returncode}); see {log.name}")
            elapsed = time.monotonic() - started
            if "UI up" not in found:
                try:
                    _get(f"{base}/api/v2/monitor/health")
                except OSError:
                    continue
                if passwords.exists() and passwords.stat().st_size:
                    found["UI up"] = elapsed
                    token = _token(base, json.loads(passwords.read_text())["admin"])
                continue
            if "history built" not in found:
                history = _history_state(base, token)
                if history == "failed":
                    raise RuntimeError("the feature history run failed")
                if history == "success":
                    found["history built"] = elapsed
            if _champion(state) is not None:
                found["first champion"] = elapsed
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
        log.close()
        load = os.getloadavg()
        if "first champion" in found:
            shutil.rmtree(state, ignore_errors=True)
        else:
            print(f"kept for a look: {state} and {log.name}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "first_hour.json").write_text(json.dumps({"seconds": found, "load": load}, indent=2) + "\n")
    print(f"make up on a fresh state folder (load average {load[0]:.1f} at the end, {os.cpu_count()} cores):")
    for step in ("UI up", "history built", "first champion"):
        seconds = found.get(step)
        print(f"  {step:<16}{'not reached in 30 min' if seconds is None else f'{seconds / 60:.1f} min'}")
    champion = found.get("first champion")
    verdict = "ok" if champion is not None and champion <= TARGET_S else "MISSED"
    print(f"target: first champion within {TARGET_S / 60:.0f} min of `make up`: {verdict}")
    return 0 if champion is not None else 1


if __name__ == "__main__":
    sys.exit(main())
