"""Assets that chain the project's DAGs: one DAG's output is another's schedule."""

from airflow.sdk import Asset

# An interval's features are in the offline store (state/lake/features) and pushed online.
FLIGHT_FEATURES = Asset(name="flight_features", group="features")

# The champion's predictions of an interval are in the predictions log (state/lake/predictions).
PREDICTIONS = Asset(name="flight_delay_predictions", group="predictions")
