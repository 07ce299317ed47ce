"""Hooks: the project's settings, with MLflow's address taken from an Airflow connection.

`MlflowHook` reads the connection `mlflow_default` (type http) when it exists: its host and port
are the tracking server, its login and password MLflow's basic-auth credentials, and the extra
`ui_url` the address people open (default: the tracking server). Without the connection, the
environment decides (`MLOPS_MLFLOW_TRACKING_URI`, `MLOPS_MLFLOW_UI_URL`), which is how the
embedded default runs.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from include.mlops.settings import Settings


class MlflowHook(BaseHook):
    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "http"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id

    def get_settings(self) -> Settings:
        """The project's settings, pointed at the connection's MLflow when there is one."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        from include.mlops.settings import Settings

        settings = Settings.from_env()
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            return settings
        if not conn.host:
            raise ValueError(f"connection {self.mlflow_conn_id} has no host: it must name the MLflow tracking server")
        scheme = conn.schema or "http"
        uri = f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "")
        if conn.login:
            os.environ["MLFLOW_TRACKING_USERNAME"] = conn.login  # how MLflow's client takes credentials
            os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password or ""
        return replace(
            settings, mlflow_tracking_uri=uri, mlflow_ui_url=conn.extra_dejson.get("ui_url", uri).rstrip("/")
        )
