"""The energy table printed after pytest-benchmark's own table.

One row per benchmark with an energy record: name, mean time, mean joules +- stddev, net
joules (only when an idle baseline was measured), mean watts, accuracy and source, then any
columns the comparison gate added. Estimated values carry a ``~`` and a footnote says how they
were estimated; a benchmark whose meter failed shows ``failed: <reason>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tabulate import tabulate

from energy_bench.runs.text import format_accuracy, format_duration, format_number

ESTIMATED_MARK = "~"
TITLE = "energy-bench: energy per round"


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
    extra_columns: list[str] = []
    for bench, _ in entries:
        for column in comparison.get(bench.fullname, {}):
            if column not in extra_columns:
                extra_columns.append(column)

    headers = ["name", "time (mean)", "energy (J, mean +- stddev)"]
    headers += ["net energy (J)"] if with_net else []
    headers += ["power (W)", "accuracy", "source", *extra_columns]
    rows = []
    any_estimated = False
    for bench, energy in entries:
        mean_time = getattr(bench.stats, "mean", None)
        row = [bench.name, format_duration(mean_time) if mean_time is not None else ""]
        if "error" in energy:
            row += [f"failed: {energy['error']}"] + ([""] if with_net else []) + [""]
        else:
            mark = ESTIMATED_MARK if energy.get("source") == "estimated" else ""
            any_estimated = any_estimated or bool(mark)
            joules = energy["joules"]
            row.append(f"{mark}{format_number(joules['mean'])} +- {format_number(joules['stddev'])}")
            if with_net:
                net = energy.get("net_joules")
                row.append(f"{mark}{format_number(net['mean'])}" if net else "")
            row.append(f"{mark}{format_number(energy['mean_watts'])}")
        row += [format_accuracy(bench.extra_info.get("accuracy")), str(energy.get("source", ""))]
        columns = comparison.get(bench.fullname, {})
        row += ["" if columns.get(c) is None else str(columns.get(c)) for c in extra_columns]
        rows.append(row)
    return headers, rows, any_estimated


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
