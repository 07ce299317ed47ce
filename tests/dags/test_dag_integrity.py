"""Every DAG imports cleanly, is documented, retried and tagged, and parses without heavy imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
HEAVY = ("pandas", "numpy", "sklearn", "mlflow", "feast", "evidently", "duckdb", "pyarrow")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_every_dag_file_imports_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "feature_pipeline" in dagbag.dags


def test_every_dag_is_documented_tagged_and_retried(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 200, dag_id
        assert dag.start_date is not None and dag.start_date.utcoffset().total_seconds() == 0, dag_id
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id}"


def test_no_dag_has_a_cycle(dagbag) -> None:
    for dag in dagbag.dags.values():
        order = [task.task_id for task in dag.topological_sort()]
        assert sorted(order) == sorted(dag.task_ids)


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_parsing_a_dag_file_loads_no_heavy_library(path: Path) -> None:
    probe = (
        "import runpy, sys, json;"
        f"runpy.run_path({str(path)!r}, run_name='parse');"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
