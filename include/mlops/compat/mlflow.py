"""MLflow: a dataset's schema without MLflow inferring it value by value.

`mlflow.data.from_pandas` infers the schema of a data set in Python, row by row: half a minute on a
year of flights. MLflow 3 offers no way to hand it a schema: `PandasDataset.schema` is a cached
property, and its column types come from `mlflow.types.utils._infer_pandas_column`. `with_schema`
fills the cache with the same schema, built from the column types and a vectorized null check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.data.pandas_dataset import PandasDataset
    from mlflow.types import Schema


def schema(frame: pd.DataFrame) -> Schema:
    """The schema MLflow would infer for `frame`: text columns as strings, others by their type,
    each required when it has no missing value."""
    import pandas as pd
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.utils import _infer_pandas_column

    specs = []
    for name, column in frame.items():
        text = column.dtype == object and pd.api.types.infer_dtype(column, skipna=True) == "string"
        kind = DataType.string if text else _infer_pandas_column(column)
        specs.append(ColSpec(kind, str(name), required=not column.isna().any()))
    return Schema(specs)


def with_schema(dataset: PandasDataset, frame: pd.DataFrame) -> PandasDataset:
    """The data set, its schema set to `schema(frame)` (filling the cached property)."""
    dataset.__dict__["schema"] = schema(frame)
    return dataset
