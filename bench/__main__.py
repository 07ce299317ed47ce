"""Run every feature benchmark, print one table and write bench/results/features.json.

    python -m bench                      # month and year (the year takes several minutes)
    python -m bench --sizes month        # one size
    python -m bench --quick              # a week instead of the month, a month instead of the year

Each row shows our figure beside a floor (the least work giving the same result) or a peer
(another way to do it) measured in the same run, their ratio, and the target. Benchmarks
measure and print; they never assert.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import features

RESULTS = Path(__file__).resolve().parent / "results"
QUICK = {"month": "week", "year": "month"}
MB_LIMIT = 4096

Row = tuple[str, str, str, str, str, str]
Cells = tuple[str, str, str, str]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="month,year", help="comma-separated sizes: month, year (default both)")
    parser.add_argument("--quick", action="store_true", help="a week instead of a month, a month instead of a year")
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if unknown := [s for s in sizes if s not in ("month", "year")]:
        parser.error(f"unknown sizes {unknown}: choose among month, year")
    if args.quick:
        sizes = [QUICK[s] for s in sizes]

    log_dir = RESULTS / "logs"
    shutil.rmtree(log_dir, ignore_errors=True)  # only this run's logs
    started = time.perf_counter()
    results: dict[str, Any] = {"sizes": {}}
    for size in sizes:
        print(f"measuring {size} {features.SIZES[size]} ...", flush=True)
        results["sizes"][size] = features.measure_size(size, log_dir)
    print("measuring offline stores on one week ...", flush=True)
    results["offline_stores"] = features.measure_offline_stores(log_dir)

    rows = table_rows(results)
    text = format_table(rows)
    print()
    print(text)
    for line in sanity_lines(results):
        print(line)

    results["meta"] = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "quick": args.quick,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "versions": _versions(),
        "logs": str(log_dir),
    }
    columns = ("measure", "size", "ours", "floor_or_peer", "ratio", "target")
    results["table"] = [dict(zip(columns, row, strict=True)) for row in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "features.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nresults: {RESULTS / 'features.json'} (child logs in {log_dir})")
    return 0


def table_rows(results: dict[str, Any]) -> list[Row]:
    """The printed table, measure by measure, size by size."""
    rows: list[Row] = []
    for measure, parts, cells in MEASURES:
        for size, found in results["sizes"].items():
            if any(part not in found for part in parts):
                continue  # an earlier step failed; its row says why
            errors = [found[part]["error"] for part in parts if "error" in found[part]]
            rows.append((measure, size, *(("error", "-", "-", errors[0][:70]) if errors else cells(found, size))))
    rows += _stores_rows(results["offline_stores"])
    return rows


def _cells(ours: str, other: str, ratio: float | None, target: str = "-", met: bool | None = None) -> Cells:
    verdict = "" if met is None else (": ok" if met else ": MISSED")
    return ours, other, "-" if ratio is None else f"{ratio:.2f}", target + verdict


def _prepare(found: dict[str, Any], size: str) -> Cells:
    r = found["prepare"]
    return _cells(f"{r['seconds']:.1f} / {r['peak_mb']:.0f}", "-", None)


def _materialize_floor(found: dict[str, Any], size: str) -> Cells:
    r = found["materialize"]
    ratio = r["rows_per_s"] / r["floor_rows_per_s"]
    return _cells(_si(r["rows_per_s"]), _si(r["floor_rows_per_s"]), ratio, ">= 0.5", ratio >= 0.5)


def _materialize_peer(found: dict[str, Any], size: str) -> Cells:
    r = found["materialize"]
    return _cells(_si(r["rows_per_s"]), _si(r["peer_rows_per_s"]), r["rows_per_s"] / r["peer_rows_per_s"], "(peer)")


def _pit_seconds(found: dict[str, Any], size: str) -> Cells:
    ours, floor = found["pit"]["seconds"], found["pit_floor"]["seconds"]
    return _cells(f"{ours:.1f}", f"{floor:.1f}", ours / floor, "<= 3x", ours / floor <= 3)


def _pit_feast(found: dict[str, Any], size: str) -> Cells:
    ours, peer = found["pit"]["seconds"], found["pit_feast"]["seconds"]
    return _cells(f"{ours:.1f}", f"{peer:.1f}", ours / peer, "(peer)")


def _pit_peak(found: dict[str, Any], size: str) -> Cells:
    ours, floor = found["pit"]["peak_mb"], found["pit_floor"]["peak_mb"]
    if size != "year":
        return _cells(f"{ours:.0f}", f"{floor:.0f}", ours / floor)
    return _cells(f"{ours:.0f}", f"{floor:.0f}", ours / floor, f"< {MB_LIMIT}", ours < MB_LIMIT)


def _online(count: str) -> Callable[[dict[str, Any], str], Cells]:
    def cells(found: dict[str, Any], size: str) -> Cells:
        r = found["online"][count]
        ours, floor = f"{r['p50_ms']:.2f}/{r['p99_ms']:.2f}", f"{r['floor_p50_ms']:.2f}/{r['floor_p99_ms']:.2f}"
        ratio = r["p50_ms"] / r["floor_p50_ms"]
        if count == "1":
            return _cells(ours, floor, ratio, "p99 < 10 (ratio of p50)", r["p99_ms"] < 10)
        return _cells(ours, floor, ratio, "(ratio of p50)")

    return cells


MEASURES: list[tuple[str, tuple[str, ...], Callable[[dict[str, Any], str], Cells]]] = [
    ("ingest+features (s / peak MB)", ("prepare",), _prepare),
    ("materialize rows/s vs upsert latest/key", ("materialize",), _materialize_floor),
    ("materialize rows/s vs upsert every row", ("materialize",), _materialize_peer),
    ("PIT build s (DuckDB ASOF floor)", ("pit", "pit_floor"), _pit_seconds),
    ("PIT build s (Feast's DuckDB join)", ("pit", "pit_feast"), _pit_feast),
    ("PIT peak MB (DuckDB ASOF floor)", ("pit", "pit_floor"), _pit_peak),
    ("online p50/p99 ms, 1 entity", ("online",), _online("1")),
    ("online p50/p99 ms, 100 entities", ("online",), _online("100")),
]


def _stores_rows(stores: dict[str, Any]) -> list[Row]:
    """The project's ASOF store against Feast's `duckdb` and `file` stores: s / peak MB of one PIT build."""
    missing = {"error": stores.get("prepare", {}).get("error", "not run")}
    ours = stores.get("asof", missing)
    rows: list[Row] = []
    for peer in ("duckdb", "file"):
        measure, other = f"offline store asof vs {peer} (s / MB)", stores.get(peer, missing)
        if "error" in ours:
            rows.append((measure, "week", "error", "-", "-", ours["error"][:70]))
        elif "error" in other:
            rows.append((measure, "week", _seconds_mb(ours), "failed", "-", other["error"][:70]))
        else:
            ratio = f"{ours['seconds'] / other['seconds']:.2f}"
            rows.append((measure, "week", _seconds_mb(ours), _seconds_mb(other), ratio, "(peer; ratio of s)"))
    return rows


def _seconds_mb(result: dict[str, Any]) -> str:
    return f"{result['seconds']:.1f} / {result['peak_mb']:.0f}"


def _si(value: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


def format_table(rows: list[Row]) -> str:
    header: Row = ("measure", "size", "ours", "floor/peer", "ratio", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    )


def sanity_lines(results: dict[str, Any]) -> list[str]:
    """What the table does not show: row counts behind the rates, and Feast against the floor."""
    lines = []
    for size, found in results["sizes"].items():
        mat = found.get("materialize", {})
        if "rows" in mat:
            lines.append(
                f"{size}: materialized {mat['rows']} feature rows {mat['rows_by_view']} in {mat['seconds']:.2f} s "
                f"(floor {mat['floor_seconds']:.2f} s, peer {mat['peer_seconds']:.2f} s); "
                f"Feast's online tables hold {sum(mat['online_sqlite_rows'].values())} (key, feature) rows"
            )
        check = found.get("pit_check", {})
        if "rows" in check:
            diffs = ", ".join(f"{c} {v:.3g}" for c, v in check.get("max_abs_diff", {}).items())
            lines.append(
                f"{size}: PIT rows Feast {check['rows']} / floor {check['floor_rows']}, "
                f"same flights in order {check['same_flights']}; max |diff| {diffs}, "
                f"any feature {check.get('max_abs_diff_any_feature', float('nan')):.3g}; "
                f"null mismatches {check.get('null_mismatches', '-')}, "
                f"text mismatches {check.get('text_mismatches', '-')}"
            )
        online = found.get("online", {})
        if "features" in online:
            lines.append(
                f"{size}: online call reads {online['features']} features, "
                f"{online['non_null_features_1']} non-null for the sampled flight "
                f"({online['floor_non_null_features_1']} by the raw SQLite floor)"
            )
    return lines


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("feast", "duckdb", "pandas", "pyarrow", "dask")}


if __name__ == "__main__":
    sys.exit(main())
