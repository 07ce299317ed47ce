"""The production stack, natively: the services of docker-compose.yaml as processes of this machine.

    python scripts/stack.py up      start it (`make stack-up`); prints the UI address and login
    python scripts/stack.py down    stop it (`make stack-down`); `--purge` also drops its databases
    python scripts/stack.py init    migrate, first admin, pools: what `airflow-init` runs in compose
    python scripts/stack.py env     print the services' environment

docker-compose.yaml is the one description of the stack: this script reads its services, their
commands and the Airflow services' environment (`x-airflow-common`) from it, interpolates the
variables of the environment file (`.env`, as compose does; `--env-file` for another), and puts
this machine where compose has its containers:

- `postgres` is the machine's PostgreSQL (`STACK_POSTGRES_HOST`/`_PORT`, default 127.0.0.1:5432),
  with the databases `airflow`, `mlflow` and `feast` prefixed by `STACK_DB_PREFIX` (default
  `mlops_`), created when missing, so the stack shares the server with other databases;
- `redis` is the machine's Redis (`STACK_REDIS_HOST`/`_PORT`, default 127.0.0.1:6379), its
  database numbers shifted by `STACK_REDIS_DB_BASE` (default 0);
- `mlflow` and `airflow-apiserver` listen on 127.0.0.1 at `MLFLOW_PORT` and `AIRFLOW_PORT`;
- the paths of the image (`/opt/mlops`) are this checkout, and the volumes are folders of the
  stack's state folder (`STACK_DIR`, default `state/stack`), which also keeps each service's log
  and pid.

Each service runs in its own process group, so that `down` stops it with its children.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yaml"
INFRASTRUCTURE = ("postgres", "redis")  # the machine's servers stand in for these
ONE_OFF = ("airflow-init",)  # run by `up` before the services start, as compose's depends_on
DATABASES = ("airflow", "mlflow", "feast")
REQUIRED_AT_HOME = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:\?|:-)(?P<arg>[^}]*))?\}")


class StackError(RuntimeError):
    """The stack cannot start as configured; the message says what to change."""


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines, as compose reads `.env` (comments and blank lines skipped)."""
    if not path.exists():
        raise StackError(f"{path} does not exist: copy .env.example to it and fill in the secrets")
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise StackError(f"{path}:{number}: expected KEY=value, got {line!r}")
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip("'\"")
    return values


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Compose's variable syntax: `${X}`, `${X:-default}`, `${X:?error}` and `$$` for `$`."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        value = values.get(name, "")
        if op == ":?" and not value:
            raise StackError(f"{name} is missing or empty: {arg}")
        if op == ":-" and not value:
            return arg
        return value

    return _VARIABLE.sub(replace, text)


class Stack:
    """The compose file's stack, placed on this machine by the values of an environment file."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.compose = yaml.safe_load(COMPOSE.read_text())
        self.dir = Path(values.get("STACK_DIR") or ROOT / "state" / "stack").resolve()
        self.postgres = (values.get("STACK_POSTGRES_HOST") or "127.0.0.1", values.get("STACK_POSTGRES_PORT") or "5432")
        self.redis = (values.get("STACK_REDIS_HOST") or "127.0.0.1", values.get("STACK_REDIS_PORT") or "6379")
        self.redis_base = int(values.get("STACK_REDIS_DB_BASE") or 0)
        self.prefix = values.get("STACK_DB_PREFIX", "mlops_")
        self.airflow_port = values.get("AIRFLOW_PORT") or "8080"
        self.mlflow_port = values.get("MLFLOW_PORT") or "5000"

    # What runs, and with which environment.

    def services(self) -> dict[str, list[str]]:
        """Every long-running service of the compose file, as the command this machine runs."""
        return {
            name: self.command(name)
            for name in self.compose["services"]
            if name not in INFRASTRUCTURE and name not in ONE_OFF
        }

    def command(self, service: str) -> list[str]:
        command = [
            self.localize(interpolate(part, self.values)) for part in self.compose["services"][service]["command"]
        ]
        if command[0] in ("airflow", "mlflow", "celery", "python"):
            command[0] = str(Path(sys.executable).parent / command[0]) if command[0] != "python" else sys.executable
        return command

    def environment(self, service: str = "airflow-apiserver") -> dict[str, str]:
        """The service's environment in the compose file, interpolated and placed on this machine."""
        declared = self.compose["services"][service].get("environment") or {}
        env = {key: self.localize(interpolate(str(value), self.values)) for key, value in declared.items()}
        env["AIRFLOW__API__PORT"] = self.airflow_port  # compose maps the container's 8080 instead
        env["AIRFLOW_HOME"] = str(self.dir / "airflow")
        return env

    def localize(self, text: str) -> str:
        """The compose file's hosts, ports and container paths, as this machine's."""
        pg_host, pg_port = self.postgres
        redis_host, redis_port = self.redis
        for database in DATABASES:
            text = text.replace(f"@postgres:5432/{database}", f"@{pg_host}:{pg_port}/{self.prefix}{database}")
        text = re.sub(
            r"redis://redis:6379/(\d+)",
            lambda m: f"redis://{redis_host}:{redis_port}/{self.redis_base + int(m[1])}",
            text,
        )
        text = re.sub(
            r"^redis:6379,db=(\d+)$", lambda m: f"{redis_host}:{redis_port},db={self.redis_base + int(m[1])}", text
        )
        text = text.replace("http://mlflow:5000", f"http://127.0.0.1:{self.mlflow_port}")
        text = text.replace("http://airflow-apiserver:8080", f"http://127.0.0.1:{self.airflow_port}")
        text = text.replace("--host=0.0.0.0", "--host=127.0.0.1").replace("--port=5000", f"--port={self.mlflow_port}")
        text = text.replace("mlflow:5000,", f"127.0.0.1:{self.mlflow_port},")
        text = text.replace("=/mlflow/artifacts", f"={self.dir / 'mlflow-artifacts'}")
        text = text.replace("/opt/mlops/state", str(self.dir / "mlops-state"))
        return text.replace("/opt/mlops", str(ROOT))

    # Running it.

    def create_databases(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for database in DATABASES:
                if self.prefix + database not in existing:
                    conn.execute(f'CREATE DATABASE "{self.prefix}{database}"')

    def drop_databases(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            for database in DATABASES:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.prefix}{database}" WITH (FORCE)')

    def admin_url(self) -> str:
        user, password = self.values.get("POSTGRES_USER") or "postgres", self.values.get("POSTGRES_PASSWORD", "")
        host, port = self.postgres
        return f"postgresql://{user}:{password}@{host}:{port}/postgres"

    def run_init(self) -> None:
        """What compose's `airflow-init` does, in this process's environment."""
        env = os.environ | self.environment("airflow-init")
        subprocess.run(self.command("airflow-init"), env=env, cwd=ROOT, check=True)

    def start(self, name: str) -> None:
        logs, pids = self.dir / "logs", self.dir / "pids"
        logs.mkdir(parents=True, exist_ok=True)
        pids.mkdir(parents=True, exist_ok=True)
        env = os.environ | self.environment(name)
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        with open(logs / f"{name}.log", "a") as log:
            process = subprocess.Popen(
                self.command(name), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        (pids / f"{name}.pid").write_text(str(process.pid))

    def running(self) -> dict[str, int]:
        alive = {}
        for pid_file in sorted((self.dir / "pids").glob("*.pid")):
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            alive[pid_file.stem] = pid
        return alive

    def stop(self, names: list[str], timeout: float = 30) -> None:
        """SIGTERM to each service's process group, SIGKILL to what is left after `timeout`."""
        pids = {}
        for name in names:
            pid_file = self.dir / "pids" / f"{name}.pid"
            if pid_file.exists():
                pids[name] = int(pid_file.read_text())
                pid_file.unlink()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids.values():
                with contextlib.suppress(ProcessLookupError):  # already gone
                    os.killpg(pid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(_alive(pid) for pid in pids.values()):
                time.sleep(0.5)

    def wait_healthy(self, timeout: float = 300) -> None:
        """Until MLflow and the API server answer and both Celery workers are ready."""
        checks = {
            "mlflow": f"http://127.0.0.1:{self.mlflow_port}/health",
            "airflow-apiserver": f"http://127.0.0.1:{self.airflow_port}/api/v2/monitor/health",
        }
        workers = [name for name in self.services() if name.startswith("airflow-worker")]
        deadline = time.monotonic() + timeout
        pending = set(checks) | set(workers)
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                if name not in self.running():
                    raise StackError(f"{name} exited during start-up; see {self.dir / 'logs' / (name + '.log')}")
                log = self.dir / "logs" / f"{name}.log"
                if _answers(checks[name]) if name in checks else " ready." in log.read_text():
                    pending.discard(name)
            time.sleep(2)
        if pending:
            raise StackError(
                f"not healthy after {timeout:.0f} s: {', '.join(sorted(pending))}; see {self.dir / 'logs'}"
            )

    def up(self) -> None:
        for name in REQUIRED_AT_HOME:  # compose's `${...:?}` checks, before anything starts
            interpolate(f"${{{name}:?set {name} in the environment file (see .env.example)}}", self.values)
        if self.running():
            raise StackError(f"the stack is already running ({', '.join(self.running())}): `down` first")
        self.create_databases()
        try:
            self.start("mlflow")
            self.run_init()
            for name in self.services():
                if name != "mlflow":
                    self.start(name)
            self.wait_healthy()
        except BaseException:
            self.down()  # nothing half-started is left behind
            raise

    def down(self, purge: bool = False) -> None:
        self.stop(list(self.services()))
        if purge:
            self.drop_databases()


def init() -> None:
    """Compose's `airflow-init`: migrate the database, create the first admin and the pools."""
    sys.path.insert(0, str(ROOT / "plugins"))
    from mlops_airflow.pools import POOLS

    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], check=True)
    username = os.environ.get("AIRFLOW_ADMIN_USERNAME") or "admin"
    password = os.environ.get("AIRFLOW_ADMIN_PASSWORD") or ""
    if not password:
        raise StackError("AIRFLOW_ADMIN_PASSWORD is missing or empty: set it in the environment file")
    users = subprocess.run([airflow, "users", "list", "-o", "plain"], check=True, capture_output=True, text=True)
    if username not in users.stdout.split():
        account = ["--username", username, "--password", password, "--email", f"{username}@localhost"]
        names = ["--firstname", "Admin", "--lastname", "User"]
        subprocess.run([airflow, "users", "create", "--role", "Admin", *account, *names], check=True)
    for pool, (slots, description) in POOLS.items():
        subprocess.run([airflow, "pools", "set", pool, str(slots), description], check=True, capture_output=True)


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "init", "env"])
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--purge", action="store_true", help="down: drop the stack's databases too")
    args = parser.parse_args(argv)
    try:
        if args.action == "init":
            init()
            return 0
        stack = Stack(read_env_file(args.env_file))
        if args.action == "env":
            for key, value in sorted(stack.environment().items()):
                print(f"{key}={value}")
        elif args.action == "up":
            stack.up()
            user = stack.values.get("AIRFLOW_ADMIN_USERNAME") or "admin"
            print(f"Airflow: http://127.0.0.1:{stack.airflow_port} (user {user}, the password of {args.env_file})")
            print(f"MLflow:  http://127.0.0.1:{stack.mlflow_port}; logs in {stack.dir / 'logs'}")
        else:
            stack.down(purge=args.purge)
    except StackError as error:
        print(f"stack: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
