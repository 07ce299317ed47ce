"""The project's Airflow extension: the promotion gate operator, hooks, extra links, pools, assets
and context helpers."""

import warnings

# skops, which loads the models, looks scipy's ufuncs up by name in every loaded module; under
# Airflow each lookup trips the deprecation shim of an `airflow.*` module, a thousand warnings in a
# task's log that say nothing about the task.
warnings.filterwarnings("ignore", message=r"The `airflow\.", module="skops")
