"""The MLOps view: a FastAPI app that Airflow's api-server serves under `/mlops`, shown in the
Airflow UI's navigation (see `plugins/mlops_plugin.py`).

One page answers "which model is in production, and why": the champion and the move that made it so,
the days that have features and the long work under way (`progress`), the previous champion, every
version with its metrics, the promotion gate's decisions with their reasons and reports, the drift
timeline as a chart, and the audit trail of alias moves. The same data is served as JSON under
`api/`, and `api/score` scores one flight on demand: the champion's probability, its version and the
feature values it was given, from the online store.

Every route needs the Airflow UI's authentication: the session cookie the UI sets at login, or a
bearer token from `/auth/token`, and read access to the runs of `training_pipeline` and
`drift_monitoring`, whose outputs these are; otherwise 401 (no credentials) or 403. MLflow is
reached with the same settings as the tasks (the `mlflow_default` connection, else the
environment), so links point where the tasks' links point.

Airflow is imported inside the requests: every task process loads the plugins, and should not pay
for the API server's modules.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse

from mlops_airflow import chart

if TYPE_CHECKING:
    from include.mlops.domain import Scorer
    from include.mlops.settings import Settings

READ_DAGS = ("training_pipeline", "drift_monitoring")
TEMPLATES = Path(__file__).parent / "templates"
MODEL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,256}$")


async def authorised_reader(request: Request) -> Any:
    """The Airflow user of the request, if it may read the runs the view shows; else 401 or 403."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    user = await get_user(request, None, await bearer_scheme(request))
    manager = get_auth_manager()
    for dag_id in READ_DAGS:
        if not manager.is_authorized_dag(
            method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
        ):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"reading the runs of {dag_id} is not allowed")
    return user


def settings() -> Settings:
    from mlops_airflow.hooks import MlflowHook

    return MlflowHook().get_settings()


Config = Annotated[Any, Depends(settings)]  # built once per request (FastAPI caches a dependency)


def model_name(
    config: Config,
    model: Annotated[str | None, Query(description="registered model; default: the settings'")] = None,
) -> str:
    if model is None:
        return config.model_name
    if not MODEL_NAME.match(model):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"not a registered model name: {model!r}")
    return model


Reader = Depends(authorised_reader)
Model = Annotated[str, Depends(model_name)]

app = FastAPI(
    title="MLOps",
    description="The registered model, the promotion gate, drift and the audit trail",
    dependencies=[Reader],
)


@functools.cache
def template() -> Any:
    """The page's template, parsed once per process."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    return environment.get_template("mlops.html")


@app.get("/", response_class=HTMLResponse)
def page(config: Config, model: Model) -> HTMLResponse:
    from include.mlops import overview
    from mlops_airflow import progress

    found = overview.overview(config, model)
    days, markers = chart.timeline(found.drift, found.audit, found.gate)
    html = template().render(
        o=found,
        chart=chart.svg(days, markers),
        checks=list(reversed(found.drift))[:30],
        features=progress.progress(config),
    )
    return HTMLResponse(html)


@app.get("/api/overview")
def api_overview(config: Config, model: Model) -> dict[str, Any]:
    from include.mlops import overview

    return overview.overview(config, model).to_dict()


@app.get("/api/features")
def api_features(config: Config) -> dict[str, Any]:
    """The stretches of time with features, backfills under way, training runs waiting for features."""
    from mlops_airflow import progress

    return progress.progress(config).to_dict()


@app.get("/api/drift")
def api_drift(config: Config, model: Model) -> list[dict[str, Any]]:
    from include.mlops import overview

    return [check.to_dict() for check in overview.drift_checks(config, model)]


@app.get("/api/audit")
def api_audit(config: Config, model: Model) -> list[dict[str, Any]]:
    from include.mlops import registry

    return [move.to_dict() for move in reversed(registry.audit_trail(config, model))]


@functools.cache
def scorer(config: Settings) -> Scorer:
    """One scorer per settings and process: it keeps the champion's model and the feature store warm."""
    return config.model_domain.scorer(config)


@app.get("/api/score")
def api_score(
    config: Config,
    flight_id: Annotated[str, Query(description="e.g. 20261124T1530-UA1545-EWR: departure (UTC), flight, origin")],
    at: Annotated[datetime | None, Query(description="as of this instant (on the hour); default: now")] = None,
) -> dict[str, Any]:
    """The champion's probability that the flight arrives late, as of `at`, from the online store."""
    from include.mlops.domain import NotFoundError
    from include.mlops.feature_store import OnlineStoreAheadError
    from include.mlops.registry import NoChampionError

    try:
        return scorer(config).score(flight_id, at)
    except (NotFoundError, NoChampionError) as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except (OnlineStoreAheadError, ValueError) as error:  # the online store is past `at`, or `at` past the flight
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
