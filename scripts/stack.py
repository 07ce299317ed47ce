"""The production stack, natively: the services of docker-compose.yaml as processes of this machine.

    python scripts/stack.py up      start it (`make stack-up`); prints the UI address and login;
                                    `--scale airflow-worker=2` runs replicas, as compose does
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

Each service runs in its own process group under a small supervisor (`stack.py run`) that applies
the compose file's `restart` policy, as Docker does for a container: a scheduler that exits when
PostgreSQL restarts is started again. `down` stops each group, supervisor and children together.
A replica of a service (`--scale`) is its own group, named `<service>-<n>`, whose Celery node name
gets the same suffix (in compose, each container's own host name tells them apart).
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


def require_secrets(values: Mapping[str, str]) -> None:
    """Compose's `${...:?}` checks of the secrets, before anything starts."""
    for name in REQUIRED_AT_HOME:
        interpolate(f"${{{name}:?set {name} in the environment file (see .env.example)}}", values)


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
        """Every long-running service of the compose file that `docker compose up` starts (a
        profile's, such as `flower`, only on demand), as the command this machine runs."""
        return {
            name: self.command(name)
            for name, service in self.compose["services"].items()
            if name not in INFRASTRUCTURE and name not in ONE_OFF and not service.get("profiles")
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

    def start(self, name: str, replica: int = 1) -> str:
        """Start a service (its `replica`-th copy) under its restart policy; return the process's name."""
        logs, pids = self.dir / "logs", self.dir / "pids"
        logs.mkdir(parents=True, exist_ok=True)
        pids.mkdir(parents=True, exist_ok=True)
        process_name = name if replica == 1 else f"{name}-{replica}"
        command = self.command(name)
        if replica > 1:
            command = [re.sub(r"^(\w+)@%h$", rf"\1-{replica}@%h", part) for part in command]
        restart = str(self.compose["services"][name].get("restart", "no"))
        env = os.environ | self.environment(name)
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        supervised = [sys.executable, __file__, "run", "--restart", restart, "--", *command]
        with open(logs / f"{process_name}.log", "a") as log:
            process = subprocess.Popen(
                supervised, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        (pids / f"{process_name}.pid").write_text(str(process.pid))
        return process_name

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
            while time.monotonic() < deadline and any(group_alive(pid) for pid in pids.values()):
                time.sleep(0.5)

    def kill(self, name: str) -> None:
        """A crash: SIGKILL to the service's process group, its supervisor included."""
        pid_file = self.dir / "pids" / f"{name}.pid"
        os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        pid_file.unlink()

    def restarted(self) -> list[str]:
        """The services their restart policy has started again."""
        return [name for name in self.running() if "restarting in" in self.log(name)]

    def log(self, name: str) -> str:
        return (self.dir / "logs" / f"{name}.log").read_text(errors="replace")

    def wait_healthy(self, timeout: float = 300) -> None:
        """Until MLflow and the API server answer and both Celery workers are ready."""
        checks = {
            "mlflow": f"http://127.0.0.1:{self.mlflow_port}/health",
            "airflow-apiserver": f"http://127.0.0.1:{self.airflow_port}/api/v2/monitor/health",
        }
        workers = [name for name in self.running() if name.startswith("airflow-worker")]
        deadline = time.monotonic() + timeout
        pending = set(checks) | set(workers)
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                if name not in self.running():
                    raise StackError(f"{name} exited during start-up; see {self.dir / 'logs' / (name + '.log')}")
                if _answers(checks[name]) if name in checks else " ready." in self.log(name):
                    pending.discard(name)
            time.sleep(2)
        if pending:
            raise StackError(
                f"not healthy after {timeout:.0f} s: {', '.join(sorted(pending))}; see {self.dir / 'logs'}"
            )

    def up(self, scale: Mapping[str, int] | None = None) -> None:
        require_secrets(self.values)
        if self.running():
            raise StackError(f"the stack is already running ({', '.join(self.running())}): `down` first")
        self.create_databases()
        try:
            self.start("mlflow")
            self.run_init()
            for name in self.services():
                for replica in range(1, (scale or {}).get(name, 1) + 1):
                    if (name, replica) != ("mlflow", 1):
                        self.start(name, replica)
            self.wait_healthy()
        except BaseException:
            self.down()  # nothing half-started is left behind
            raise

    def down(self, purge: bool = False) -> None:
        self.stop([pid_file.stem for pid_file in (self.dir / "pids").glob("*.pid")])
        if purge:
            self.drop_databases()


def run(command: list[str], restart: str) -> int:
    """Run a service under compose's restart policy: `always` and `unless-stopped` start it again
    whenever it exits, `on-failure` when it fails, `no` never. The delay doubles from 1 s to 30 s
    while it keeps failing, and starts over once it has run for a minute. SIGTERM or SIGINT (`down`
    signals the whole group, the service included) stop it for good."""
    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is None or child.poll() is not None:  # between two runs: nothing left to wait for
            raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = 1
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping or restart == "no" or (restart == "on-failure" and code == 0):
            return code
        delay = 1 if time.monotonic() - started > 60 else delay
        print(f"stack: {Path(command[0]).name} exited with {code}; restarting in {delay} s", flush=True)
        time.sleep(delay)
        delay = min(delay * 2, 30)


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
        # `--option=value`: a password may begin with "-", which argparse would take for an option.
        account = [f"--username={username}", f"--password={password}", f"--email={username}@localhost"]
        names = ["--firstname=Admin", "--lastname=User"]
        subprocess.run([airflow, "users", "create", "--role", "Admin", *account, *names], check=True)
    for pool, (slots, description) in POOLS.items():
        subprocess.run([airflow, "pools", "set", pool, str(slots), description], check=True, capture_output=True)


def group_alive(pid: int) -> bool:
    """Whether anything of the process group led by `pid` still runs. A leader that is our own
    child and has exited is reaped first: as a zombie it would keep its group alive."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
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
    parser.add_argument("action", choices=["up", "down", "init", "env", "run"])
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--purge", action="store_true", help="down: drop the stack's databases too")
    parser.add_argument("--scale", action="append", default=[], metavar="SERVICE=N", help="up: run N copies of SERVICE")
    parser.add_argument("--restart", default="no", help="run: the restart policy of the command after --")
    argv = sys.argv[1:] if argv is None else argv
    command = argv[argv.index("--") + 1 :] if "--" in argv else []  # run: the service's command
    args = parser.parse_args(argv[: len(argv) - len(command) - (1 if command else 0)])
    try:
        if args.action == "run":
            if not command:
                raise StackError("run: give the service's command after --")
            return run(command, args.restart)
        if args.action == "init":
            init()
            return 0
        stack = Stack(read_env_file(args.env_file))
        if args.action == "env":
            for key, value in sorted(stack.environment().items()):
                print(f"{key}={value}")
        elif args.action == "up":
            stack.up(scale=parse_scale(args.scale, stack.services()))
            user = stack.values.get("AIRFLOW_ADMIN_USERNAME") or "admin"
            print(f"Airflow: http://localhost:{stack.airflow_port} (user {user}, the password of {args.env_file})")
            print(f"MLflow:  http://localhost:{stack.mlflow_port}; logs in {stack.dir / 'logs'}")
        else:
            stack.down(purge=args.purge)
    except StackError as error:
        print(f"stack: {error}", file=sys.stderr)
        return 1
    return 0


def parse_scale(options: list[str], services: Mapping[str, object]) -> dict[str, int]:
    """`SERVICE=N` options, as `docker compose up --scale` takes them."""
    scale = {}
    for option in options:
        name, _, count = option.partition("=")
        if name not in services:
            raise StackError(f"--scale {option}: no service {name!r} (services: {', '.join(services)})")
        if not count.isdigit() or int(count) < 1:
            raise StackError(f"--scale {option}: the number of copies must be a whole number of at least 1")
        scale[name] = int(count)
    return scale


if __name__ == "__main__":
    sys.exit(main())
