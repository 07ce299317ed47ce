"""The Celery workers' configuration: Airflow's default, and the libraries the tasks use imported
by each worker before it forks its pool (`mlops_airflow.preload` says why).

Set as `[celery] celery_config_options` (docker-compose.yaml). Importing this module imports no
heavy library: the scheduler and the API server read it too; only a worker imports `imports`.
"""

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = {**DEFAULT_CELERY_CONFIG, "imports": ("mlops_airflow.preload",)}
