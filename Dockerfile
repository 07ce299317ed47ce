# The one image of the production stack (docker-compose.yaml): the project and its pinned
# runtime dependencies (requirements.lock: no test or lint tooling) on Python 3.11.
#
# BASE_IMAGE: the official Python image by default; any Debian bookworm image works (its python3
# is 3.11), such as one made locally where no image registry is reachable (`make image`).
# A network that intercepts TLS: put its CA bundle in the build context as build-ca.pem; pip and
# uv trust it during the build only.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV AIRFLOW_HOME=/opt/airflow \
    PYTHONPATH=/opt/mlops \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1
RUN command -v python3.11 >/dev/null || { \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; }
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home airflow

WORKDIR /opt/mlops
# build-ca.pe[m]: copied when present, nothing otherwise.
COPY requirements.lock build-ca.pe[m] ./
RUN if [ -f build-ca.pem ]; then export PIP_CERT="$PWD/build-ca.pem" SSL_CERT_FILE="$PWD/build-ca.pem"; fi \
    && python3.11 -m venv /opt/venv \
    && pip install -q "uv==0.13.9" \
    && uv pip install --python /opt/venv/bin/python --compile-bytecode -r requirements.lock \
    && rm -f build-ca.pem
COPY dags dags
COPY plugins plugins
COPY include include
COPY scripts scripts
# The mount points of the compose file's volumes: a new named volume takes the owner of the folder
# it is mounted on, and the services run as uid 50000.
RUN mkdir -p state /opt/airflow/logs /mlflow/artifacts && chown -R 50000:0 /opt/mlops /opt/airflow /mlflow

USER 50000
