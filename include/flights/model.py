"""The flight-delay model: which columns go in, the two model families, the search space.

- `hist_gradient_boosting`: a HistGradientBoostingClassifier, which handles missing values
  itself; categorical columns are ordinal-encoded and declared categorical.
- `logistic_regression`: the baseline; numeric columns are imputed (median) and scaled,
  categorical ones one-hot encoded.

Both are seeded: the same data, parameters and seed give the same model and metrics.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Literal

from include.flights import features

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

Family = Literal["hist_gradient_boosting", "logistic_regression"]
FAMILIES: tuple[Family, ...] = ("hist_gradient_boosting", "logistic_regression")
LABEL = "is_late"
CATEGORICAL = ["carrier", "origin", "dest", "aircraft__engine"]
# The request's month is not an input: an 8-week window holds two or three months, and the month
# being served is often one the window held only on its last days, or not at all, so a tree would
# extrapolate from a handful of days. On January-June 2013 weekly retrains it added nothing (mean
# weekly ROC AUC 0.7337 with it, 0.7333 without; worst week 0.628 with it, 0.636 without).
REQUEST_NUMERIC = ["distance", "dep_hour", "day_of_week"]
SLICES = ("origin", "carrier")
# Types skops does not trust by default but these pipelines contain. The registry only holds
# models this project trained, so they are trusted when saving and loading (and nothing else).
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "numpy.dtype",  # the one-hot encoder's output type (logistic regression)
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]


def numeric_features(feature_refs: list[str]) -> list[str]:
    """Request facts plus every numeric Feast feature, as training-set columns.

    A feature's own timestamp (`*_unix`) says how fresh it is, not what it is: left out, except
    the aircraft's previous departure, which becomes the hours since it left
    (`features.request_time_features`).
    """
    columns = [ref.replace(":", "__") for ref in feature_refs]
    numeric = REQUEST_NUMERIC + [c for c in columns if c not in CATEGORICAL and not c.endswith("_unix")]
    return numeric + [derived for derived, needs in features.REQUEST_TIME.items() if needs in columns]


def model_input(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The model's input columns of `frame`; numeric ones as floats, since any of them may be
    missing when the model is served."""
    import numpy as np
    import pandas as pd

    numeric = [c for c in columns if c not in CATEGORICAL]
    # One float block at once: assigning the columns back one by one costs a served flight ~5 ms.
    floats = pd.DataFrame(frame[numeric].to_numpy(dtype="float64", na_value=np.nan), frame.index, numeric)
    return pd.concat([frame[[c for c in columns if c in CATEGORICAL]], floats], axis=1)[columns]


@dataclass(frozen=True)
class ModelConfig:
    """One candidate configuration: the family, its main hyperparameters and the seed."""

    family: Family = "hist_gradient_boosting"
    # Chosen on January-June 2013 (weekly retrains on 8 weeks, the next week scored; the replay's
    # blind policy): 0.1 and 31 leaves fitted the training weeks' noise, mean weekly ROC AUC
    # 0.7442; 0.05 with 31 leaves 0.7541; 0.05 with 15 leaves 0.7555 (worst week 0.654 -> 0.678).
    learning_rate: float = 0.05
    max_iter: int = 200
    max_leaf_nodes: int = 15
    l2_regularization: float = 0.0
    c: float = 1.0  # inverse regularization of the logistic regression
    seed: int = 42

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"model family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if not 0 < self.learning_rate <= 1:
            raise ValueError(f"learning_rate must be in (0, 1], got {self.learning_rate}")
        if self.max_iter < 1 or self.max_leaf_nodes < 2:
            raise ValueError("max_iter must be at least 1 and max_leaf_nodes at least 2")
        if self.l2_regularization < 0 or self.c <= 0:
            raise ValueError("l2_regularization must be >= 0 and c > 0")

    def params(self) -> dict[str, object]:
        """The parameters that matter for this family (what MLflow logs)."""
        keep = {"family", "seed"} | (
            {"c"}
            if self.family == "logistic_regression"
            else {"learning_rate", "max_iter", "max_leaf_nodes", "l2_regularization"}
        )
        return {k: v for k, v in asdict(self).items() if k in keep}


def build_pipeline(config: ModelConfig, numeric: list[str]) -> Pipeline:
    """The untrained scikit-learn Pipeline for `config`."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    if config.family == "hist_gradient_boosting":
        encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
        columns = ColumnTransformer(
            [("categorical", encode, CATEGORICAL), ("numeric", "passthrough", numeric)],
            verbose_feature_names_out=False,
        )
        model = HistGradientBoostingClassifier(
            learning_rate=config.learning_rate,
            max_iter=config.max_iter,
            max_leaf_nodes=config.max_leaf_nodes,
            l2_regularization=config.l2_regularization,
            categorical_features=list(range(len(CATEGORICAL))),
            early_stopping=False,
            random_state=config.seed,
        )
    else:
        columns = ColumnTransformer(
            [
                ("categorical", OneHotEncoder(handle_unknown="ignore", min_frequency=20), CATEGORICAL),
                ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ],
            verbose_feature_names_out=False,
        )
        model = LogisticRegression(C=config.c, max_iter=2000, random_state=config.seed)
    return Pipeline([("columns", columns), ("model", model)])


def search_space(base: ModelConfig, count: int) -> list[ModelConfig]:
    """`count` configurations: `base` first, then seeded variations of its main hyperparameters."""
    if count < 1:
        raise ValueError(f"the number of configurations must be at least 1, got {count}")
    rng = random.Random(base.seed)
    configs = [base]
    for _ in range(100 * count):
        if len(configs) == count:
            return configs
        if base.family == "logistic_regression":
            candidate = replace(base, c=rng.choice([0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]))
        else:
            candidate = replace(
                base,
                learning_rate=rng.choice([0.03, 0.05, 0.1, 0.2]),
                max_leaf_nodes=rng.choice([15, 31, 63]),
                l2_regularization=rng.choice([0.0, 0.1, 1.0]),
            )
        if candidate not in configs:
            configs.append(candidate)
    raise ValueError(f"the {base.family} search space has only {len(configs)} distinct configurations, not {count}")


def requirements() -> list[str]:
    """What loading a model needs, pinned to the versions it was trained with."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "skops", "pandas", "numpy", "scipy")]
