"""The energy table printed after pytest-benchmark's own table.

One row per benchmark with an energy record: name, mean time per call (pytest-benchmark's), mean joules per call
+- stddev, net joules (only when an idle baseline was measured), calls per round (only when some round has more
than one), mean watts, joules to the target (only with ``energy(..., until=...)``), accuracy and source, then any
columns the comparison gate added. Estimated values carry a ``~`` and a footnote says how they
were estimated; a benchmark whose meter failed shows ``failed: <reason>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tabulate import tabulate

from energy_bench.runs.text import format_accuracy, format_duration, format_number

ESTIMATED_MARK = "~"
TITLE = "energy-bench: energy per call"


def energy_rows(
    benchmarks: Iterable[Any], comparison: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[list[str], list[list[str]], bool]:
    """Headers, rows and whether any row is estimated.

    ``benchmarks`` are pytest-benchmark's Metadata objects (``name``, ``fullname``, ``stats``,
    ``extra_info``); ``comparison`` maps a fullname to extra columns in order.
    """
    comparison = comparison or {}
    entries = []
    for bench in benchmarks:
        energy = bench.extra_info.get("energy") if isinstance(bench.extra_info, Mapping) else None
        if isinstance(energy, Mapping):
            entries.append((bench, energy))
    with_net = any("net_joules" in energy for _, energy in entries)
    with_calls = any(energy.get("iterations", 1) != 1 for _, energy in entries)
    with_target = any("to_target" in energy for _, energy in entries)
    extra_columns: list[str] = []
    for bench, _ in entries:
        for column in comparison.get(bench.fullname, {}):
            if column not in extra_columns:
                extra_columns.append(column)

    headers = ["name", "time (mean)", "energy (J/call, mean +- stddev)"]
    headers += ["net energy (J/call)"] if with_net else []
    headers += ["calls/round"] if with_calls else []
    headers += ["power (W)"]
    headers += ["to target (J)"] if with_target else []
    headers += ["accuracy", "source", *extra_columns]
    rows = []
    any_estimated = False
    for bench, energy in entries:
        mean_time = getattr(bench.stats, "mean", None)
        row = [bench.name, format_duration(mean_time) if mean_time is not None else ""]
        if "error" in energy:
            blanks = int(with_net) + int(with_calls) + 1 + int(with_target)
            row += [f"failed: {energy['error']}", *[""] * blanks]
        else:
            mark = ESTIMATED_MARK if energy.get("source") == "estimated" else ""
            any_estimated = any_estimated or bool(mark)
            calls = energy.get("iterations", 1)
            joules = energy.get("joules_per_call", energy["joules"])
            row.append(f"{mark}{format_number(joules['mean'])} +- {format_number(joules['stddev'])}")
            if with_net:
                net = energy.get("net_joules")
                row.append(f"{mark}{format_number(net['mean'] / calls)}" if net else "")
            if with_calls:
                row.append(str(calls))
            row.append(f"{mark}{format_number(energy['mean_watts'])}")
            if with_target:
                row.append(target_cell(energy.get("to_target"), mark))
        row += [format_accuracy(bench.extra_info.get("accuracy")), str(energy.get("source", ""))]
        columns = comparison.get(bench.fullname, {})
        row += ["" if columns.get(c) is None else str(columns.get(c)) for c in extra_columns]
        rows.append(row)
    return headers, rows, any_estimated


def target_cell(to_target: Mapping[str, Any] | None, mark: str) -> str:
    """Joules to the target and the rounds it took, or that it was not reached in the rounds allowed."""
    if not to_target:
        return ""
    rounds = to_target.get("rounds")
    if to_target.get("reached"):
        return f"{mark}{format_number(to_target.get('joules'))} ({rounds} rounds)"
    return f"not reached ({rounds} rounds)"


def energy_table_lines(
    benchmarks: Iterable[Any], *, cpu_watts: float, comparison: Mapping[str, Mapping[str, Any]] | None = None
) -> list[str]:
    """The table as lines of text, with its footnote; empty when nothing was measured."""
    headers, rows, any_estimated = energy_rows(benchmarks, comparison)
    if not rows:
        return []
    lines = tabulate(rows, headers=headers, disable_numparse=True).splitlines()
    if any_estimated:
        lines.append(f"{ESTIMATED_MARK} estimated from CPU time x {cpu_watts:g} W/core, not measured")
    return lines
