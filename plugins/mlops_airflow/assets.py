"""Assets that chain the project's DAGs: one DAG's output is another's schedule."""

from airflow.sdk import Asset

# The day's features are in the offline store and materialized online.
FLIGHT_FEATURES = Asset(name="flight_features", uri="file:///mlops/features/flights", group="features")
