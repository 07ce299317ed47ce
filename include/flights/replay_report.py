"""The replay's report: a chart of weekly quality per policy, the table, the verdict, the events.

`write` turns `Replay.summary()` into `report.md` and `quality.png` in the replay folder, and
`log_to_mlflow` records the summary as one run of the MLflow experiment `replay`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from include.mlops import tracking
from include.mlops.settings import Settings

EXPERIMENT = "replay"
LABELS = {
    "loop": "loop (drift-triggered retraining, gated)",
    "static": "static (first model, never replaced)",
    "blind": "blind (weekly retraining, no gate)",
}
COLORS = {"loop": "#1f77b4", "static": "#7f7f7f", "blind": "#ff7f0e"}
TABLE = [
    ("mean weekly ROC AUC", "mean_roc_auc", "{:.4f}"),
    ("worst week ROC AUC", "worst_week_roc_auc", "{:.4f}"),
    ("mean weekly log loss", "mean_log_loss", "{:.4f}"),
    ("worst week log loss", "worst_week_log_loss", "{:.4f}"),
    ("retrains", "retrains", "{}"),
    ("promotions", "promotions", "{}"),
    ("rejections", "rejections", "{}"),
    ("escalations", "escalations", "{}"),
]


def write(summary: Mapping[str, object], folder: Path) -> Path:
    """Write `report.md`, `quality.png` and `summary.json` into `folder`; return the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    chart(summary, folder / "quality.png")
    (folder / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    path = folder / "report.md"
    path.write_text(markdown(summary))
    return path


def chart(summary: Mapping[str, object], path: Path) -> None:
    """Weekly ROC AUC and log loss per policy, with the loop's drift alerts, promotions, rejections
    and escalations, and the blind policy's replacements, marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    weeks = [datetime.fromisoformat(w) for w in summary["weeks"]]  # type: ignore[union-attr]
    policies = summary["policies"]  # type: ignore[index]
    figure, (auc_axis, loss_axis) = plt.subplots(2, 1, figsize=(12, 8), sharex=True, constrained_layout=True)
    for name, result in policies.items():  # type: ignore[union-attr]
        for axis, metric in ((auc_axis, "roc_auc"), (loss_axis, "log_loss")):
            values = [w[metric] for w in result["weekly"]]
            axis.plot(weeks, values, label=LABELS[name], color=COLORS[name], marker=".", linewidth=1.5)
    markers = {  # kind: marker, label, row below the curves (a share of the axis' height)
        "retrain": ("|", "drift alert: retrain asked", 0.04),
        "promote": ("^", "promoted", 0.11),
        "reject": ("x", "rejected by the gate", 0.18),
        "escalate": ("*", "escalated", 0.25),
    }
    low, high = auc_axis.get_ylim()
    for kind, (marker, label, row) in markers.items():
        times = [
            datetime.fromisoformat(e["at"])
            for e in policies["loop"]["events"]  # type: ignore[index]
            if e["kind"] == kind and not (kind == "promote" and e["replaced"] is None)
        ]
        if times:
            y = low - (high - low) * row
            auc_axis.scatter(times, [y] * len(times), marker=marker, color=COLORS["loop"], label=f"loop: {label}")
    blind = [datetime.fromisoformat(e["at"]) for e in policies["blind"]["events"] if e["kind"] == "promote"]  # type: ignore[index]
    if blind:
        y = low - (high - low) * 0.32
        auc_axis.scatter(blind, [y] * len(blind), marker="|", color=COLORS["blind"], label="blind: replaced")
    auc_axis.set_ylabel("ROC AUC (weekly, higher is better)")
    loss_axis.set_ylabel("log loss (weekly, lower is better)")
    auc_axis.set_title("Replay of 2013: realised quality per week of each policy's champion")
    auc_axis.legend(loc="upper left", fontsize=8, ncol=2)
    loss_axis.legend(loc="upper left", fontsize=8)
    loss_axis.xaxis.set_major_formatter(mdates.DateFormatter("%b"))
    for axis in (auc_axis, loss_axis):
        axis.grid(alpha=0.3)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(summary: Mapping[str, object]) -> str:
    config, policies = summary["config"], summary["policies"]  # type: ignore[index]
    names = list(policies)  # type: ignore[arg-type]
    lines = [
        "# Replay of 2013: does drift-triggered retraining pay off?",
        "",
        f"From {config['start'][:10]} to {config['end'][:10]} (end excluded) on the replay clock; every policy "  # type: ignore[index]
        f"starts from the same model, trained on the first {config['training_days']} days, and is scored on "  # type: ignore[index]
        f"the {len(summary['weeks'])} weeks after (quality measured on every flight once its label landed).",  # type: ignore[arg-type]
        "",
        "![weekly quality per policy](quality.png)",
        "",
        "| | " + " | ".join(LABELS[n] for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for title, key, form in TABLE:
        lines.append(f"| {title} | " + " | ".join(_number(form, policies[n][key]) for n in names) + " |")  # type: ignore[index]
    lines.append(
        "| promotions worse than the model they replaced, the week after | "
        + " | ".join(_regret(policies[n]) for n in names)  # type: ignore[index]
        + " |"
    )
    lines.append(
        "| compute (s): scoring, drift, training, gate | "
        + " | ".join(_seconds(policies[n]["seconds"]) for n in names)  # type: ignore[index]
        + " |"
    )
    shared = summary["shared_seconds"]  # type: ignore[index]
    lines += [
        "",
        f"Shared by the three: features {shared['features']:.0f} s, labelled feature frames "  # type: ignore[index]
        f"{shared['frames']:.0f} s.",
        "",
        "## What it shows",
        "",
        *verdict(policies),  # type: ignore[arg-type]
        "",
        "## The loop's decisions",
        "",
        "| when | what | version | replaces | gate | detail |",
        "|---|---|---|---|---|---|",
    ]
    for event in policies["loop"]["events"]:  # type: ignore[index]
        detail = str(event["detail"]).replace("|", "/")
        cells = [event["at"][:10], event["kind"], event["version"], event["replaced"], event["gate"], detail]
        lines.append("| " + " | ".join("" if cell is None else str(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def verdict(policies: Mapping[str, Mapping[str, object]]) -> list[str]:
    """What the numbers say, whichever way they fall."""
    loop, static, blind = policies["loop"], policies["static"], policies["blind"]
    lines = []
    for other, name in ((static, "static"), (blind, "blind")):
        auc = loop["mean_roc_auc"] - other["mean_roc_auc"]  # type: ignore[operator]
        loss = loop["mean_log_loss"] - other["mean_log_loss"]  # type: ignore[operator]
        worst = loop["worst_week_roc_auc"] - other["worst_week_roc_auc"]  # type: ignore[operator]
        better = auc > 0 and loss < 0
        lines.append(
            f"- Against **{name}**, the loop {'beats it' if better else 'does not beat it'}: mean weekly ROC AUC "
            f"{auc:+.4f}, mean log loss {loss:+.4f}, worst week ROC AUC {worst:+.4f}."
        )
    requests, promotions = loop["drift_retrain_requests"], loop["promotions"]
    lines.append(
        f"- The drift policy asked for {requests} retrains; the gate promoted {promotions} and rejected "
        f"{loop['rejections']}, and the monitor escalated {loop['escalations']} times."
    )
    for name, result in (("loop", loop), ("blind", blind)):
        regret = result["regret"]
        lines.append(
            f"- Regret ({name}): {regret['worse']} of the {regret['judged']} promotions judged on the week after "  # type: ignore[index]
            "were worse than the model they replaced."
        )
    return lines


def log_to_mlflow(settings: Settings, summary: Mapping[str, object], folder: Path) -> str:
    """One run of the experiment `replay`: the configuration, each policy's figures, the report."""
    from mlflow import MlflowClient

    experiment_id = tracking.connect(settings, EXPERIMENT)
    client = MlflowClient()
    config = summary["config"]  # type: ignore[index]
    run = client.create_run(
        experiment_id,
        run_name=f"replay {config['start'][:10]} to {config['end'][:10]}",  # type: ignore[index]
        tags=tracking.code_version(),
    )
    run_id = run.info.run_id
    for key, value in config.items():  # type: ignore[union-attr]
        client.log_param(run_id, key, json.dumps(value) if isinstance(value, dict) else value)
    for name, result in summary["policies"].items():  # type: ignore[union-attr]
        for _, key, _ in TABLE:
            client.log_metric(run_id, f"{name}.{key}", float(result[key]))
        client.log_metric(run_id, f"{name}.regret_worse", result["regret"]["worse"])
        client.log_metric(run_id, f"{name}.compute_seconds", sum(result["seconds"].values()))
    for artifact in ("report.md", "quality.png", "summary.json"):
        client.log_artifact(run_id, str(folder / artifact))
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _number(form: str, value: object) -> str:
    return "n/a" if isinstance(value, float) and math.isnan(value) else form.format(value)


def _regret(result: Mapping[str, object]) -> str:
    regret = result["regret"]
    return f"{regret['worse']} of {regret['judged']}"  # type: ignore[index]


def _seconds(seconds: Mapping[str, float]) -> str:
    parts = ", ".join(f"{seconds[k]:.0f}" for k in ("scoring", "drift", "training", "gate"))
    return f"{sum(seconds.values()):.0f} ({parts})"
