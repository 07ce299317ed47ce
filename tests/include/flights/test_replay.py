"""The replay of the loop and its baselines, on seven real weeks of 2013: five to train the first
model, two scored (all in the calibration half).
The replay is interrupted after its first scored week and resumed; a second,
uninterrupted walk over the same data must give the same numbers."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from include import cli
from include.flights import model, pipeline
from include.flights.replay import POLICIES, Replay, ReplayConfig
from include.flights.replay_report import write
from include.mlops.lake import Interval
from include.mlops.settings import Settings

CONFIG = ReplayConfig(end=datetime(2013, 2, 19, tzinfo=UTC), training_days=35)
PASSED = ("promote", "first-model")


class ReplayInterruptedError(Exception):
    pass


def interrupt(day: datetime) -> None:
    raise ReplayInterruptedError(day)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("replay")
    with pytest.raises(ReplayInterruptedError):
        Replay(folder, CONFIG).run(on_week=interrupt)
    assert json.loads((folder / "checkpoint" / "state.json").read_text())["day"] == "2013-02-12T00:00:00+00:00"
    return folder, Replay(folder, CONFIG).run()


def without_times(summary: dict) -> dict:
    summary = json.loads(json.dumps(summary))
    summary.pop("shared_seconds")
    for result in summary["policies"].values():
        result.pop("seconds")
    return summary


def test_every_policy_is_scored_every_day_and_measured_every_week(replayed) -> None:
    _, summary = replayed
    assert summary["weeks"] == ["2013-02-05", "2013-02-12"]
    for policy in POLICIES:
        weekly = summary["policies"][policy]["weekly"]
        assert len(weekly) == 2 and all(w["rows"] > 4000 for w in weekly), policy
        assert all(0.6 < w["roc_auc"] < 0.9 and 0.3 < w["log_loss"] < 0.7 for w in weekly), weekly
    assert summary["halves"] == {"calibration": ["2013-02-05", "2013-02-12"], "held_out": []}
    static, blind, gated = (summary["policies"][p]["year"] for p in ("static", "blind", "gated"))
    assert static["retrains"] == 0 and static["promotions"] == 0
    assert blind["retrains"] == blind["promotions"] == 1 and blind["rejections"] == 0  # on 12 February
    assert gated["retrains"] == 1 and gated["promotions"] + gated["rejections"] == 1  # the same model, gated
    assert (
        summary["policies"]["blind"]["calibration"] == blind and summary["policies"]["blind"]["held_out"]["weeks"] == 0
    )


def test_every_promotion_of_the_gated_policies_passed_the_gate(replayed) -> None:
    _, summary = replayed
    loop = summary["policies"]["loop"]
    events = loop["events"]
    assert events[0] == {
        "at": "2013-02-05T00:00:00+00:00",
        "kind": "promote",
        "version": 1,
        "detail": "the first model",
        "replaced": None,
        "gate": "first-model",
    }
    for policy in ("loop", "gated"):
        decided = [e for e in summary["policies"][policy]["events"] if e["kind"] in ("promote", "reject")]
        assert all(e["gate"] in PASSED for e in decided if e["kind"] == "promote")
        assert all(e["gate"] in ("reject", "error") for e in decided if e["kind"] == "reject")
    asked = [e["at"] for e in events if e["kind"] == "retrain"]
    decided = [e for e in events if e["kind"] in ("promote", "reject")]
    assert [e["at"] for e in decided[1:]] == asked  # each request trained a candidate, judged at once
    assert loop["year"]["retrains"] == loop["year"]["drift_retrain_requests"] == len(asked)


def test_the_regret_of_promotions_is_measured_on_the_week_after(replayed) -> None:
    _, summary = replayed
    for policy in ("loop", "gated", "blind"):
        result = summary["policies"][policy]
        promotions = [e for e in result["events"] if e["kind"] == "promote" and e["replaced"] is not None]
        full_week = [e for e in promotions if datetime.fromisoformat(e["at"]) + timedelta(days=7) <= CONFIG.end]
        assert result["year"]["regret"]["judged"] == len(result["regret"]) == len(full_week)
        for judged in result["regret"]:
            new, old = judged["roc_auc"]
            assert judged["worse"] == (new < old)
        for judged in result["missed"]:
            new, old = judged["roc_auc"]
            assert judged["missed"] == (new - old >= CONFIG.missed_margin)


def test_a_resumed_replay_and_an_uninterrupted_one_give_the_same_numbers(replayed) -> None:
    folder, resumed = replayed
    shutil.rmtree(folder / "checkpoint")
    again = Replay(folder, CONFIG).run()
    assert without_times(again) == without_times(resumed)


def test_the_replay_trains_on_the_training_pipelines_own_training_set(replayed) -> None:
    folder, _ = replayed
    replay = Replay(folder, CONFIG)
    replay.build_frames()
    window = Interval(datetime(2013, 1, 22, tzinfo=UTC), datetime(2013, 2, 5, tzinfo=UTC))
    expected = pipeline.training_set(replay.data, window)
    expected[replay.features] = model.model_input(expected, replay.features)
    got = replay.labelled(window, window.end)
    columns = ["flight_id", "event_timestamp", "label_at", model.LABEL, *replay.features]
    pd.testing.assert_frame_equal(
        got[columns].sort_values("flight_id").reset_index(drop=True),
        expected[columns].sort_values("flight_id").reset_index(drop=True),
    )


def test_the_report_and_the_mlflow_run(replayed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, summary = replayed
    report = write(summary, folder).read_text()
    assert (folder / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![weekly quality per policy](quality.png)" in report
    for row in ("mean weekly ROC AUC", "worst week ROC AUC", "mean weekly log loss", "retrains", "promotions"):
        assert f"| {row} |" in report
    assert "| rejections |" in report and "| escalations by kind |" in report and "Compute (s)" in report
    assert "(regret) |" in report and "(missed) |" in report
    assert report.count("the bar (at least blind's, with at most half its retrains) is") == 2
    assert "## July to December (held out" in report and "## The log" in report
    # The log is beside the report, not in it: the loop's decisions and the weekly quality as CSV.
    assert "[events.csv](events.csv)" in report and "[weeks.csv](weeks.csv)" in report
    with (folder / "events.csv").open(newline="") as file:
        events = list(csv.DictReader(file))
    loop_events = summary["policies"]["loop"]["events"]
    assert [(e["day"], e["kind"], e["detail"]) for e in events] == [
        (e["at"][:10], e["kind"], e["detail"]) for e in loop_events
    ]
    with (folder / "weeks.csv").open(newline="") as file:
        weeks = list(csv.DictReader(file))
    assert [w["week"] for w in weeks] == summary["weeks"]
    assert float(weeks[0]["roc_auc_blind"]) == pytest.approx(
        summary["policies"]["blind"]["weekly"][0]["roc_auc"], abs=1e-4
    )

    # The command line resumes the finished replay: nothing left to walk; report and MLflow run.
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    argv = ["replay", "--end", "2013-02-19", "--training-days", "35", "--out", str(folder)]
    assert cli.main(argv) == 0
    client = MlflowClient(tracking_uri=Settings.from_env().tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("replay").experiment_id])
    loop = summary["policies"]["loop"]["year"]["mean_roc_auc"]
    assert run.data.metrics["loop.year.mean_roc_auc"] == pytest.approx(loop)
    assert run.data.params["training_days"] == "35"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "report.md",
        "quality.png",
        "summary.json",
        "events.csv",
        "weeks.csv",
    }
