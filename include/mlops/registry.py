"""Who is in production: the `champion` alias, its serialized moves and their audit trail.

Registry stages are deprecated in MLflow; production is the alias `champion`. Every move of it
(a promotion or a rollback) goes through `move_champion`, which

- holds the promotion lock (a file lock in the state folder; in Airflow the one-slot
  `promotion` pool serializes the tasks as well, across workers),
- compares and sets: the champion is re-read just before the move, and if it is not the one
  the caller evaluated against, the move aborts with `ChampionChangedError`,
- keeps the previous champion findable as the alias `previous_champion`,
- appends an entry to the audit trail before touching an alias and closes it after.

The audit trail is the MLflow experiment `registry_audit`: one run per move, whose params (the
model, the action, from and to which version, why, when, which Airflow run) MLflow never lets be
rewritten, and whose status says whether the move happened (FINISHED) or not (FAILED, with the
error). It lives in the same tracking store as the models, in both profiles.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from include.mlops import records, tracking
from include.mlops.records import AuditEntry

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from include.mlops.settings import Settings

CHAMPION = "champion"
PREVIOUS = "previous_champion"
Action = Literal["promote", "rollback"]


class NoChampionError(LookupError):
    """No version of the model holds the alias `champion` yet."""


class ChampionChangedError(RuntimeError):
    """The champion moved between the evaluation and the promotion; nothing was changed."""


def aliased(client: MlflowClient, model: str, alias: str) -> ModelVersion | None:
    """The model version `alias` points to, or None when it is not set."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def alias_version(client: MlflowClient, model: str, alias: str) -> int | None:
    """The version `alias` points to, or None when it is not set."""
    found = aliased(client, model, alias)
    return None if found is None else int(found.version)


_held = threading.local()


@contextmanager
def promotion_lock(settings: Settings, model: str) -> Iterator[None]:
    """Exclusive on this machine for `model`'s alias moves; reentrant within a thread."""
    held: set[str] = _held.__dict__.setdefault("models", set())
    if model in held:
        yield
        return
    folder = settings.state_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"promotion-{model}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        held.add(model)
        try:
            yield
        finally:
            held.discard(model)
            fcntl.flock(handle, fcntl.LOCK_UN)


def move_champion(
    settings: Settings,
    model: str,
    to_version: int,
    expected: int | None,
    action: Action,
    reason: str,
    context: Mapping[str, str] | None = None,
) -> AuditEntry:
    """Point `champion` at `to_version` if it still points at `expected`; audit the move."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if not reason.strip():
        raise ValueError("an alias move needs a reason")
    tracking.connect(settings)
    client = MlflowClient()
    try:
        client.get_model_version(model, str(to_version))
    except MlflowException:
        raise ValueError(f"{model} has no version {to_version}") from None
    with promotion_lock(settings, model):
        current = alias_version(client, model, CHAMPION)
        if current != expected:
            raise ChampionChangedError(
                f"the champion of {model} changed since the evaluation: expected {_name(expected)}, "
                f"found {_name(current)}; the {action} to version {to_version} was aborted"
            )
        if current == to_version:
            raise ValueError(f"version {to_version} of {model} is already the champion")
        move = AuditEntry(
            model, action, current, to_version, reason, datetime.now(UTC).isoformat(), "FAILED", context or {}
        )
        experiment = tracking.connect(settings, records.AUDIT_EXPERIMENT)
        entry = move.open(client, experiment)
        try:
            if current is not None:
                client.set_registered_model_alias(model, PREVIOUS, str(current))
            client.set_registered_model_alias(model, CHAMPION, str(to_version))
            records.Registration(model, to_version, champion_since=datetime.fromisoformat(move.at)).write(client)
        except Exception as error:
            tracking.fail_run(entry, error)
            raise
        client.set_terminated(entry, status="FINISHED")
    return replace(move, status="FINISHED", entry_url=settings.run_url(experiment, entry))


def rollback(
    settings: Settings, model: str, to_version: int | None, reason: str, context: Mapping[str, str] | None = None
) -> AuditEntry:
    """Move the champion back to `to_version` (default: the previous champion), audited."""
    from mlflow import MlflowClient

    tracking.connect(settings)
    client = MlflowClient()
    current = alias_version(client, model, CHAMPION)
    if current is None:
        raise ValueError(f"{model} has no champion: there is nothing to roll back")
    target = to_version or alias_version(client, model, PREVIOUS)
    if target is None:
        raise ValueError(f"{model} has no previous champion: choose the version to restore")
    return move_champion(settings, model, target, current, "rollback", reason, context)


def audit_trail(settings: Settings, model: str) -> list[AuditEntry]:
    """Every recorded alias move of `model`, oldest first."""
    from mlflow import MlflowClient

    experiment = tracking.connect(settings, records.AUDIT_EXPERIMENT)
    runs = records.search(MlflowClient(), experiment, AuditEntry.of_model(model))
    moves = [AuditEntry.read(run, settings.run_url(experiment, run.info.run_id)) for run in runs]
    return sorted(moves, key=lambda move: move.at)


def _name(version: int | None) -> str:
    return "no champion" if version is None else f"version {version}"
