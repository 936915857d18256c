"""Comparison and history tables: text table, markdown (for a pull request), csv and json."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from energy_bench.runs.compare import (
    ALPHA,
    BenchmarkComparison,
    Threshold,
    change_percent,
    describe_test,
    min_pvalue,
    regression_lines,
)
from energy_bench.runs.parse import BenchRecord, Samples, SavedRun
from energy_bench.runs.text import (
    format_accuracy,
    format_change,
    format_number,
    format_percent,
    format_points,
    format_ratio,
    printable,
)

FORMATS = ("table", "markdown", "csv", "json")


# ---------------------------------------------------------------------------- escaping
# Names, labels and notes come from files anyone can write: one cell stays one cell, one line stays one line.


def markdown_cell(text: str) -> str:
    """Text for a cell of a GitHub table: one line (control characters escaped), pipes escaped."""
    return printable(str(text)).replace("|", "\\|")


def markdown_code(text: str) -> str:
    """A name as inline code in a GitHub table cell, whatever backticks, pipes or newlines it holds."""
    text = markdown_cell(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _plain(value: Any) -> Any:
    """A JSON value without NaN or Infinity (which strict JSON has no token for): None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------- the gate's columns


def gate_columns(comparison: BenchmarkComparison) -> dict[str, str]:
    """Columns the gate adds to the energy table of the running session (printable values)."""
    joules = comparison.metrics.get("joules")
    accuracy = comparison.metrics.get("accuracy")
    baseline = comparison.baseline.joules if comparison.baseline else None
    baseline_joules = joules.baseline if joules else (baseline.mean if baseline else None)  # pooled: mean of runs
    change = format_change(joules.baseline, joules.current, joules.change_percent, "J") if joules else ""
    return {
        "baseline J": format_number(baseline_joules),
        "change": change,
        "accuracy change": format_points(accuracy.change_points if accuracy else None),
        "verdict": comparison.verdict,
    }


# ---------------------------------------------------------------------------- compare


@dataclass
class CompareReport:
    """Runs compared with the first one: ``comparisons[i]`` is run ``i + 1`` against run 0.

    A run here may stand for several (``storage.pooled_run``): ``baseline_runs`` and ``current_runs`` say how many
    runs each side pooled, which decides the test the report names.
    """

    runs: list[SavedRun]
    comparisons: list[list[BenchmarkComparison]]
    thresholds: tuple[Threshold, ...]
    gating: bool
    alpha: float = ALPHA
    notes: tuple[str, ...] = ()
    baseline_runs: int = 1
    current_runs: int = 1

    @property
    def test(self) -> str:
        return describe_test(self.baseline_runs, self.current_runs, self.alpha)

    @property
    def baseline(self) -> SavedRun:
        return self.runs[0]

    @property
    def regressions(self) -> list[str]:
        lines = []
        for run, comparisons in zip(self.runs[1:], self.comparisons):
            prefix = f"{run.label}: " if len(self.runs) > 2 else ""
            lines.extend(prefix + line for line in regression_lines(comparisons))
        return lines

    def fullnames(self) -> list[str]:
        names: dict[str, None] = {}
        for run in self.runs:
            names.update(dict.fromkeys(run.benchmarks))
        return list(names)


def _metric_fields(record: BenchRecord | None) -> dict[str, Any]:
    joules = record.joules if record else None
    time = record.time if record else None
    target = record.to_target if record else None
    return {
        "joules": joules.mean if joules else None,
        "joules_stddev": joules.stddev if joules else None,
        "rounds": (joules.rounds if joules else None) or (time.rounds if time else None),
        "time": time.mean if time else None,
        "accuracy": record.accuracy if record else None,
        "to_target": _target_text(target),
        "joules_to_target": target.joules if target and target.reached else None,
    }


def _target_text(target) -> str:
    """``reached (7 rounds)`` or ``not reached (10 rounds)``; empty without a target."""
    if target is None:
        return ""
    rounds = "" if target.rounds is None else f" ({target.rounds} rounds)"
    return ("reached" if target.reached else "not reached") + rounds


def _unit_ratio(samples: Samples | None) -> float | None:
    """The baseline's own ratio: 1, where ratios to it exist (a positive mean)."""
    return 1.0 if samples is not None and samples.mean > 0 else None


def compare_rows(report: CompareReport) -> list[dict[str, Any]]:
    """Plain rows: one per benchmark and run, ratios against the first run."""
    by_run = [{c.fullname: c for c in comparisons} for comparisons in report.comparisons]
    rows = []
    for name in report.fullnames():
        base_record = report.baseline.benchmarks.get(name)
        rows.append(
            {
                "benchmark": name,
                "run": report.baseline.label,
                **_metric_fields(base_record),
                "joules_ratio": _unit_ratio(base_record.joules if base_record else None),
                "time_ratio": _unit_ratio(base_record.time if base_record else None),
                "joules_to_target_ratio": _unit_ratio(base_record.samples("joules_to_target") if base_record else None),
                "accuracy_change_pt": None,
                "joules_p": None,
                "time_p": None,
                "verdict": "baseline" if base_record else "absent",
                "notes": "",
            }
        )
        for run, comparisons in zip(report.runs[1:], by_run):
            comparison = comparisons.get(name)
            record = run.benchmarks.get(name)
            metrics = comparison.metrics if comparison else {}
            rows.append(
                {
                    "benchmark": name,
                    "run": run.label,
                    **_metric_fields(record),
                    "joules_ratio": metrics["joules"].ratio if "joules" in metrics else None,
                    "time_ratio": metrics["time"].ratio if "time" in metrics else None,
                    "joules_to_target_ratio": _target_ratio(metrics.get("joules_to_target")),
                    "accuracy_change_pt": metrics["accuracy"].change_points if "accuracy" in metrics else None,
                    "joules_p": metrics["joules"].p_worse if "joules" in metrics else None,
                    "time_p": metrics["time"].p_worse if "time" in metrics else None,
                    "verdict": comparison.verdict if comparison else "absent",
                    "notes": "; ".join(comparison.notes) if comparison else "",
                }
            )
    return rows


def _target_ratio(comparison) -> float | None:
    """Joules to the target, current / baseline; None when one side did not reach it (the verdict says so)."""
    return None if comparison is None or comparison.reason else comparison.ratio


_DISPLAY = {
    "run": ("run", printable),
    "joules": ("joules (J)", format_number),
    "joules_ratio": ("J ratio", format_ratio),
    "time": ("time (s)", format_number),
    "time_ratio": ("time ratio", format_ratio),
    "accuracy": ("accuracy", format_accuracy),
    "accuracy_change_pt": ("accuracy change", format_points),
    "to_target": ("target", str),
    "joules_to_target": ("J to target", format_number),
    "joules_to_target_ratio": ("to-target ratio", format_ratio),
    "verdict": ("verdict", str),
    "notes": ("notes", printable),
}


def _display_rows(rows: list[dict[str, Any]], keys: Iterable[str]) -> list[list[str]]:
    return [[_DISPLAY[k][1](row[k]) for k in keys] for row in rows]


def verdict_line(report: CompareReport) -> str:
    limits = ", ".join(str(t) for t in report.thresholds)
    test = report.test
    others = printable(", ".join(run.label for run in report.runs[1:]))
    baseline = printable(report.baseline.label)
    count = len(report.regressions)
    if count and report.gating:
        return f"{count} regression(s) in {others} vs {baseline} ({limits}; {test})"
    if count:
        return f"{count} change(s) beyond {limits} in {others} vs {baseline} (not gating; {test})"
    return f"No regressions in {others} vs {baseline} ({limits}; {test})"


def legend(report: CompareReport) -> str:
    alpha = f"alpha {report.alpha:g}"
    target = ""
    if any(t.metric == "joules_to_target" for t in report.thresholds):
        target = " A run that missed a target every baseline run reached is a regression by itself."
    if report.baseline_runs >= 2:
        if report.current_runs >= 2:
            test = (
                f"significant in a one-sided two-sample Student t test on the run means ({report.baseline_runs} "
                f"baseline and {report.current_runs} current runs, pooled variance, {alpha})"
            )
        else:
            test = (
                f"beyond a one-sided Student t prediction bound for one new run, built from the means of "
                f"{report.baseline_runs} baseline runs and their spread ({alpha})"
            )
        guard = "outside the range of the baseline runs' means"
        if report.current_runs >= 2 and min_pvalue(report.baseline_runs, report.current_runs) <= report.alpha:
            guard += " or ranked worse than them (one-sided Mann-Whitney U on the run means)"
        return (
            f"A regression is beyond its threshold, {test}, and {guard}; "
            f"each run counts as one value (its mean per call; accuracy and joules to a target are one value per "
            f"run anyway). Baseline values are means over its runs; ratios are against "
            f"{printable(report.baseline.label)}." + target
        )
    return (
        f"A regression is beyond its threshold and, for joules and time, significant in a one-sided "
        f"Mann-Whitney U test on the per-round samples ({alpha}); accuracy and joules to a target are one value "
        f"per run, so their threshold alone decides. Between-run noise is unknown with one baseline run: a whole "
        f"run that is slower or faster (another session, a busier machine) can read as significant; pool several "
        f"saved runs as the baseline (last:N). Ratios are against {printable(report.baseline.label)}." + target
    )


def render_compare(report: CompareReport, fmt: str) -> str:
    rows = compare_rows(report)
    if fmt == "json":
        return json.dumps(
            {
                "baseline": report.baseline.label,
                "runs": [run.label for run in report.runs],
                "thresholds": [str(t) for t in report.thresholds],
                "gating": report.gating,
                "alpha": report.alpha,
                "test": report.test,
                "baseline_runs": report.baseline_runs,
                "current_runs": report.current_runs,
                "regressions": report.regressions,
                "notes": list(report.notes),
                "rows": [{k: _plain(v) for k, v in row.items()} for row in rows],
            },
            indent=2,
        )
    if fmt == "csv":
        return _csv(rows)
    keys = [k for k in _DISPLAY if any(row.get(k) not in (None, "") for row in rows) or k in ("run", "verdict")]
    if fmt == "markdown":
        lines = ["## Energy comparison", "", f"**{verdict_line(report)}**", ""]
        if report.regressions:
            lines += [f"- {printable(line)}" for line in report.regressions] + [""]
        table = [
            [markdown_code(row["benchmark"]), *map(markdown_cell, cells)]
            for row, cells in zip(rows, _display_rows(rows, keys))
        ]
        lines.append(
            tabulate(
                table, headers=["benchmark", *(_DISPLAY[k][0] for k in keys)], tablefmt="github", disable_numparse=True
            )
        )
        lines += ["", legend(report), ""] + [f"> {printable(note)}" for note in report.notes]
        return "\n".join(lines).rstrip() + "\n"
    if fmt == "table":
        blocks = []
        for name in report.fullnames():
            mine = [row for row in rows if row["benchmark"] == name]
            blocks.append(
                printable(name)
                + "\n"
                + tabulate(
                    _display_rows(mine, keys),
                    headers=[_DISPLAY[k][0] for k in keys],
                    tablefmt="simple",
                    disable_numparse=True,
                )
            )
        tail = [verdict_line(report), *report.regressions, legend(report), *report.notes]
        tail = [printable(line) for line in tail]
        return "\n\n".join(blocks) + "\n\n" + "\n".join(tail) + "\n"
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        cells = [{k: _csv_value(v) for k, v in row.items()} for row in rows]
        # The csv module quotes fields holding a newline, the separator or a quote, but not a lone carriage return
        # when lines end in "\n": quote every field then, so that no name splits a row.
        stray_cr = any(isinstance(v, str) and "\r" in v for row in cells for v in row.values())
        writer = csv.DictWriter(
            out,
            fieldnames=list(rows[0]),
            lineterminator="\n",
            quoting=csv.QUOTE_ALL if stray_cr else csv.QUOTE_MINIMAL,
        )
        writer.writeheader()
        writer.writerows(cells)
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"  # 1.005, not 1.0050000000000001
    return value


# ---------------------------------------------------------------------------- history


def history_rows(runs: list[SavedRun]) -> list[dict[str, Any]]:
    """Each benchmark over ``runs`` (already in commit order): values, change vs first and previous run."""
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(run.benchmarks))
    rows = []
    for name in names:
        first = previous = None
        for run in runs:
            record = run.benchmarks.get(name)
            if record is None:
                continue
            joules = record.joules.mean if record.joules else None
            rows.append(
                {
                    "benchmark": name,
                    "run": run.label,
                    "commit": (run.commit_id or "")[:10],
                    "datetime": run.datetime or "",
                    **_metric_fields(record),
                    "joules_vs_first_pct": change_percent(first, joules),
                    "joules_vs_previous_pct": change_percent(previous, joules),
                }
            )
            if joules is not None:
                first = joules if first is None else first
                previous = joules
    return rows


_HISTORY = {
    "run": ("run", printable),
    "commit": ("commit", printable),
    "datetime": ("saved", lambda v: printable(v[:19])),
    "joules": ("joules (J)", format_number),
    "joules_vs_first_pct": ("vs first", format_percent),
    "joules_vs_previous_pct": ("vs previous", format_percent),
    "time": ("time (s)", format_number),
    "accuracy": ("accuracy", format_accuracy),
}


def _mark_zero_references(rows: list[dict[str, Any]], cells: list[list[str]]) -> None:
    """``n/a`` in the printed "vs first" / "vs previous" cells whose reference is 0 J and whose joules differ
    (no percentage of zero; the joules column shows both values). The data rows keep None."""
    columns = {key: list(_HISTORY).index(key) for key in ("joules_vs_first_pct", "joules_vs_previous_pct")}
    first: dict[str, float] = {}
    previous: dict[str, float] = {}
    for row, row_cells in zip(rows, cells):
        name, joules = row["benchmark"], row["joules"]
        if joules is None:
            continue
        for key, reference in (
            ("joules_vs_first_pct", first.get(name)),
            ("joules_vs_previous_pct", previous.get(name)),
        ):
            if reference == 0 and joules != 0:
                row_cells[columns[key]] = format_change(0.0, joules, None, "J")
        first.setdefault(name, joules)
        previous[name] = joules


def render_history(runs: list[SavedRun], fmt: str, notes: Iterable[str] = ()) -> str:
    rows = history_rows(runs)
    notes = list(notes)
    if fmt == "json":
        rows = [{k: _plain(v) for k, v in row.items()} for row in rows]
        return json.dumps({"runs": [run.label for run in runs], "notes": notes, "rows": rows}, indent=2)
    if fmt == "csv":
        return _csv(rows)
    headers = [title for title, _ in _HISTORY.values()]
    cells = [[show(row[key]) for key, (_, show) in _HISTORY.items()] for row in rows]
    _mark_zero_references(rows, cells)
    if fmt == "markdown":
        table = [[markdown_code(row["benchmark"]), *map(markdown_cell, c)] for row, c in zip(rows, cells)]
        lines = [
            "## Energy history",
            "",
            f"{len(runs)} saved runs in commit order.",
            "",
            tabulate(table, headers=["benchmark", *headers], tablefmt="github", disable_numparse=True),
            "",
        ]
        return "\n".join(lines + [f"> {printable(note)}" for note in notes]).rstrip() + "\n"
    if fmt == "table":
        blocks = []
        for name in dict.fromkeys(row["benchmark"] for row in rows):
            mine = [c for row, c in zip(rows, cells) if row["benchmark"] == name]
            table = tabulate(mine, headers=headers, tablefmt="simple", disable_numparse=True)
            blocks.append(printable(name) + "\n" + table)
        return "\n\n".join(blocks + [printable(note) for note in notes]) + "\n"
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def render_report(run: SavedRun, fmt: str) -> str:
    """Energy table of one saved run."""
    rows = [
        {
            "benchmark": name,
            **_metric_fields(record),
            "source": record.source or "",
            "meter": record.meter or "",
            "notes": "; ".join(record.notes + ([record.error] if record.error else [])),
        }
        for name, record in run.benchmarks.items()
    ]
    if fmt == "json":
        rows = [{k: _plain(v) for k, v in row.items()} for row in rows]
        return json.dumps({"run": run.label, "notes": run.notes, "rows": rows}, indent=2)
    if fmt == "csv":
        return _csv(rows)
    if fmt not in ("markdown", "table"):
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    cell = markdown_cell if fmt == "markdown" else printable
    table = [
        [
            markdown_code(row["benchmark"]) if fmt == "markdown" else printable(row["benchmark"]),
            format_number(row["joules"]),
            format_number(row["joules_stddev"]),
            str(row["rounds"] or ""),
            format_number(row["time"]),
            format_accuracy(row["accuracy"]),
            cell(row["meter"]),
            cell(row["source"]),
            cell(row["notes"]),
        ]
        for row in rows
    ]
    headers = ["benchmark", "joules (J)", "stddev (J)", "rounds", "time (s)", "accuracy", "meter", "source", "notes"]
    tablefmt = "github" if fmt == "markdown" else "simple"
    label = printable(run.label)
    head = f"## Energy of {label}\n\n" if fmt == "markdown" else f"{label}\n"
    return (
        head
        + tabulate(table, headers=headers, tablefmt=tablefmt, disable_numparse=True)
        + "\n"
        + "".join(f"\n{printable(n)}" for n in run.notes)
    )
