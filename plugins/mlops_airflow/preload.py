"""The libraries the hourly tasks use, imported once by the process that forks the tasks.

Airflow 3 runs each task in a process forked from a worker (a LocalExecutor worker process, or a
Celery worker's pool process): what the worker has imported, the task has for free (copy on
write); what it has not, each task imports again. Feast, MLflow, skops (the models' format),
scikit-learn and pandas take 8 to 12 s to import on this project's machine, against about a
second of work in an hourly `materialize` or `score` (bench/serving.py prints both). The workers
import this module before they fork a task:

- Celery workers (docker-compose.yaml, `make stack-up`): `mlops_airflow.celery_config.CELERY_CONFIG`
  lists it in Celery's `imports`, which the worker's main process imports before it starts its pool.
- LocalExecutor (`make up`, Airflow standalone): the scheduler starts its workers from a
  forkserver that imports it (`[scheduler] mp_start_method = forkserver` and
  `mp_forkserver_preload`, set in the Makefile).

Only third-party libraries, and only importing them: no thread, connection or model is opened
here, so forking stays safe. The project's own modules are not preloaded (but for this package's
`__init__`): each task imports `include/` and `dags/` afresh, so a change to them takes effect on
the next task without restarting a worker.
"""

import feast  # noqa: F401
import mlflow  # noqa: F401
import openlineage.client  # noqa: F401  (the OpenLineage provider's listener, when a transport is set: 0.4 s)
import pandas  # noqa: F401
import pyarrow.parquet  # noqa: F401
import sklearn.ensemble  # noqa: F401
import skops.io  # noqa: F401
from airflow.providers.openlineage.plugins import listener  # noqa: F401
