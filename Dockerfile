# The one image of the production stack (docker-compose.yaml): the project and its pinned
# dependencies (requirements.lock, the set the tests run on) on Python 3.11.
FROM python:3.11-slim-bookworm

ENV AIRFLOW_HOME=/opt/airflow \
    PYTHONPATH=/opt/mlops \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home airflow

WORKDIR /opt/mlops
COPY requirements.lock .
RUN pip install --compile -r requirements.lock
COPY dags dags
COPY plugins plugins
COPY include include
COPY scripts scripts
RUN mkdir -p state && chown -R 50000:0 /opt/mlops /opt/airflow

USER 50000
