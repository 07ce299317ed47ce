"""Replay the loop over the real year 2013, beside two simpler policies: does it pay off?

`run` walks the replay clock day by day through 2013 (by default the whole 52-week cycle, from
1 January 2013 to 31 December 2013) and runs three policies on the same days and data:

- **loop**: what the DAGs do. Each day the champion scores the day's flights; at the end of the
  day the drift check looks at the last `drift_window_days` of its predictions, with the labels
  that have landed by then; when the drift policy asks for a retrain, a candidate is trained on
  the `training_days` before that moment, the promotion gate judges it against the champion on
  the last labelled week, and it is promoted only if it passes. Escalations are counted as the
  drift DAG would send them.
- **static**: the first model, trained on the first `training_days`, never replaced.
- **blind**: retrained every `blind_every_days` on the `training_days` before, and promoted without
  a gate.

All three start from the same first model, trained on the first `training_days` (the first model
passes the gate's value rules in the loop, as `training_pipeline`'s first run does); scoring starts
the day after.

**The same functions as the DAGs.** Features are built by the feature pipeline's own steps
(ingest, validate, build) into the replay's own lake and Feast repository; the labelled feature
frames come from the same point-in-time join (`pipeline.training_set`). Training splits and fits
with `training.split` and `training.fit`; the gate decides with `gate.decide` on the set
`gating.evaluation_window` describes; the drift check observes with `monitoring.observe` and
decides with `drift.decide`, `drift.escalation` and the drift rules file. What the replay leaves
out changes no decision: Evidently's HTML report, MLflow runs and artifacts for every step, the
Feast online store (batch scoring reads the offline store). Building that for 308 daily checks
and over a hundred trainings would take hours. A test holds the replay's training sets to
`pipeline.training_set`'s, and the drift verdicts without a report are Evidently's own (a test of
`include.mlops.monitoring` holds them to the report's). `tests/test_replay_airflow.py` runs two
weeks through the DAGs themselves, as backfills on Airflow's scheduler, and finds the same drift
decisions, gate outcomes, champions, escalations and probabilities as this replay of the same days.

**Features ahead of the walk.** The features and the labelled frames are built before the walk,
four weeks at a time (`chunk_days`), once for all policies: they do not depend on the policy, and every row is what
was known at its prediction time (the feature pipeline's point-in-time guarantee). The walk itself
keeps the clock: at the end of a day only labels that landed before it are used, by the drift
check's quality, the training split and the gate.

**Quality** is measured after the fact, on every flight with its label: per week, the ROC AUC and
log loss of what each policy's champion predicted that week. The **gate's regret** is counted for
every promotion (loop and blind): on the week after it, was the new champion worse (ROC AUC) than
the model it replaced, on the same flights?

**Restartable.** The lake and the frames are kept in the replay folder and skipped when present;
the walk writes a checkpoint (`checkpoint.json` and the predictions so far) every week, and a run
with the same configuration resumes from it. Models are not kept: each is trained again from its
recorded window when a resumed run needs it, which gives the same model (seeded, same data).

**Deterministic.** Every model, sample and bootstrap is seeded: two runs give the same numbers.
Only the compute times differ.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.flights import gating, inference, model, monitoring, pipeline, training
from include.mlops import drift, gate
from include.mlops.evaluation import binary_metrics
from include.mlops.lake import Interval
from include.mlops.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

POLICIES = ("loop", "static", "blind")
STAGES = ("features", "scoring", "drift", "training", "gate")
FAR = datetime(2100, 1, 1, tzinfo=UTC)  # "whenever the label lands": the frames keep every label
PREDICTION = inference.PREDICTION


@dataclass(frozen=True)
class ReplayConfig:
    start: datetime = datetime(2013, 1, 1, tzinfo=UTC)
    end: datetime = datetime(2013, 12, 31, tzinfo=UTC)  # excluded: 52 weeks, the replay clock's cycle
    training_days: int = 56  # the training window, as training_pipeline's default (8 weeks)
    blind_every_days: int = 7
    drift_window_days: int = monitoring.WINDOW_DAYS
    evaluation_days: int = gating.EVALUATION_DAYS
    chunk_days: int = 28  # the features and frames are built four weeks at a time
    model: model.ModelConfig = field(default_factory=model.ModelConfig)

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() != timedelta(0) or value != _midnight(value):
                raise ValueError(f"the replay's {name} must be a UTC midnight, got {value.isoformat()}")
        if self.training_days < 7 or min(self.blind_every_days, self.drift_window_days, self.chunk_days) < 1:
            raise ValueError("training_days must be at least 7, and the other periods at least 1 day")
        if self.first_day + timedelta(days=7) > self.end:
            raise ValueError(
                f"the replay from {self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} is shorter than the first "
                f"training window ({self.training_days} days) plus one week of scoring"
            )

    @property
    def first_day(self) -> datetime:
        """The first day scored: the day after the first training window."""
        return self.start + timedelta(days=self.training_days)

    def days(self) -> list[datetime]:
        """The days scored, each by its start."""
        return [self.first_day + timedelta(days=n) for n in range((self.end - self.first_day).days)]

    def weeks(self) -> list[Interval]:
        """The weeks quality is measured on (a shorter last one if the days do not divide by 7)."""
        starts = range(0, (self.end - self.first_day).days, 7)
        return [
            Interval(self.first_day + timedelta(days=n), min(self.end, self.first_day + timedelta(days=n + 7)))
            for n in starts
        ]

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"start": self.start.isoformat(), "end": self.end.isoformat()}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Version:
    """A model a policy trained: where its data came from and how it did on validation."""

    number: int
    window: str  # the training window's key
    cutoff: str  # its validation cutoff
    trained_at: str
    validation_roc_auc: float
    threshold: float = training.DEFAULT_THRESHOLD


@dataclass
class Event:
    """Something a policy did: `retrain` (the drift check asked), `promote`, `reject`, `escalate`,
    `training-failed`. A promotion names the version it replaced and the gate's outcome (none for
    the blind policy, which has no gate)."""

    at: str
    kind: str
    version: int | None = None
    detail: str = ""
    replaced: int | None = None
    gate: str | None = None


@dataclass
class PolicyState:
    name: str
    champion: int = 0
    versions: list[Version] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)  # the loop's drift checks (drift.PastCheck fields)
    last_retrain: dict | None = None  # the loop's last drift.Retrain, as a dict
    escalated_for: list[str] = field(default_factory=list)  # retrains already escalated (once each)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES[1:], 0.0))


class Replay:
    """One replay: its folder, configuration and state. `run()` builds what is missing and walks."""

    def __init__(self, folder: Path, config: ReplayConfig | None = None, settings: Settings | None = None) -> None:
        self.folder = folder
        self.config = config or ReplayConfig()
        base = settings or Settings.from_env()
        # Its own lake, Feast repository and MLflow files: the replay never touches the running system.
        self.data = replace(base, state_dir=folder / "state", mlflow_tracking_uri=None)
        self.rules = gating.load_rules()
        self.drift_rules = monitoring.load_rules()
        self.models: dict[tuple[str, int], tuple[object, pd.DataFrame]] = {}  # model and scored reference
        self.fits: dict[str, tuple[datetime, training.Fitted, pd.DataFrame]] = {}  # by training window
        self.frame: pd.DataFrame | None = None
        self.features: list[str] = []
        self.shared_seconds = {"features": 0.0, "frames": 0.0}
        self.state = {name: PolicyState(name) for name in POLICIES}
        self.predictions: dict[str, list[pd.DataFrame]] = {name: [] for name in POLICIES}
        self.day: datetime = self.config.first_day  # the next day to score

    # --- Building the data: the feature pipeline's steps, a chunk at a time -----------------------

    def chunks(self) -> Iterator[Interval]:
        step = timedelta(days=self.config.chunk_days)
        cursor = self.config.start
        while cursor < self.config.end:
            yield Interval(cursor, min(cursor + step, self.config.end))
            cursor += step

    def build_features(self) -> None:
        """Ingest, validate and build every chunk's features; chunks already built are skipped."""
        started = time.perf_counter()
        for chunk in self.chunks():
            if not pipeline.days_without_features(self.data, chunk):
                continue
            pipeline.validate_batches(self.data, pipeline.ingest(self.data, chunk))
            pipeline.build_features(self.data, chunk)
            log.info("Replay features of %s built", chunk)
        # Outcomes landing after the last day (the frames read two days past a chunk's end).
        after = Interval(self.config.end, self.config.end + timedelta(days=2))
        pipeline.validate_batches(self.data, pipeline.ingest(self.data, after))
        pipeline.apply_definitions(self.data)
        self.shared_seconds["features"] += time.perf_counter() - started

    def build_frames(self) -> pd.DataFrame:
        """Every flight of the replay with its point-in-time features and its label, a
        chunk at a time through the feature store (kept as Parquet in the replay folder)."""
        import pandas as pd

        started = time.perf_counter()
        folder = self.folder / "frames"
        folder.mkdir(parents=True, exist_ok=True)
        frames = []
        for chunk in self.chunks():
            path = folder / f"{chunk.key}.parquet"
            if not path.exists():
                frame = pipeline.training_set(self.data, chunk, labels_by=FAR)
                frame.to_parquet(path.with_suffix(".tmp"), index=False)
                path.with_suffix(".tmp").replace(path)
            frames.append(pd.read_parquet(path))
        frame = pd.concat(frames, ignore_index=True).sort_values(["sched_dep_at", "flight_id"], kind="stable")
        self.features = [*model.CATEGORICAL, *model.numeric_features(pipeline.all_feature_refs())]
        frame[self.features] = model.model_input(frame, self.features)
        self.frame = frame.reset_index(drop=True)
        self.shared_seconds["frames"] += time.perf_counter() - started
        return self.frame

    def labelled(self, window: Interval, known_by: datetime) -> pd.DataFrame:
        """The flights departing in `window` whose labels landed before `known_by`:
        `pipeline.training_set(window, labels_by=known_by)`, from the frames."""
        frame = self.frame
        assert frame is not None
        start, end = frame["sched_dep_at"].searchsorted([window.start, window.end])
        rows = frame.iloc[start:end]
        return rows[rows["label_at"] < known_by]

    # --- Models ------------------------------------------------------------------------------------

    def train(self, policy: str, window: Interval, at: datetime) -> Version:
        """A candidate of `policy` trained on `window` at `at`, as `training_pipeline` trains one."""
        started = time.perf_counter()
        cutoff, fitted, reference = self._fit(window)
        state = self.state[policy]
        version = Version(
            number=len(state.versions) + 1,
            window=window.key,
            cutoff=cutoff.isoformat(),
            trained_at=at.isoformat(),
            validation_roc_auc=fitted.evaluation.overall["roc_auc"],
        )
        state.versions.append(version)
        self.models[(policy, version.number)] = (fitted.pipe, reference)
        state.seconds["training"] += time.perf_counter() - started
        return version

    def model(self, policy: str, number: int) -> tuple[object, pd.DataFrame]:
        """A version's model and its reference sample; trained again from its window if this run
        has not got it (a resumed replay): the same data and seed give the same model."""
        key = (policy, number)
        if key not in self.models:
            _, fitted, reference = self._fit(Interval.from_key(self.state[policy].versions[number - 1].window))
            self.models[key] = (fitted.pipe, reference)
        return self.models[key]

    def _fit(self, window: Interval) -> tuple[datetime, training.Fitted, pd.DataFrame]:
        """Split the window's labelled flights (labels landed by its end), fit, keep the reference
        sample scored by the model. Two policies retraining on the same window get the same model:
        it is fitted once."""
        if window.key not in self.fits:
            train, validation, cutoff, _ = training.split(self.labelled(window, window.end), window)
            fitted = training.fit(self.config.model, train, validation, self.features)
            reference = training.reference_sample(train, self.features, self.config.model.seed)
            reference = reference.assign(**{PREDICTION: fitted.pipe.predict_proba(reference[self.features])[:, 1]})
            self.fits[window.key] = (cutoff, fitted, reference)
        return self.fits[window.key]

    def predict(self, policy: str, number: int, rows: pd.DataFrame) -> np.ndarray:
        import numpy as np

        pipe, _ = self.model(policy, number)
        return pipe.predict_proba(rows[self.features])[:, 1] if len(rows) else np.zeros(0)

    # --- The walk ----------------------------------------------------------------------------------

    def run(self, on_week: object = None) -> dict[str, object]:
        """Build what is missing, resume or start the walk, and return the summary."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.build_features()
        self.build_frames()
        if not self.resume():
            self.start()
        for day in self.config.days():
            if day < self.day:
                continue
            self.step(day)
            self.day = day + timedelta(days=1)
            if (self.day - self.config.first_day).days % 7 == 0 or self.day == self.config.end:
                self.checkpoint()
                if callable(on_week):
                    on_week(self.day)
        return self.summary()

    def start(self) -> None:
        """The first model, trained on the first window, and the gate's verdict on it."""
        window = Interval(self.config.start, self.config.first_day)
        version = self.train("static", window, self.config.first_day)
        for policy in POLICIES:
            state = self.state[policy]
            state.versions = [version]
            state.champion = 1
            self.models[(policy, 1)] = self.models[("static", 1)]
        outcome, reasons = self.judge("loop", 1, self.config.first_day)
        loop = self.state["loop"]
        if outcome == "reject":
            raise RuntimeError(f"the first model fails the gate's value rules: {'; '.join(reasons)}")
        loop.events.append(Event(self.config.first_day.isoformat(), "promote", 1, "the first model", gate=outcome))

    def step(self, day: datetime) -> None:
        """One day: every champion scores the day's flights; at its end the loop's drift check, and
        its retrain if asked; the blind policy's weekly retrain."""
        at = day + timedelta(days=1)
        rows = self.labelled(Interval(day, at), FAR)
        for policy in POLICIES:
            started = time.perf_counter()
            state = self.state[policy]
            scored = rows[["flight_id", "sched_dep_at", "label_at", "is_late"]].assign(
                **{PREDICTION: self.predict(policy, state.champion, rows), "version": state.champion}
            )
            self.predictions[policy].append(scored)
            state.seconds["scoring"] += time.perf_counter() - started
        self.check(at)
        if (at - self.config.first_day).days % self.config.blind_every_days == 0 and at < self.config.end:
            window = Interval(at - timedelta(days=self.config.training_days), at)
            version = self.train("blind", window, at)
            blind = self.state["blind"]
            blind.events.append(Event(at.isoformat(), "promote", version.number, "weekly", replaced=blind.champion))
            blind.champion = version.number

    def check(self, at: datetime) -> None:
        """The loop's drift check at `at`, and what follows from it."""
        started = time.perf_counter()
        loop = self.state["loop"]
        rules = self.drift_rules
        window = Interval(at - timedelta(days=self.config.drift_window_days), at)
        rows = self.labelled(window, FAR)
        _, reference = self.model("loop", loop.champion)
        champion = loop.versions[loop.champion - 1]
        # The window as the champion sees it (days an earlier champion scored are scored again).
        current = rows.assign(**{PREDICTION: self.predict("loop", loop.champion, rows)})
        labelled = current[current["label_at"] < at]
        observation, _, _ = monitoring.observe(
            at,
            current,
            labelled,
            reference,
            self.features,
            champion.validation_roc_auc,
            champion.threshold,
            rules,
            report=False,
        )
        past = [drift.PastCheck(**{**c, "at": datetime.fromisoformat(c["at"])}) for c in loop.checks]
        decision = drift.decide(rules.policy, observation, drift.history(past))
        retrain = self._last_retrain(past, at)
        alert = drift.escalation(rules.policy, decision, drift.condition_since(past, at), retrain)
        if alert and loop.last_retrain and loop.last_retrain["triggered_at"] in loop.escalated_for:
            alert = None  # each retrain escalates once
        if alert and loop.last_retrain:
            loop.escalated_for.append(loop.last_retrain["triggered_at"])
            loop.events.append(Event(at.isoformat(), "escalate", loop.champion, alert))
        loop.checks.append(
            {
                "at": at.isoformat(),
                "action": decision.action,
                "condition": decision.condition,
                "asked_retrain": decision.action == "retrain",
            }
        )
        loop.seconds["drift"] += time.perf_counter() - started
        if decision.action != "retrain":
            return
        loop.events.append(Event(at.isoformat(), "retrain", None, "; ".join(decision.reasons)))
        window = Interval(at - timedelta(days=self.config.training_days), at)
        try:
            version = self.train("loop", window, at)
        except training.TrainingDataError as error:
            loop.events.append(Event(at.isoformat(), "training-failed", None, str(error)))
            loop.last_retrain = {"triggered_at": at.isoformat(), "outcome": "reject"}
            return
        outcome, reasons = self.judge("loop", version.number, at)
        decided = {"triggered_at": at.isoformat(), "version": version.number, "decided_at": at.isoformat()}
        if outcome == "reject":
            loop.events.append(Event(at.isoformat(), "reject", version.number, "; ".join(reasons), gate=outcome))
            loop.last_retrain = decided | {"outcome": "reject"}
            return
        loop.events.append(
            Event(at.isoformat(), "promote", version.number, "passed the gate", replaced=loop.champion, gate=outcome)
        )
        loop.last_retrain = decided | {"outcome": outcome}
        loop.champion = version.number

    def _last_retrain(self, past: list[drift.PastCheck], at: datetime) -> drift.Retrain | None:
        last = self.state["loop"].last_retrain
        if last is None:
            return None
        triggered = datetime.fromisoformat(last["triggered_at"])
        if last.get("version") is None:
            return drift.Retrain(triggered, "reject")
        decided = datetime.fromisoformat(last["decided_at"])
        judged = drift.judged_since(past, decided) + 1 if last["outcome"] != "reject" else 0
        return drift.Retrain(triggered, last["outcome"], last["version"], decided, judged)

    def judge(self, policy: str, number: int, at: datetime) -> tuple[str, list[str]]:
        """The promotion gate on `number` against the policy's champion, as `gating.evaluate_candidate`
        judges a version: same window, same rules, same decision function."""
        started = time.perf_counter()
        state = self.state[policy]
        candidate = state.versions[number - 1]
        champion = state.champion if state.champion and state.champion != number else None
        try:
            window = gating.evaluation_window(at, datetime.fromisoformat(candidate.cutoff), self.config.evaluation_days)
            frame = gating.checked(self.labelled(window, at).copy(), window)
        except gating.GateError as error:
            state.seconds["gate"] += time.perf_counter() - started
            return "reject", [str(error)]
        cand_p, facts = self._score_timed(policy, number, frame)
        cand = gating.scores(frame, cand_p, candidate.threshold)
        champ = None
        if champion is not None:
            champ = gating.scores(frame, self.predict(policy, champion, frame), candidate.threshold)
        decision = gate.decide(self.rules, frame[model.LABEL].to_numpy(), cand, champ, facts)
        state.seconds["gate"] += time.perf_counter() - started
        return decision.outcome, decision.reasons

    def _score_timed(self, policy: str, number: int, frame: pd.DataFrame) -> tuple[np.ndarray, gate.Operational]:
        """Probabilities with the latency and size the gate's operational rules read."""
        import pickle

        pipe, _ = self.model(policy, number)
        started = time.perf_counter()
        p = pipe.predict_proba(frame[self.features])[:, 1]
        latency = (time.perf_counter() - started) * 1000 * 10_000 / len(frame)
        size_mb = len(pickle.dumps(pipe)) / 1e6  # the replay's own models, in memory: never loaded from a file
        # Latency varies from run to run; only its verdict, far inside the budget, enters the replay.
        return p, gate.Operational(latency, size_mb, ())

    # --- Checkpoints -----------------------------------------------------------------------------

    def checkpoint(self) -> None:
        import pandas as pd

        folder = self.folder / "checkpoint"
        folder.mkdir(parents=True, exist_ok=True)
        for policy, parts in self.predictions.items():
            if parts:
                frame = pd.concat(parts, ignore_index=True)
                self.predictions[policy] = [frame]
                frame.to_parquet(folder / f"{policy}.tmp", index=False)
                (folder / f"{policy}.tmp").replace(folder / f"{policy}.parquet")
        state = {
            "config": self.config.digest(),
            "day": self.day.isoformat(),
            "policies": {name: asdict(s) for name, s in self.state.items()},
        }
        (folder / "state.tmp").write_text(json.dumps(state, indent=1))
        (folder / "state.tmp").replace(folder / "state.json")  # written last: it names a complete checkpoint

    def resume(self) -> bool:
        """Pick up the last checkpoint of the same configuration; False if there is none."""
        import pandas as pd

        path = self.folder / "checkpoint" / "state.json"
        if not path.exists():
            return False
        saved = json.loads(path.read_text())
        if saved["config"] != self.config.digest():
            log.warning("The checkpoint in %s is of another configuration: starting over", path.parent)
            return False
        self.day = datetime.fromisoformat(saved["day"])
        for name, data in saved["policies"].items():
            state = PolicyState(**data)
            state.versions = [Version(**v) for v in data["versions"]]
            state.events = [Event(**e) for e in data["events"]]
            self.state[name] = state
            frame = pd.read_parquet(path.parent / f"{name}.parquet")
            self.predictions[name] = [frame[frame["sched_dep_at"] < self.day]]
        log.info("Resuming the replay at %s", self.day.date())
        return True

    # --- What came of it -------------------------------------------------------------------------

    def summary(self) -> dict[str, object]:
        """Weekly quality per policy, the table's figures, the events and the regret of promotions."""
        import pandas as pd

        weeks = self.config.weeks()
        result: dict[str, object] = {
            "config": self.config.to_dict(),
            "weeks": [w.start.date().isoformat() for w in weeks],
            "policies": {},
            "shared_seconds": dict(self.shared_seconds),
        }
        for policy in POLICIES:
            state = self.state[policy]
            scored = pd.concat(self.predictions[policy], ignore_index=True) if self.predictions[policy] else None
            weekly = []
            for week in weeks:
                rows = scored[(scored["sched_dep_at"] >= week.start) & (scored["sched_dep_at"] < week.end)]
                metrics = binary_metrics(rows["is_late"].to_numpy(), rows[PREDICTION].to_numpy(), 0.5)
                weekly.append({"roc_auc": metrics["roc_auc"], "log_loss": metrics["log_loss"], "rows": len(rows)})
            auc = [w["roc_auc"] for w in weekly]
            loss = [w["log_loss"] for w in weekly]
            kinds = [e.kind for e in state.events]
            promotions = [e for e in state.events if e.kind == "promote" and e.replaced is not None]
            result["policies"][policy] = {  # type: ignore[index]
                "weekly": weekly,
                "mean_roc_auc": sum(auc) / len(auc),
                "worst_week_roc_auc": min(auc),
                "mean_log_loss": sum(loss) / len(loss),
                "worst_week_log_loss": max(loss),
                "retrains": len(state.versions) - 1,
                "promotions": len(promotions),
                "rejections": kinds.count("reject"),
                "drift_retrain_requests": kinds.count("retrain"),
                "escalations": kinds.count("escalate"),
                "regret": self.regret(policy, promotions),
                "seconds": dict(state.seconds),
                "events": [asdict(e) for e in state.events],
            }
        return result

    def regret(self, policy: str, promotions: list[Event]) -> dict[str, object]:
        """Promotions whose new champion was worse than the model it replaced on the week after."""
        worse, judged = [], 0
        for event in promotions:
            at = datetime.fromisoformat(event.at)
            week = Interval(at, min(at + timedelta(days=7), self.config.end))
            replaced = event.replaced
            rows = self.labelled(week, FAR)
            if week.end - week.start < timedelta(days=7) or rows["is_late"].nunique() < 2:
                continue  # the replay ended before the week did
            judged += 1
            y = rows["is_late"].to_numpy()
            new = binary_metrics(y, self.predict(policy, event.version, rows), 0.5)["roc_auc"]  # type: ignore[arg-type]
            old = binary_metrics(y, self.predict(policy, replaced, rows), 0.5)["roc_auc"]  # type: ignore[arg-type]
            if new < old:
                worse.append({"at": event.at, "version": event.version, "replaced": replaced, "roc_auc": [new, old]})
        return {"judged": judged, "worse": len(worse), "promotions": worse}


def _midnight(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)
