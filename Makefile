# The two commands of the README: `make up` runs the system, `make test` passes the tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STATE ?= $(CURDIR)/state
UV_VERSION := 0.13.9

# Embedded default: Airflow standalone on SQLite, everything under $(STATE).
export PYTHONPATH := $(CURDIR)
export MLOPS_STATE_DIR ?= $(STATE)
export AIRFLOW_HOME ?= $(STATE)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := False
export AIRFLOW__API__PORT ?= 8080
# Where task processes report to: the API server on its port (Airflow assumes 8080 otherwise).
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL ?= http://localhost:$(AIRFLOW__API__PORT)/execution/
# The scheduler's LocalExecutor starts its workers from a forkserver that has imported the libraries
# the tasks use (plugins/mlops_airflow/preload.py): a task, forked from a worker, starts with them.
export AIRFLOW__SCHEDULER__MP_START_METHOD := forkserver
export AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD := airflow,airflow.executors.local_executor,mlops_airflow.preload

.PHONY: install browser up image compose-up compose-down stack-up stack-down test test-stack test-compose test-replay-airflow replay lint format bench lock clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# uv installs in seconds; plain pip is the fallback when uv cannot be had. Bytecode is compiled
# at install time: every Airflow task is a new process, and compiling MLflow, Airflow and
# scikit-learn on import would cost each one seconds (or every import, where the environment
# sets PYTHONDONTWRITEBYTECODE).
# The development set: what the system runs on (requirements.lock, all the image has) and the tools
# that test and lint it.
$(VENV)/.installed: $(BIN)/python requirements.lock requirements-dev.lock
	@if $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"; then \
		$(BIN)/uv pip install --compile-bytecode --python $(BIN)/python -r requirements-dev.lock; \
	else \
		$(BIN)/python -m pip install -r requirements-dev.lock; \
	fi
	touch $@

install: $(VENV)/.installed

# Debian's Chromium and ChromeDriver, for the browser test of the web UI.
browser:
	@bash scripts/install-browser.sh

up: install
	@bash scripts/up.sh

# The production topology of docker-compose.yaml, natively on this machine's PostgreSQL and Redis,
# configured by .env (see .env.example).
stack-up: install
	@$(BIN)/python scripts/stack.py up

# The production image, built here from a local Debian base: no image registry is needed.
image: install
	@$(BIN)/python scripts/docker_stack.py image

# docker-compose.yaml in containers on this machine (host network, loopback ports; see
# scripts/docker_stack.py), configured by .env; compose-down removes its containers and volumes.
compose-up: install
	@$(BIN)/python scripts/docker_stack.py up

compose-down: install
	@$(BIN)/python scripts/docker_stack.py down

stack-down:
	@$(BIN)/python scripts/stack.py down

test: install browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "not stack and not compose and not airflow_replay" --durations=15

# End to end on the native production stack: minutes, so apart from `make test`; CI runs both.
test-stack: install
	$(BIN)/pytest -m stack -s

# The same end to end on docker-compose.yaml in containers: builds the images (the first time, a
# Debian base with debootstrap), runs the stack and removes it. CI runs it after test-stack.
test-compose: install
	$(BIN)/pytest -m compose -s

# Two weeks of the replay through Airflow's scheduler (backfills of the DAGs), checked against the
# library replay of the same days. About 30 minutes: not part of `make test` nor of CI.
test-replay-airflow: install
	$(BIN)/pytest -m airflow_replay -s

# The loop and three other policies replayed over 2013: state/replay/report.md, quality.png, and a run in
# MLflow's experiment `replay`. An interrupted replay resumes where it stopped.
replay: install
	$(BIN)/python -m include.cli replay

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench
	$(BIN)/python -m bench.registry
	$(BIN)/python -m bench.training
	$(BIN)/python -m bench.gate
	$(BIN)/python -m bench.drift
	$(BIN)/python -m bench.serving
	$(BIN)/python -m bench.decisions
	$(BIN)/python -m bench.regret
	$(BIN)/python -m bench.first_model
	$(BIN)/python -m bench.replay
	$(BIN)/python -m bench.first_hour

# Re-resolve the pinned sets after editing requirements.txt or requirements-dev.txt: the runtime lock
# first, then the development lock constrained by it (the tests run on the image's versions).
lock: $(BIN)/python
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile --python-version 3.11 requirements.txt -o requirements.lock
	$(BIN)/uv pip compile --python-version 3.11 requirements-dev.txt -c requirements.lock -o requirements-dev.lock

clean:
	rm -rf $(STATE)
