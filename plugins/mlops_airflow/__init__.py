"""The project's Airflow extension: assets, context helpers, and (later) operators, hooks, links."""
