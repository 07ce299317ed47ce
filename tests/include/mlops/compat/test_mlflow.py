"""MLflow's private names the project uses (include.mlops.compat.mlflow): still there, still doing
what the project relies on. A failure here names what an upgrade changed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from include.mlops.compat import mlflow as compat

FRAME = pd.DataFrame(
    {
        "carrier": ["UA", "B6", None],
        "dep_hour": np.array([5, 6, 7], dtype="int64"),
        "temp": [1.5, np.nan, 3.0],
        "is_late": np.array([0, 1, 0], dtype="int64"),
    }
)


def test_the_schema_is_the_one_mlflow_infers() -> None:
    from mlflow.types.utils import _infer_schema

    assert compat.schema(FRAME) == _infer_schema(FRAME)


def test_a_pandas_datasets_schema_is_a_cached_property_that_takes_the_schema() -> None:
    import mlflow
    from mlflow.data.pandas_dataset import PandasDataset

    assert "schema" in PandasDataset.__dict__ and hasattr(PandasDataset.__dict__["schema"], "func")  # cached
    dataset = compat.with_schema(mlflow.data.from_pandas(FRAME, name="frame"), FRAME)
    assert dataset.schema == compat.schema(FRAME)
    assert dataset.to_dict()["schema"]  # MLflow writes the schema it holds
