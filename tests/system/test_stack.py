"""The production stack: docker-compose.yaml, the native stack (`scripts/stack.py`) and the
host-network overlay the containers run with here (scripts/docker/host.yaml) agree.

Checked as data, in `make test`: the native stack runs the compose file's services with their
environment, placed on this machine, and no container host or path is left over; the overlay puts
every service on the host's network without a container host name left. The stack itself runs in
tests/system/test_stack_e2e.py, natively and in containers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts import stack
from tests.support import ROOT

SECRETS = {
    "AIRFLOW__CORE__FERNET_KEY": "k" * 44,
    "AIRFLOW__API_AUTH__JWT_SECRET": "jwt",
    "AIRFLOW__API__SECRET_KEY": "session",
    "POSTGRES_PASSWORD": "pw",
    "AIRFLOW_ADMIN_PASSWORD": "admin-pw",
}
CONTAINER_HOSTS = ("@postgres:", "redis://redis:", "redis:6379", "mlflow:5000", "airflow-apiserver:")
CONTAINER_NAMES = (*CONTAINER_HOSTS, "/opt/mlops", "=/mlflow/")  # natively, the paths are the machine's too


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_the_native_stack_runs_every_service_of_the_compose_file() -> None:
    services = set(compose()["services"])
    assert services == {
        "postgres",
        "redis",
        "mlflow",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-worker-training",
        "flower",
    }
    native = stack.Stack(SECRETS)
    on_demand = {"flower"}  # a profile's: `docker compose --profile flower up`
    assert set(native.services()) == services - set(stack.INFRASTRUCTURE) - set(stack.ONE_OFF) - on_demand
    for name, command in native.services().items():
        declared = compose()["services"][name]["command"]
        assert [part.rsplit("/", 1)[-1] for part in command[:2]] == declared[:2], name  # same program, same role
        assert len(command) == len(declared), name  # every option, placed on this machine
        assert not any(host in part for part in command for host in CONTAINER_NAMES), (name, command)


def test_every_airflow_service_gets_the_same_environment_natively_without_a_container_name() -> None:
    native = stack.Stack(SECRETS)
    airflow_services = [name for name in compose()["services"] if name.startswith("airflow-")]
    common = set(compose()["x-airflow-common"]["environment"])
    for name in airflow_services:
        declared = set(compose()["services"][name]["environment"])
        assert common <= declared, name  # every Airflow service shares x-airflow-common's environment
        env = native.environment(name)
        assert set(env) == declared | {"AIRFLOW__API__PORT", "AIRFLOW_HOME"}, name
        leftovers = {key: value for key, value in env.items() if any(host in value for host in CONTAINER_NAMES)}
        assert not leftovers, (name, leftovers)
    env = native.environment()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("FabAuthManager")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg://mlops:pw@127.0.0.1:5432/mlops_airflow"
    assert env["MLOPS_FEAST_REDIS"] == "127.0.0.1:6379,db=1" and env["AIRFLOW__CELERY__BROKER_URL"].endswith("/0")
    assert env["MLOPS_PROFILE"] == "production" and env["MLOPS_STATE_DIR"].endswith("state/stack/mlops-state")


def test_the_host_network_overlay_leaves_no_container_host_name() -> None:
    """host.yaml (compose's merge: mappings by key, the rest replaced): every service on the host's
    network, every Airflow service told the loopback addresses, each listener on its own port."""
    text = (ROOT / "scripts" / "docker" / "host.yaml").read_text()
    overlay = yaml.safe_load(text)["services"]
    base = compose()["services"]
    assert set(overlay) == set(base)
    ports = re.findall(r"\$\{(\w+_PORT):-(\d+)\}", text)
    defaults = dict(ports)
    assert len(set(defaults.values())) == len(defaults), defaults  # one loopback port each
    assert all(defaults[name] == default for name, default in ports)  # the same default wherever it is used
    for name, service in base.items():
        assert overlay[name]["network_mode"] == "host", name
        merged = {**service, **overlay[name]}
        merged["environment"] = {**service.get("environment", {}), **overlay[name].get("environment", {})}
        run = yaml.safe_dump({key: merged[key] for key in ("command", "environment", "healthcheck") if key in merged})
        assert not [host for host in CONTAINER_HOSTS if host in run], name
        # A health check asks the service's own loopback port, not the image's default one.
        assert not re.search(r"localhost:\d", str(merged.get("healthcheck", ""))), name


def test_the_training_queue_has_its_own_worker() -> None:
    from mlops_airflow.pools import TRAINING_QUEUE

    training = compose()["services"]["airflow-worker-training"]["command"]
    default = compose()["services"]["airflow-worker"]["command"]
    assert training[training.index("--queues") + 1] == TRAINING_QUEUE
    assert default[default.index("--queues") + 1] == "default"


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_a_missing_secret_stops_the_start_and_names_itself(secret: str) -> None:
    values = {key: value for key, value in SECRETS.items() if key != secret}
    with pytest.raises(stack.StackError, match=f"{secret} is missing or empty"):
        stack.Stack(values).environment("airflow-init")


def test_every_variable_the_compose_file_reads_is_documented_in_the_env_example() -> None:
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", (ROOT / "docker-compose.yaml").read_text()))  # not $${...}
    example = stack.read_env_file(ROOT / ".env.example")
    assert used <= set(example), used - set(example)
    assert not any(example[key] for key in SECRETS), "the example holds no secret"
    assert ".env" in (ROOT / ".gitignore").read_text().split()  # the real one stays out of the repository


def test_the_compose_file_variables_are_interpolated_as_compose_does() -> None:
    values = {"SET": "x"}
    assert stack.interpolate("a${SET}b ${UNSET:-d} $${HOSTNAME}", values) == "axb d ${HOSTNAME}"
    with pytest.raises(stack.StackError, match="UNSET is missing or empty: say why"):
        stack.interpolate("${UNSET:?say why}", values)


def test_init_creates_the_admin_whatever_the_password_begins_with(tmp_path) -> None:
    """`airflow-init` on a fresh database: the first admin, even with a password that begins with
    "-" (which `secrets.token_urlsafe` gives one time in 32, and argparse took for an option)."""
    env = os.environ | {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "AIRFLOW_ADMIN_USERNAME": "admin",
        "AIRFLOW_ADMIN_PASSWORD": "-starts-with-a-dash",
    }
    subprocess.run([sys.executable, str(ROOT / "scripts" / "stack.py"), "init"], env=env, check=True, cwd=ROOT)
    airflow = str(Path(sys.executable).parent / "airflow")
    users = subprocess.run(
        [airflow, "users", "list", "-o", "plain"], env=env, check=True, capture_output=True, text=True
    )
    assert "admin" in users.stdout.split()
