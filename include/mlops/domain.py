"""What the generic loop asks of a model's domain, and how it finds it.

`include/mlops` and the Airflow provider in `plugins/mlops_airflow` know no domain. The operators,
the MLOps view and the settings ask the domain that the setting `MLOPS_DOMAIN` names (a module with
an object `DOMAIN` that satisfies `Domain`) for what only a domain knows: its model's name, where its
Feast repository is, how to judge a candidate, how to check drift, how to score one entity on demand,
and which days have features. The project's own domain is `include.flights.domain`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from include.mlops.drift import TrainingRuns
    from include.mlops.lake import Interval
    from include.mlops.records import DriftCheck, GateJudgement
    from include.mlops.settings import Settings

Rules = str | Mapping[str, Any] | None  # a rule set: a mapping, a YAML file path or YAML text; None: the domain's


class NotFoundError(LookupError):
    """The entity asked about does not exist (a flight that is not scheduled)."""


class Scorer(Protocol):
    def score(self, entity_id: str, at: datetime | None = None) -> dict[str, object]:
        """The champion's prediction for one entity as of `at` (default: now), with the version and
        the feature values used. Raises `NotFoundError`, `registry.NoChampionError`, or ValueError
        when `at` cannot be served."""
        ...


class Domain(Protocol):
    model_name: str  # the registered model, unless the settings name another
    feature_repo: Path  # the Feast repository: feature_store.yaml and feature_store.production.yaml
    feature_step: timedelta  # the time one scheduled run of features covers

    def judge(
        self, settings: Settings, version: int, at: datetime, rules: Rules, days: int, context: Mapping[str, str]
    ) -> GateJudgement:
        """Judge a candidate version against the champion as of `at` and record it. Raises
        `gate.RulesError` for malformed rules, `gate.GateError` when no judgement can be made."""
        ...

    def check(
        self,
        settings: Settings,
        at: datetime,
        days: int,
        rules: Rules,
        training: TrainingRuns | None,
        context: Mapping[str, str],
    ) -> DriftCheck:
        """One drift check of the champion over the `days` before `at`, recorded, with its pages in
        MLflow's UI (`DriftCheck.linked`). Raises `registry.NoChampionError`, or `drift.DriftRulesError` for
        malformed rules."""
        ...

    def scorer(self, settings: Settings) -> Scorer: ...

    def feature_days(self, settings: Settings, window: Interval) -> Interval:
        """The whole days of features a training window reads."""
        ...

    def feature_spans(self, settings: Settings) -> list[Interval]:
        """The stretches of time the features cover."""
        ...

    def missing_feature_days(self, settings: Settings, days: Interval) -> list[Interval]:
        """The days of `days` that have no features."""
        ...


@functools.cache
def load(path: str) -> Domain:
    """The domain of the module `path` (its `DOMAIN`); an error naming the setting otherwise."""
    try:
        module = importlib.import_module(path)
    except ImportError as error:
        raise ValueError(f"MLOPS_DOMAIN names {path!r}, which cannot be imported: {error}") from None
    found = getattr(module, "DOMAIN", None)
    if found is None:
        raise ValueError(f"MLOPS_DOMAIN names {path!r}, which has no DOMAIN")
    return found
