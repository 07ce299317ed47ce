"""Hooks: the project's settings, with MLflow's address taken from an Airflow connection.

`MlflowHook().get_settings()` is how every task and the MLOps view get their settings (the alert
notifiers read the environment alone: an alert must go out even when no connection can be read).

`MlflowHook` reads the connection `mlflow_default` (type http) when it exists: its schema, host and
port are the tracking server (the production stack defines it as `AIRFLOW_CONN_MLFLOW_DEFAULT`),
and its extra `ui_url` the address people open (default: `MLOPS_MLFLOW_UI_URL`). Without the
connection, the environment decides (`MLOPS_MLFLOW_TRACKING_URI`), which is how the embedded
default, the command line and the benchmarks run.

The connection carries no credentials: MLflow's client reads them only from its own environment
variables (`MLFLOW_TRACKING_USERNAME`, `MLFLOW_TRACKING_PASSWORD` or `MLFLOW_TRACKING_TOKEN`), and a
task must not write secrets into its process's environment, so a tracking server with
authentication gets those variables from the workers' deployment, like any other secret. A
connection with a login or password is refused with that explanation rather than half used.
"""

from __future__ import annotations

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
        if conn.login or conn.password:
            raise ValueError(
                f"connection {self.mlflow_conn_id} has credentials, which MLflow's client cannot take from it: "
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the "
                "workers' environment instead, and remove them from the connection"
            )
        scheme = conn.schema or "http"
        uri = f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "")
        ui_url = conn.extra_dejson.get("ui_url") or settings.mlflow_ui_url
        return replace(settings, mlflow_tracking_uri=uri, mlflow_ui_url=ui_url.rstrip("/"))
