"""Data-quality checks of a window of production data against a reference: broken feeds, not drift.

Drift asks whether the world moved; these checks ask whether the data broke. Each statistic is
computed per column, is 0 when the window looks like the reference and grows with the fault:

- `null_increase`: the window's share of missing values minus the reference's (a feed that went
  silent, or half silent);
- `stuck`: the share of the window's values taken by its most common value, minus the same share
  in the reference (a sensor repeating one reading: variance collapse);
- `out_of_range`: the share of the window's values outside the reference's [min, max] (a unit or
  scale change moves most values out);
- `new_category` / `vanished_category`: the share of the window's rows in categories the reference
  never saw, and of the reference's rows in categories the window lacks;
- `category_shift`: the largest change of one category's share (one carrier from 18% to 60%).
- `skew` (`serving_skew`): the share of the window's rows whose value the online store served
  differently from the offline store's point-in-time join (the training-serving skew the scoring
  step checks for each flight); any is an incident, so its limit is 0.

Each column has its own limit per statistic (`Limits`), calibrated from the data's own noise (see
`include.flights.calibration`): a finding is a statistic at or above its limit, and it names the
column, the statistic and, for categories, which one. A statistic whose limit is `null` was too
noisy in calibration to be checked, and is reported as not checked rather than silently passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

NUMERIC_STATS = ("null_increase", "stuck", "out_of_range")
CATEGORICAL_STATS = ("null_increase", "new_category", "vanished_category", "category_shift")


@dataclass(frozen=True)
class Finding:
    """A broken feed, as one statistic of one column at or above its limit."""

    column: str
    check: str
    observed: float
    limit: float
    detail: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    """One column's statistics, and what each refers to (the category that moved, the stuck value)."""

    column: str
    stats: dict[str, float]
    about: dict[str, str]


Limits = Mapping[str, Mapping[str, float | None]]  # column -> statistic -> limit (None: not checked)


def profile(
    current: pd.DataFrame, reference: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> list[Profile]:
    """Every statistic of every column of `current` against `reference`."""
    profiles = []
    for column in [*numeric, *categorical]:
        cur, ref = current[column], reference[column]
        stats = {"null_increase": float(cur.isna().mean() - ref.isna().mean()) if len(cur) and len(ref) else 0.0}
        about = {"null_increase": f"{cur.isna().mean():.0%} missing against {ref.isna().mean():.0%}"}
        cur, ref = cur.dropna(), ref.dropna()
        if len(cur) and len(ref):
            if column in categorical:
                _categories(cur.astype(str), ref.astype(str), stats, about)
            else:
                _numbers(cur.astype(float), ref.astype(float), stats, about)
        profiles.append(Profile(column, stats, about))
    return profiles


def check(profiles: Sequence[Profile], limits: Limits) -> tuple[list[Finding], list[str]]:
    """The findings, and what could not be checked: a statistic without a calibrated limit, one too
    noisy in calibration to have one, or one the window cannot give (a column with no value)."""
    findings, unchecked = [], []
    for found in profiles:
        column_limits = limits.get(found.column, {})
        for name in sorted(set(found.stats) | set(column_limits)):
            value, limit = found.stats.get(name), column_limits.get(name)
            if name not in column_limits:
                unchecked.append(f"{found.column} {name}: no limit")
            elif limit is None:
                unchecked.append(f"{found.column} {name}: too noisy in calibration to check")
            elif value is None:
                unchecked.append(f"{found.column} {name}: no values to compare")
            elif value >= limit:
                findings.append(Finding(found.column, name, value, limit, _detail(found, name, value, limit)))
    return findings, unchecked


def serving_skew(current: pd.DataFrame, skew_column: str) -> list[Finding]:
    """One finding per feature that the online store served, for some rows of the window, with a
    value that differs from the offline store's; `skew_column` lists them per row, comma-separated
    ("" when none differed, null when the row was not served online)."""
    if skew_column not in current:
        return []
    served = current[skew_column].dropna()
    counts: dict[str, int] = {}
    for listed in served[served != ""]:
        for column in listed.split(","):
            counts[column] = counts.get(column, 0) + 1
    return [
        Finding(
            column,
            "skew",
            n / len(served),
            0.0,
            f"the online store served {n} of {len(served)} flights a value different from the offline store's",
        )
        for column, n in sorted(counts.items())
    ]


def _numbers(cur: pd.Series, ref: pd.Series, stats: dict[str, float], about: dict[str, str]) -> None:
    cur_mode = cur.value_counts(normalize=True)
    ref_mode = ref.value_counts(normalize=True)
    stats["stuck"] = float(cur_mode.iloc[0] - ref_mode.iloc[0])
    about["stuck"] = (
        f"{cur_mode.iloc[0]:.0%} of the values are {cur_mode.index[0]:g}, "
        f"against at most {ref_mode.iloc[0]:.0%} in the reference"
    )
    low, high = float(ref.min()), float(ref.max())
    stats["out_of_range"] = float(((cur < low) | (cur > high)).mean())
    about["out_of_range"] = (
        f"values from {cur.min():g} to {cur.max():g}, "
        f"{stats['out_of_range']:.0%} outside the reference's {low:g} to {high:g}"
    )


def _categories(cur: pd.Series, ref: pd.Series, stats: dict[str, float], about: dict[str, str]) -> None:
    cur_share, ref_share = cur.value_counts(normalize=True), ref.value_counts(normalize=True)
    new = cur_share[~cur_share.index.isin(ref_share.index)]
    gone = ref_share[~ref_share.index.isin(cur_share.index)]
    stats["new_category"], about["new_category"] = float(new.sum()), _names(new, "new")
    stats["vanished_category"], about["vanished_category"] = float(gone.sum()), _names(gone, "gone")
    keys = cur_share.index.union(ref_share.index)
    change = cur_share.reindex(keys, fill_value=0.0) - ref_share.reindex(keys, fill_value=0.0)
    moved = change.abs().idxmax()
    stats["category_shift"] = float(abs(change[moved]))
    about["category_shift"] = (
        f"{moved} went from {ref_share.get(moved, 0.0):.0%} to {cur_share.get(moved, 0.0):.0%} of the rows"
    )


def _names(shares: pd.Series, what: str) -> str:
    if shares.empty:
        return f"no category {what}"
    top = ", ".join(f"{name} ({share:.1%})" for name, share in shares.sort_values(ascending=False).head(5).items())
    return f"{len(shares)} categories {what}: {top}"


def _detail(found: Profile, name: str, value: float, limit: float) -> str:
    labels = {
        "null_increase": "missing values jumped",
        "stuck": "one value repeats (a stuck feed)",
        "out_of_range": "values outside the reference's range (a unit or scale change?)",
        "new_category": "new categories",
        "vanished_category": "categories vanished",
        "category_shift": "the category mix shifted",
    }
    return f"{found.column}: {labels[name]}: {found.about[name]} ({name} {value:.3f} >= limit {limit:.3f})"
