"""A new user's first hour: from `make up` on a fresh state folder to a working loop.

Runs `make up STATE=<a temporary folder>` on its own ports and times from its start:

- **UI up**: Airflow's API answers and the admin password exists (what `make up` waits for);
- **history built**: the manual `feature_pipeline` run that builds the default training window's
  features (`history__...`) succeeded;
- **first champion**: a model version holds the `champion` alias, put there by the first weekly
  `training_pipeline` run and its gate, with no manual step.

Once per season: `--weeks-ahead` (default 0 13 26 39) sets `MLOPS_REPLAY_WEEKS_AHEAD`, so today
replays four dates a quarter apart across 2013. Everything it starts, it stops; the state folder is
deleted (kept, and named, when the loop did not get its champion). The machine's load is printed
beside the figures (the target, under 6 minutes to the first champion, is for an otherwise idle
machine).

    python -m bench.first_hour [--weeks-ahead 0 13 26 39]
"""

from __future__ import annotations

import argparse
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
TIMEOUT_S = 30 * 60
TARGET_S = 6 * 60


STEPS = ("UI up", "history built", "first champion")


class FirstHour:
    """`make up` on a fresh state folder, on its own ports and replay season, watched: which of
    `STEPS` it reached, in seconds after its start. A context manager: everything it starts, it
    stops; the state folder is deleted unless `keep` (or the first champion was not reached)."""

    def __init__(self, weeks_ahead: int = 0, airflow_port: int = 18080, mlflow_port: int = 15000) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="first-hour-", dir="/tmp"))
        self.log = self.state.with_suffix(".log")
        self.base = f"http://127.0.0.1:{airflow_port}"
        self.mlflow = f"http://127.0.0.1:{mlflow_port}"
        # As on a fresh shell: none of the caller's Airflow or MLOPS_ settings (`make bench`, a test
        # session), which would point `make up` at another state folder or database.
        fresh = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MAKE"))}
        self.env = fresh | {
            "MLOPS_REPLAY_WEEKS_AHEAD": str(weeks_ahead),
            "AIRFLOW__API__PORT": str(airflow_port),
            "MLFLOW_PORT": str(mlflow_port),
            "MLOPS_MLFLOW_UI_URL": self.mlflow,
        }
        self.reached: dict[str, float] = {}
        self.password: str | None = None
        self.token: str | None = None
        self.keep = False

    def __enter__(self) -> FirstHour:
        with open(self.log, "w") as out:
            self._up = subprocess.Popen(
                ["make", "up", f"STATE={self.state}"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        self._started = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        """The process of `make up`, whose descendants are everything it started."""
        return self._up.pid

    def __exit__(self, *_: object) -> None:
        os.killpg(self._up.pid, signal.SIGTERM)
        try:
            self._up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self._up.pid, signal.SIGKILL)
        if self.keep or "first champion" not in self.reached:
            print(f"kept for a look: {self.state} and {self.log}")
        else:
            shutil.rmtree(self.state, ignore_errors=True)
            self.log.unlink()

    def wait_for(self, step: str, timeout: float) -> float:
        """Seconds from `make up` to `step` (and every step before it); RuntimeError when `make up`
        exits or the history run fails, TimeoutError after `timeout` seconds."""
        while step not in self.reached:
            if self._up.poll() is not None:
                raise RuntimeError(f"make up exited ({self._up.returncode}); see {self.log}")
            elapsed = time.monotonic() - self._started
            if elapsed > timeout:
                raise TimeoutError(f"{step} not reached in {timeout:.0f} s (reached: {self.reached}); see {self.log}")
            self._poll(elapsed)
            if step not in self.reached:
                time.sleep(5)
        return self.reached[step]

    def _poll(self, elapsed: float) -> None:
        if "UI up" not in self.reached:
            passwords = self.state / "airflow" / "simple_auth_manager_passwords.json.generated"
            try:
                _get(f"{self.base}/api/v2/monitor/health")
            except OSError:
                return
            if passwords.exists() and passwords.stat().st_size:
                self.password = json.loads(passwords.read_text())["admin"]
                self.token = _token(self.base, self.password)
                self.reached["UI up"] = elapsed
            return
        if "history built" not in self.reached:
            history = _history_state(self.base, self.token)
            if history == "failed":
                raise RuntimeError(f"the feature history run failed; see {self.state}/airflow/logs")
            if history == "success":
                self.reached["history built"] = elapsed
        if _champion(self.state) is not None:
            self.reached["first champion"] = elapsed


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


def main(argv: list[str] | None = None) -> int:
    from datetime import UTC, datetime

    from include.flights.clock import Clock

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weeks-ahead", type=int, nargs="+", default=[0, 13, 26, 39])
    args = parser.parse_args(argv)
    results = {}
    for weeks in args.weeks_ahead:
        replays = Clock(weeks).to_source_time(datetime.now(UTC))
        with FirstHour(weeks) as up:
            try:
                up.wait_for("first champion", TIMEOUT_S)
            except (RuntimeError, TimeoutError) as error:
                print(error)
        load = os.getloadavg()
        results[weeks] = {"replays": f"{replays:%Y-%m-%d}", "seconds": up.reached, "load": load}
        print(
            f"make up on a fresh state folder, today replaying {replays:%a %d %b %Y} ({weeks} weeks ahead; "
            f"load average {load[0]:.1f} at the end, {os.cpu_count()} cores):"
        )
        for step in STEPS:
            seconds = up.reached.get(step)
            print(f"  {step:<16}{'not reached in 30 min' if seconds is None else f'{seconds / 60:.1f} min'}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "first_hour.json").write_text(json.dumps(results, indent=2) + "\n")
    champions = [result["seconds"].get("first champion") for result in results.values()]
    met = all(seconds is not None and seconds <= TARGET_S for seconds in champions)
    print(
        f"target: first champion within {TARGET_S / 60:.0f} min of `make up` on every date: {'ok' if met else 'MISSED'}"
    )
    return 0 if None not in champions else 1


if __name__ == "__main__":
    sys.exit(main())
