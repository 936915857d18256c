"""Series and their change points as a person reads them: a terminal table, markdown, or JSON for other tools.

Each change says where (the commit range), what (the mean before and after), by how much (the change with its
interval), how sure (the p-value) and which way (regression or improvement); accepted ones are shown as such.
Names and commits are untrusted text: printed through :func:`~energy_bench.runs.text.printable`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict

from tabulate import tabulate

from energy_bench.history.changepoints import Change
from energy_bench.history.series import Series
from energy_bench.runs.text import format_number, printable

CHANGE_HEADERS = ["benchmark", "machine", "metric", "commits", "before -> after", "change", "p", "direction", "status"]


def _commit(sha: str | None) -> str:
    return printable(sha[:8]) if sha else "?"


def _percent(value: float) -> str:
    return "inf" if not math.isfinite(value) else f"{value * 100:+.1f}%"


def change_row(series: Series, change: Change) -> list[str]:
    interval = f"[{_percent(change.low)}, {_percent(change.high)}]"
    return [
        printable(series.benchmark),
        printable(series.machine or "?"),
        series.metric,
        f"{_commit(change.before_commit)}..{_commit(change.after_commit)}",
        f"{format_number(change.mean_before)} -> {format_number(change.mean_after)}",
        f"{_percent(change.change)} {interval}",
        f"{change.p_value:.1e}",
        change.direction,
        "accepted" if change.accepted else "open",
    ]


def point_rows(series: Series) -> list[list[str]]:
    return [
        [
            _commit(p.commit),
            printable(p.branch or ""),
            format_number(p.value) + (f" +- {format_number(p.stddev)}" if p.stddev is not None else ""),
            printable(p.source or ""),
            printable(p.run),
        ]
        for p in series.points
    ]


def format_history(found: Sequence[tuple[Series, list[Change]]], fmt: str, *, with_points: bool = False) -> str:
    if fmt == "json":
        return json.dumps(
            [
                {
                    "benchmark": s.benchmark,
                    "machine": s.machine,
                    "metric": s.metric,
                    "changes": [_finite(asdict(c)) for c in changes],
                    **({"points": [_finite(asdict(p)) for p in s.points]} if with_points else {}),
                }
                for s, changes in found
            ],
            indent=2,
        )
    table_format = "github" if fmt == "markdown" else "simple"
    rows = [change_row(s, c) for s, changes in found for c in changes]
    points = sum(len(s.points) for s, _ in found)
    open_count = sum(not c.accepted for _, changes in found for c in changes)
    summary = f"{open_count} open change point(s) in {len(found)} series ({points} runs in all)"
    parts = [tabulate(rows, CHANGE_HEADERS, tablefmt=table_format) if rows else "", summary]
    if with_points:
        for s, _ in found:
            title = f"{printable(s.benchmark)} on {printable(s.machine or '?')} ({s.metric})"
            parts.append(title + "\n" + tabulate(point_rows(s), ["commit", "branch", "value", "source", "run"],
                                                 tablefmt=table_format))  # fmt: skip
    return "\n\n".join(part for part in parts if part)


def _finite(values: dict) -> dict:
    """JSON has no infinity: an unbounded interval end is null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}
