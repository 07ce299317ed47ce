"""Shared fixtures. Airflow reads its configuration on import, so the environment is set first:
every test session gets its own Airflow home (SQLite) and its own state folder."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"  # screenshots of what the browser tests saw
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_SESSION_DIR / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MLOPS_STATE_DIR": str(_SESSION_DIR / "state"),
        "MLOPS_PROFILE": "embedded",
    }
)

from include.flights.source import Nycflights13Source  # noqa: E402
from include.mlops.lake import Interval, Lake  # noqa: E402
from include.mlops.settings import Settings  # noqa: E402

# Real replay days: 2026-11-16 .. 2026-11-30 replays 2013-12-02 .. 2013-12-16, a stormy fortnight.
BUILT = Interval(datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
# Four weeks for training and the week after them for the promotion gate's evaluation.
WEEKS = Interval(datetime(2026, 10, 26, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC))
SHIFTED_CARRIER = "UA"  # whose delay features `inject_shift` doubles


@pytest.fixture(scope="session")
def source() -> Nycflights13Source:
    return Nycflights13Source()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh, empty state folder."""
    return Settings(state_dir=tmp_path / "state")


@pytest.fixture(scope="session")
def built(source: Nycflights13Source) -> Settings:
    """A state folder with a week of features built, applied and materialized (shared, read-only)."""
    from include.flights import pipeline

    settings = Settings(state_dir=_SESSION_DIR / "built")
    days = pipeline.feature_days(settings, BUILT)  # two days before, for the first departures
    pipeline.validate_batches(settings, pipeline.ingest(settings, days, source))
    pipeline.build_features(settings, days)
    pipeline.apply_definitions(settings)
    pipeline.materialize(settings, days)
    return settings


@pytest.fixture(scope="session")
def weeks(source: Nycflights13Source) -> Path:
    """A state folder with the features of `WEEKS`, built once; tests copy it (`copy_weeks`)."""
    from include.flights import pipeline

    settings = Settings(state_dir=_SESSION_DIR / "weeks")
    days = pipeline.feature_days(settings, WEEKS)
    pipeline.validate_batches(settings, pipeline.ingest(settings, days, source))
    pipeline.build_features(settings, days)
    return settings.state_dir


def copy_weeks(weeks: Path, to: Path) -> Settings:
    """A private copy of the `weeks` state folder, its Feast definitions applied where it lies."""
    from include.flights import pipeline

    shutil.copytree(weeks, to, dirs_exist_ok=True)
    settings = Settings(state_dir=to)
    pipeline.apply_definitions(settings)  # the registry anchors sources at the state folder's path
    return settings


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (SQLite) for this session."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ,
    )
    return Path(os.environ["AIRFLOW_HOME"])


def inject_shift(settings: Settings, window: Interval) -> None:
    """The same shift in the offline store's feature rows stamped in `window` (weather and carrier
    operations), as a broken upstream feed would write them."""
    lake = Lake(settings.lake_dir)
    for view, change in (
        ("weather", lambda f: f.assign(temp=(f["temp"] - 32) * 5 / 9)),
        ("carrier_ops", double_delays),
    ):
        for path in lake.partitions("features", view, window):
            frame = pd.read_parquet(path)
            inside = (frame["event_timestamp"] >= window.start) & (frame["event_timestamp"] < window.end)
            frame.loc[inside] = change(frame.loc[inside])
            frame.to_parquet(path, index=False)


def double_delays(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame["carrier"] == SHIFTED_CARRIER
    columns = [c for c in frame.columns if c.startswith("mean_arr_delay")]
    frame = frame.copy()
    frame.loc[rows, columns] = frame.loc[rows, columns] * 2
    return frame


def finish_training_runs(state: str) -> None:
    """Put the training runs that drift checks triggered (`drift__...`) in `state`."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).filter(DagRun.dag_id == "training_pipeline").all():
            if run.run_id.startswith("drift__"):
                run.state = state


def training_runs(prefix: str = "drift__") -> list:
    """The runs of training_pipeline whose id starts with `prefix`: (run id, conf, state)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "training_pipeline").all()
        return [(r.run_id, r.conf, r.state) for r in runs if r.run_id.startswith(prefix)]


def set_task_state(dag_id: str, run_id: str, task_id: str, task_state: str | None) -> None:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id).one()
        ti.state = task_state


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def midnight(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def interval_conf(start: str, end: str) -> dict[str, str]:
    """A manual run's conf that sets its data interval (the DAGs' `interval_start`/`interval_end`)."""
    return {"interval_start": start, "interval_end": end}


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


# A real browser: Debian's Chromium, headless.


def chromium():
    """Headless Chromium through ChromeDriver, at a desktop's window size."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("google-chrome") or "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1440,1200",
    ):
        options.add_argument(flag)
    ARTIFACTS.mkdir(exist_ok=True)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)


def log_in(driver, base: str, password: str) -> None:
    """Through Airflow's login page, as a person does: the UI keeps the session in a cookie."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(base + "/")
    wait(driver, ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver, lambda d: "login" not in d.current_url)


def wait(driver, condition, timeout: float = 60):
    """Wait for `condition`; on a timeout, keep a screenshot of what the browser showed instead."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        driver.save_screenshot(str(ARTIFACTS / "timeout.png"))
        pytest.fail(f"timed out after {timeout:.0f} s on {driver.current_url}; see test-artifacts/timeout.png")
