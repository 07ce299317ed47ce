"""The project's Airflow plugin: the MLOps view, served by the api-server and listed in the UI's
navigation. Operators, hooks and links live in the `mlops_airflow` package, which DAGs import;
`.airflowignore` keeps Airflow from loading that package's modules as plugins of their own."""

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

from mlops_airflow.view import app


class MlopsPlugin(AirflowPlugin):
    name = "mlops"
    fastapi_apps: ClassVar[list[dict]] = [{"name": "MLOps view", "app": app, "url_prefix": "/mlops"}]
    external_views: ClassVar[list[dict]] = [
        {
            "name": "MLOps",
            "href": "mlops/",  # relative to the UI's base URL, so it works behind a proxy
            "url_route": "mlops",
            "destination": "nav",
        }
    ]
