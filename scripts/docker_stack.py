"""docker-compose.yaml in containers, on a machine without an image registry and without a network
of the containers' own (this machine, and CI):

    python scripts/docker_stack.py image   the production image (`make image`)
    python scripts/docker_stack.py up      the stack in containers (`make compose-up`); prints the
                                           UI address and login; reads .env (`--env-file`)
    python scripts/docker_stack.py down    stop it and remove its containers, networks and volumes
                                           (`make compose-down`)

What each step does:
- Docker's engine: Debian's `docker.io`, `docker-compose` (1.29) and `debootstrap` are installed
  with apt when missing. An engine already running is used as it is; otherwise one is started with
  no bridge and no iptables rules (`dockerd --bridge=none --iptables=false`): containers use the
  host's network. `up` keeps it running for the stack and `down` stops it; `image` stops it after.
- Images, with nothing pulled: a Debian bookworm base made once with debootstrap from the
  machine's Debian mirror (`mlops-base:bookworm`, kept); the project's image from the Dockerfile on
  that base (`BASE_IMAGE`), built with the host's network and CA bundle (`build-ca.pem`, removed
  after); for `up`, PostgreSQL and Redis from Debian's packages (scripts/docker/services.Dockerfile).
- The stack: docker-compose.yaml with the overlay scripts/docker/host.yaml (host network, each
  service on its own loopback port), merged by `docker-compose config` into the state folder's
  `compose.yaml`. Compose 1.29 cannot drop a list in an overlay, so the merge is written out with
  the published ports removed (they mean nothing on the host's network, and Docker refuses them
  there). `up` waits until every service's health check passes; a service that exits, or an
  `airflow-init` that fails, stops it with the service's log.

`ComposeStack` is what the end-to-end tests drive (tests/system/test_stack_e2e.py): the same operations
as the native stack's (`scripts/stack.py`), on containers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.stack import StackError, group_alive, read_env_file, require_secrets  # noqa: E402

COMPOSE = ROOT / "docker-compose.yaml"
OVERLAY = ROOT / "scripts" / "docker" / "host.yaml"
DOCKER = "/usr/bin/docker"  # the engine's own client: a newer one elsewhere on PATH may not speak its API
BASE_IMAGE = "mlops-base:bookworm"
IMAGE = "flight-delay-mlops:latest"  # docker-compose.yaml's
SERVICES_IMAGE = "mlops-services:bookworm"  # host.yaml's
PACKAGES = {"dockerd": "docker.io", "docker-compose": "docker-compose", "debootstrap": "debootstrap"}
ENGINE_FLAGS = ("--bridge=none", "--iptables=false", "--ip6tables=false")
LOGS = Path(tempfile.gettempdir())


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Say what starts, and how long it took once done."""
    print(f"{what} ...", flush=True)
    started = time.monotonic()
    yield
    print(f"{what}: done in {time.monotonic() - started:.0f} s", flush=True)


def docker(*args: str, capture: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], check=check, text=True, capture_output=capture)


def install() -> None:
    """Debian's engine, compose and debootstrap, when missing."""
    missing = sorted({package for command, package in PACKAGES.items() if not shutil.which(command)})
    if missing:
        log = LOGS / "mlops-apt.log"
        with step(f"Installing Debian's {', '.join(missing)}"), open(log, "w") as out:
            env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
            done = subprocess.run(["apt-get", "install", "-y", "-q", *missing], stdout=out, stderr=out, env=env)
            if done.returncode:  # package lists older than the mirror: refresh them once
                subprocess.run(["apt-get", "update", "-q"], stdout=out, stderr=out, env=env)
                done = subprocess.run(["apt-get", "install", "-y", "-q", *missing], stdout=out, stderr=out, env=env)
            if done.returncode:
                raise StackError(f"apt-get install {' '.join(missing)} failed; see {log}")


class Engine:
    """The Docker engine: the one running, or one started here and stopped by `stop`."""

    def __init__(self, pid_file: Path) -> None:
        self.pid_file = pid_file

    @staticmethod
    def answers() -> bool:
        return docker("info", capture=True, check=False).returncode == 0

    def start(self) -> None:
        if self.answers():
            return
        log = LOGS / "mlops-dockerd.log"
        print(f"Starting the Docker engine without a bridge (log: {log})", flush=True)
        with open(log, "a") as out:
            engine = subprocess.Popen(["dockerd", *ENGINE_FLAGS], stdout=out, stderr=out, start_new_session=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(engine.pid))
        deadline = time.monotonic() + 60
        while not self.answers():
            if engine.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StackError(f"the Docker engine did not start; see {log}")
            time.sleep(1)

    def stop(self) -> None:
        """Stop the engine if it was started here; one that was already running is left alone."""
        if not self.pid_file.exists():
            return
        pid = int(self.pid_file.read_text())
        self.pid_file.unlink()
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and group_alive(pid):  # its own session: containerd goes with it
            time.sleep(0.5)


def build_images(services: bool = False) -> None:
    """The local base (once), the project's image on it and, for the stack here, the services'."""
    if docker("image", "inspect", BASE_IMAGE, capture=True, check=False).returncode:
        mirror = os.environ.get("DEBIAN_MIRROR") or debian_mirror()
        with (
            step(f"Making the base image {BASE_IMAGE} with debootstrap from {mirror}"),
            tempfile.TemporaryDirectory() as root,
        ):
            log = LOGS / "mlops-debootstrap.log"
            with open(log, "w") as out:
                made = subprocess.run(
                    ["debootstrap", "--variant=minbase", "bookworm", root, mirror], stdout=out, stderr=out
                )
            if made.returncode:
                raise StackError(f"debootstrap failed; see {log}")
            tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
            subprocess.run([DOCKER, "import", "-", BASE_IMAGE], stdin=tar.stdout, check=True, capture_output=True)
            tar.wait()
    ca = ROOT / "build-ca.pem"  # trusted during the build only (see the Dockerfile)
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", ca)
    try:
        build(IMAGE, ROOT, ROOT / "Dockerfile", "mlops-image-build.log")
    finally:
        ca.unlink()
    if services:
        build(SERVICES_IMAGE, OVERLAY.parent, OVERLAY.parent / "services.Dockerfile", "mlops-services-build.log")


def build(image: str, context: Path, dockerfile: Path, log_name: str) -> None:
    log = LOGS / log_name
    with step(f"Building {image} on {BASE_IMAGE} (log: {log})"), open(log, "w") as out:
        built = subprocess.run(
            [DOCKER, "build", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", image,
             "-f", str(dockerfile), str(context)],
            stdout=out, stderr=out,
        )  # fmt: skip
        if built.returncode:
            raise StackError(f"building {image} failed; see {log}")


def overlay_ports() -> list[str]:
    """The loopback ports host.yaml gives the containers (its `COMPOSE_*_PORT` variables)."""
    return sorted(set(re.findall(r"\$\{(COMPOSE_\w+_PORT)\b", OVERLAY.read_text())))


def write_private(path: Path, text: str) -> None:
    """A file only its owner reads: the environment and the merged compose file hold the secrets."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def debian_mirror() -> str:
    """The machine's configured Debian mirror (deb822 sources), or Debian's own."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


class ComposeStack:
    """docker-compose.yaml with the host-network overlay, as one compose project.

    `values` are the environment file's (the secrets, ports and `COMPOSE_*` ports of host.yaml);
    `project` names the containers and volumes; `folder` keeps the environment file, the merged
    compose file and the engine's pid. `airflow_environment` and `airflow_volumes` are added to
    every Airflow service (the tests' settings that make runs finish in minutes)."""

    def __init__(
        self,
        values: Mapping[str, str],
        project: str,
        folder: Path,
        airflow_environment: Mapping[str, str] | None = None,
        airflow_volumes: list[str] | None = None,
        profiles: list[str] | None = None,
    ) -> None:
        self.values = dict(values)
        self.project = project
        self.dir = folder
        self.airflow_environment = dict(airflow_environment or {})
        self.airflow_volumes = list(airflow_volumes or [])
        self.profiles = list(profiles or [])
        self.engine = Engine(folder / "dockerd.pid")
        self.file = folder / "compose.yaml"
        self.containers: dict[str, str] = {}
        self.airflow_port = self.values.get("AIRFLOW_PORT") or "8080"
        self.mlflow_port = self.values.get("MLFLOW_PORT") or "5000"

    def compose(
        self, *args: str, capture: bool = False, check: bool = True, profiles: list[str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """docker-compose on the merged file, with the stack's profiles (or `profiles`)."""
        chosen = self.profiles if profiles is None else profiles
        options = [option for name in chosen for option in ("--profile", name)]
        command = ["docker-compose", "--project-name", self.project, "--file", str(self.file), *options, *args]
        return subprocess.run(command, cwd=ROOT, check=check, text=True, capture_output=capture)

    def config(self) -> dict:
        """The merged compose file as this machine runs it."""
        env_file = self.dir / "compose.env"
        write_private(env_file, "".join(f"{key}={value}\n" for key, value in self.values.items()))
        merged = subprocess.run(
            ["docker-compose", "--env-file", str(env_file), "--file", str(COMPOSE), "--file", str(OVERLAY), "config"],
            cwd=ROOT, text=True, capture_output=True,
        )  # fmt: skip
        if merged.returncode:
            raise StackError(f"docker-compose config: {merged.stderr.strip()}")
        config = yaml.safe_load(merged.stdout)
        # No network of the project's own: compose would make a bridge with a private range for it.
        config["networks"] = {"default": {"name": "host", "external": True}}
        for name, service in config["services"].items():
            if service.get("network_mode") == "host":
                service.pop("ports", None)
            service.pop("build", None)  # built by build_images, from the local base
            if name.startswith("airflow-"):
                service["environment"] |= self.airflow_environment
                service["volumes"] = service.get("volumes", []) + self.airflow_volumes
        return config

    def services(self) -> list[str]:
        """The long-running services (not the one-off `airflow-init`, nor a profile not asked for)."""
        config = yaml.safe_load(self.file.read_text())
        return [
            name
            for name, service in config["services"].items()
            if service.get("restart", "no") != "no"
            and (not service.get("profiles") or set(service["profiles"]) & set(self.profiles))
        ]

    def up(self, timeout: float = 900) -> None:
        require_secrets(self.values)
        self.dir.mkdir(parents=True, exist_ok=True)
        install()
        self.engine.start()
        try:
            build_images(services=True)
            write_private(self.file, yaml.safe_dump(self.config(), sort_keys=False))
            with step(f"Starting the stack (project {self.project}) until every service is healthy"):
                self.compose("up", "--detach", "--no-build")
                self.wait_healthy(timeout)
        except BaseException:
            self.down()  # nothing half-started is left behind
            raise

    def down(self) -> None:
        """Stop and remove the containers, networks and volumes; stop the engine if `up` started
        it. Anything of the project still there afterwards is an error that names it."""
        left: list[str] = []
        if self.file.exists() and Engine.answers():
            services = yaml.safe_load(self.file.read_text())["services"].values()
            every = sorted({name for service in services for name in service.get("profiles", [])})
            self.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", check=False, profiles=every)
            label = f"label=com.docker.compose.project={self.project}"
            for kind in ("container", "volume", "network"):
                found = docker(kind, "ls", *(["--all"] if kind == "container" else []), "--quiet", "--filter", label,
                               capture=True).stdout.split()  # fmt: skip
                left += [f"{kind} {name}" for name in found]
        self.containers.clear()
        self.engine.stop()
        if left:
            raise StackError(f"left behind by docker-compose down: {', '.join(left)}")

    def container(self, service: str) -> str:
        """The service's container id. Kept: a container keeps its id across restarts, and asking
        compose takes a second or two, which a test killing a task in the middle cannot wait."""
        if service not in self.containers:
            ids = self.compose("ps", "--quiet", service, capture=True).stdout.split()
            if not ids:
                raise StackError(f"no container of {service}")
            self.containers[service] = ids[0]
        return self.containers[service]

    def inspect(self, service: str) -> dict:
        return json.loads(docker("inspect", self.container(service), capture=True).stdout)[0]

    def wait_healthy(self, timeout: float = 300) -> None:
        """Until every service's health check passes (a service without one: until it runs)."""
        pending = set(self.services())
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                state = self.inspect(name)["State"]
                if state["Status"] in ("exited", "dead"):
                    raise StackError(f"{name} exited with {state['ExitCode']}:\n{self.log(name)[-3000:]}")
                if state.get("Health", {}).get("Status", "healthy") == "healthy" and state["Status"] == "running":
                    pending.discard(name)
            time.sleep(2)
        if pending:
            raise StackError(f"not healthy after {timeout:.0f} s: {', '.join(sorted(pending))}")

    def log(self, service: str) -> str:
        """What the service's container printed, across its restarts."""
        done = docker("logs", self.container(service), capture=True)
        return done.stdout + done.stderr

    def kill(self, service: str) -> None:
        """A crash: SIGKILL to the container's first process. Docker applies the restart policy."""
        pid = self.inspect(service)["State"]["Pid"]
        os.kill(pid, signal.SIGKILL)

    def stop(self, services: list[str], timeout: float = 30) -> None:
        """SIGTERM to each service (through its init process), SIGKILL after `timeout` seconds."""
        self.compose("stop", "--timeout", str(int(timeout)), *services)

    def start(self, service: str) -> None:
        self.compose("start", service)

    def restart(self, service: str) -> None:
        self.compose("restart", service)

    def restarted(self) -> list[str]:
        """The services their restart policy has started again."""
        return [name for name in self.services() if self.inspect(name)["RestartCount"]]

    def admin_url(self) -> str:
        user, password = self.values.get("POSTGRES_USER") or "mlops", self.values["POSTGRES_PASSWORD"]
        return f"postgresql://{user}:{password}@127.0.0.1:{self.values.get('COMPOSE_POSTGRES_PORT', '25432')}/postgres"

    def volume(self, name: str) -> Path:
        """Where a named volume of the stack lies on this machine."""
        found = docker("volume", "inspect", f"{self.project}_{name}", "--format", "{{.Mountpoint}}", capture=True)
        return Path(found.stdout.strip())

    def environment(self, service: str = "airflow-apiserver") -> dict[str, str]:
        """A service's environment, as seen from this machine: the host's network is the
        containers', and the state folder is the `mlops-state` volume's place on this disk."""
        config = yaml.safe_load(self.file.read_text())
        env = {key: str(value) for key, value in config["services"][service]["environment"].items()}
        env["MLOPS_STATE_DIR"] = str(self.volume("mlops-state"))
        return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["image", "up", "down"])
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--project", default="mlops", help="the compose project: names its containers and volumes")
    parser.add_argument("--dir", type=Path, default=ROOT / "state" / "compose", help="where the merged file is kept")
    parser.add_argument("--profile", action="append", default=[], help="up: a profile's services too (flower)")
    args = parser.parse_args(argv)
    try:
        if args.action == "image":
            install()
            engine = Engine(args.dir / "dockerd.pid")
            engine.start()
            try:
                build_images()
            finally:
                engine.stop()
            print(f"Built {IMAGE}")
            return 0
        values = read_env_file(args.env_file) if args.action == "up" else {}
        stack = ComposeStack(values, args.project, args.dir.resolve(), profiles=args.profile)
        if args.action == "up":
            stack.up()
            user = values.get("AIRFLOW_ADMIN_USERNAME") or "admin"
            print(f"Airflow: http://localhost:{stack.airflow_port} (user {user}, the password of {args.env_file})")
            print(f"MLflow:  http://localhost:{stack.mlflow_port}; logs: docker-compose -p {args.project} logs")
        else:
            stack.down()
    except StackError as error:
        print(f"docker stack: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:  # its own output says why
        print(f"docker stack: {' '.join(map(str, error.cmd))} failed (exit {error.returncode})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
