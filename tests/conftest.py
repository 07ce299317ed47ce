"""The test session: its own Airflow home (SQLite) and state folder, set when pytest starts (Airflow
reads its configuration when first imported, which the test modules do), and the shared fixtures
of tests/support."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.support import ROOT

pytest_plugins = ["tests.support.data", "tests.support.airflow"]
SESSION_DIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    session = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
    config.stash[SESSION_DIR] = session
    os.environ.update(
        {
            "AIRFLOW_HOME": str(session / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "MLOPS_STATE_DIR": str(session / "state"),
            "MLOPS_PROFILE": "embedded",
        }
    )


@pytest.fixture(scope="session")
def session_dir(pytestconfig: pytest.Config) -> Path:
    """This session's folder: its Airflow home, its state folder, the shared state folders."""
    return pytestconfig.stash[SESSION_DIR]
