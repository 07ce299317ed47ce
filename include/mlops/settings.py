"""One typed settings object, built from the environment inside tasks, never at import."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

if TYPE_CHECKING:
    from include.mlops.domain import Domain

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DOMAIN = "include.flights.domain"  # the project's own model; see include.mlops.domain
MLFLOW_ML_WORKFLOW = "workflowType=machine_learning"  # the query MLflow's UI reads its workflow from

Profile = Literal["embedded", "production"]
T = TypeVar("T")

DEFAULT_STATE_DIR = PROJECT_ROOT / "state"
DEFAULT_PREDICTION_LEAD = timedelta(hours=2)
DEFAULT_LATE_MINUTES = 15
DEFAULT_MAX_REJECT_RATE = 0.05
DEFAULT_HISTORY = timedelta(days=7)


def rule_set(rules: str | Path | Mapping[str, object] | None, default: Path) -> Any:
    """A rule set as data: a mapping as it is, a YAML file (a path, or a string ending in .yaml or
    .yml), YAML text, or the `default` file. A missing file raises FileNotFoundError naming it."""
    import yaml

    if rules is None:
        rules = default
    if isinstance(rules, Path) or (isinstance(rules, str) and rules.endswith((".yaml", ".yml"))):
        path = Path(rules)
        if not path.is_file():
            raise FileNotFoundError(f"rule file {path} does not exist")
        return yaml.safe_load(path.read_text())
    if isinstance(rules, str):
        return yaml.safe_load(rules)
    return rules


def refuse_unknown(data: Mapping[str, object], known: Iterable[str], what: str, error: type[Exception]) -> None:
    """Raise `error` naming the keys of `data` that are not `known` ("unknown <what>: ...")."""
    unknown = set(data) - set(known)
    if unknown:
        raise error(f"unknown {what}: {', '.join(sorted(unknown))}")


def build(kind: type[T], data: object, what: str, error: type[Exception]) -> T:
    """An instance of the dataclass `kind` from plain data (YAML, JSON, a Param): a mapping of its
    fields. Anything else, an unknown field or a value `kind` refuses raises `error` naming `what`."""
    if not isinstance(data, Mapping):
        raise error(f"{what} is a mapping, got {data!r}")
    refuse_unknown(data, (f.name for f in fields(kind)), f"{what} fields", error)
    try:
        return kind(**data)
    except TypeError as failure:
        raise error(f"{what} {dict(data)}: {failure}") from None


class SettingsError(ValueError):
    """An environment variable holds a value the settings cannot use."""


def _profile(value: str) -> Profile:
    if value not in ("embedded", "production"):
        raise SettingsError(f"MLOPS_PROFILE must be 'embedded' or 'production', got {value!r}")
    return cast("Profile", value)


@dataclass(frozen=True)
class Settings:
    """Where state lives and the knobs of the pipeline, validated when built."""

    profile: Profile = "embedded"
    state_dir: Path = DEFAULT_STATE_DIR
    prediction_lead: timedelta = DEFAULT_PREDICTION_LEAD
    late_minutes: int = DEFAULT_LATE_MINUTES
    max_reject_rate: float = DEFAULT_MAX_REJECT_RATE
    history: timedelta = DEFAULT_HISTORY
    replay_weeks_ahead: int = 0  # how many weeks later in 2013 the replay runs (the season a user starts in)
    mlflow_tracking_uri: str | None = None  # None: SQLite in the state folder
    mlflow_ui_url: str = "http://localhost:5000"  # where people open MLflow (links in Airflow's UI)
    domain: str = DEFAULT_DOMAIN  # the module whose DOMAIN the generic loop asks (include.mlops.domain)
    model_name: str = ""  # "": the domain's
    feast_registry_url: str | None = None
    feast_redis: str | None = None
    alert_log: Path | None = None  # None: alerts.log in the state folder
    alert_email: tuple[str, ...] = ()  # addresses; sent through Airflow's SMTP connection
    require_approval: bool = False  # a person approves each promotion the gate passed
    alert_slack_conn_id: str | None = None  # an Airflow connection (type slackwebhook) that receives each alert

    def __post_init__(self) -> None:
        if not self.model_name:
            object.__setattr__(self, "model_name", self.model_domain.model_name)
        if self.profile not in ("embedded", "production"):
            raise SettingsError(f"MLOPS_PROFILE must be 'embedded' or 'production', got {self.profile!r}")
        if not 0.0 <= self.max_reject_rate <= 1.0:
            raise SettingsError(f"MLOPS_MAX_REJECT_RATE must be within [0, 1], got {self.max_reject_rate}")
        if self.prediction_lead < timedelta(0):
            raise SettingsError(f"MLOPS_PREDICTION_LEAD_MINUTES must not be negative, got {self.prediction_lead}")
        if self.history < timedelta(days=7):
            raise SettingsError("MLOPS_HISTORY_DAYS must be at least 7: the longest trailing window is 7 days")
        if not 0 <= self.replay_weeks_ahead < 52:
            raise SettingsError(
                f"MLOPS_REPLAY_WEEKS_AHEAD must be a whole number of weeks within 0..51, got {self.replay_weeks_ahead}"
            )
        if self.profile == "production" and not (self.feast_registry_url and self.feast_redis):
            raise SettingsError(
                "the production profile needs MLOPS_FEAST_REGISTRY_URL (a PostgreSQL URL) "
                "and MLOPS_FEAST_REDIS (host:port,db=N)"
            )

    @property
    def model_domain(self) -> Domain:
        from include.mlops import domain

        return domain.load(self.domain)

    @property
    def feature_repo(self) -> Path:
        return self.model_domain.feature_repo

    @property
    def lake_dir(self) -> Path:
        return self.state_dir / "lake"

    @property
    def feast_dir(self) -> Path:
        return self.state_dir / "feast"

    @property
    def mlflow_dir(self) -> Path:
        return self.state_dir / "mlflow"

    @property
    def alert_log_path(self) -> Path:
        return self.alert_log or self.state_dir / "alerts.log"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    def model_version_url(self, model: str, version: int | str) -> str:
        """The page of a model version in the MLflow UI."""
        return self._mlflow_page(f"models/{model}/versions/{version}")

    def run_url(self, experiment_id: str, run_id: str, artifact: str | None = None) -> str:
        """The page of a run in the MLflow UI, or of one of its artifacts."""
        page = f"experiments/{experiment_id}/runs/{run_id}"
        return self._mlflow_page(f"{page}/artifacts/{artifact}" if artifact else page)

    def _mlflow_page(self, path: str) -> str:
        """A page of MLflow's UI in its machine-learning workflow: MLflow 3's UI opens on GenAI
        traces unless the address (or the browser's remembered choice) says otherwise."""
        return f"{self.mlflow_ui_url}/#/{path}?{MLFLOW_ML_WORKFLOW}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def number(name: str, default: float, kind: type = float) -> float:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return kind(raw)
            except ValueError:
                what = "a whole number" if kind is int else "a number"
                raise SettingsError(f"{name} must be {what}, got {raw!r}") from None

        def flag(name: str) -> bool:
            raw = (env.get(name) or "false").strip().lower()
            if raw not in ("true", "false"):
                raise SettingsError(f"{name} must be true or false, got {env[name]!r}")
            return raw == "true"

        return cls(
            profile=_profile(env.get("MLOPS_PROFILE", "embedded")),
            state_dir=Path(env.get("MLOPS_STATE_DIR") or DEFAULT_STATE_DIR).resolve(),
            prediction_lead=timedelta(
                minutes=number("MLOPS_PREDICTION_LEAD_MINUTES", DEFAULT_PREDICTION_LEAD / timedelta(minutes=1))
            ),
            late_minutes=int(number("MLOPS_LATE_MINUTES", DEFAULT_LATE_MINUTES, int)),
            max_reject_rate=number("MLOPS_MAX_REJECT_RATE", DEFAULT_MAX_REJECT_RATE),
            history=timedelta(days=number("MLOPS_HISTORY_DAYS", DEFAULT_HISTORY.days, int)),
            replay_weeks_ahead=int(number("MLOPS_REPLAY_WEEKS_AHEAD", 0, int)),
            mlflow_tracking_uri=env.get("MLOPS_MLFLOW_TRACKING_URI") or None,
            mlflow_ui_url=(env.get("MLOPS_MLFLOW_UI_URL") or "http://localhost:5000").rstrip("/"),
            domain=env.get("MLOPS_DOMAIN") or DEFAULT_DOMAIN,
            model_name=env.get("MLOPS_MODEL_NAME") or "",
            feast_registry_url=env.get("MLOPS_FEAST_REGISTRY_URL") or None,
            feast_redis=env.get("MLOPS_FEAST_REDIS") or None,
            alert_log=Path(env["MLOPS_ALERT_LOG"]) if env.get("MLOPS_ALERT_LOG") else None,
            alert_email=tuple(a.strip() for a in env.get("MLOPS_ALERT_EMAIL", "").split(",") if a.strip()),
            require_approval=flag("MLOPS_REQUIRE_APPROVAL"),
            alert_slack_conn_id=env.get("MLOPS_ALERT_SLACK_CONN_ID") or None,
        )
