"""What a task read and wrote, for OpenLineage.

Airflow's own lineage is in the DAGs: the tasks' `inlets` and `outlets` are the project's assets
(`assets.py`, known by name), which the UI's asset graph draws. The files behind them are the
deployment's (its state folder), so a task also reports, while it runs, the zones of the lake it
read and wrote (one dataset per zone: `lake/clean`, `lake/features`, `lake/predictions`, ...),
through Airflow's hook lineage collector. The OpenLineage provider, when a transport is configured
(`make up` and the compose file configure a file transport: `openlineage.jsonl` in the state
folder), turns them into the input and output datasets of the task's events (`file:<path>`),
beside the DAG run and task events it sends anyway. Without a transport the provider is off and
the collector is Airflow's no-op one.

Only the lake is reported: the OpenLineage provider turns `file://` assets into datasets, and the
stores that are not files in every deployment (MLflow, Feast's registry and online store) would be
dropped where they are servers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.mlops.settings import Settings


def lake(settings: Settings, reads: Iterable[str] = (), writes: Iterable[str] = ()) -> None:
    """Tell Airflow's lineage collector which zones of the lake the running task read and wrote."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.lineage import get_hook_lineage_collector

    collector = get_hook_lineage_collector()
    for zones, add in ((reads, collector.add_input_asset), (writes, collector.add_output_asset)):
        for zone in zones:
            uri = (settings.lake_dir / zone).resolve().as_uri()
            add(context=ObjectStoragePath(uri), uri=uri)
