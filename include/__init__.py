"""The MLOps library: plain Python, importable and testable without Airflow."""
