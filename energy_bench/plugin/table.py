"""The energy table printed after pytest-benchmark's own table.

One row per benchmark with an energy record: name, mean time per call (pytest-benchmark's), mean joules per call
+- stddev, net joules (only when an idle baseline was measured), calls per round (only when some round has more
than one), mean watts, joules to the target (only with ``energy(..., until=...)``), grams CO2e and cost per call
and to the target (only with ``--energy-carbon-intensity`` / ``--energy-price``), accuracy and source, then any
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
    footprint = footprint_columns(energy for _, energy in entries)
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
    headers += [title for title, _ in footprint]
    headers += ["accuracy", "source", *extra_columns]
    rows = []
    any_estimated = False
    for bench, energy in entries:
        mean_time = getattr(bench.stats, "mean", None)
        row = [bench.name, format_duration(mean_time) if mean_time is not None else ""]
        if "error" in energy:
            blanks = int(with_net) + int(with_calls) + 1 + int(with_target) + len(footprint)
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
            row += [footprint_cell(energy, path, mark) for _, path in footprint]
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


#: carbon and cost columns: (record key, per-call field, to-target field, header per call, header to target)
FOOTPRINT_FIELDS = (
    ("carbon", "grams_per_call", "grams_to_target", "CO2e (g/call)", "to target CO2e (g)"),
    ("cost", "per_call", "to_target", "cost ({}/call)", "to target cost ({})"),
)


def footprint_columns(energies: Iterable[Mapping[str, Any]]) -> list[tuple[str, tuple[str, str]]]:
    """(header, (record key, field)) of the carbon and cost columns some record has; none when not set."""
    energies = list(energies)
    columns = []
    for key, per_call, to_target, title, target_title in FOOTPRINT_FIELDS:
        found = [e[key] for e in energies if isinstance(e.get(key), Mapping)]
        if not found:
            continue
        currency = next((str(f["currency"]) for f in found if f.get("currency")), "")
        columns.append((title.format(currency), (key, per_call)))
        if any(to_target in f for f in found):
            columns.append((target_title.format(currency), (key, to_target)))
    return columns


def footprint_cell(energy: Mapping[str, Any], path: tuple[str, str], mark: str) -> str:
    values = energy.get(path[0])
    value = values.get(path[1]) if isinstance(values, Mapping) else None
    if value is None:
        return ""
    if path[1] in ("grams_to_target", "to_target"):
        to_target = energy.get("to_target")
        if isinstance(to_target, Mapping) and not to_target.get("reached"):
            return "not reached"
    return f"{mark}{format_number(value)}"


def footprint_note(benchmarks: Iterable[Any]) -> list[str]:
    """The factors behind the carbon and cost columns, as the records carry them (one line each)."""
    notes: dict[str, None] = {}
    for bench in benchmarks:
        energy = bench.extra_info.get("energy") if isinstance(bench.extra_info, Mapping) else None
        if not isinstance(energy, Mapping):
            continue
        carbon, cost = energy.get("carbon"), energy.get("cost")
        if isinstance(carbon, Mapping):
            notes[f"CO2e at {carbon.get('intensity_g_per_kwh'):g} gCO2e/kWh (source: {carbon.get('source')})"] = None
        if isinstance(cost, Mapping):
            notes[f"cost at {cost.get('price_per_kwh'):g} {cost.get('currency')}/kWh"] = None
    return list(notes)


def energy_table_lines(
    benchmarks: Iterable[Any],
    *,
    estimate: str | None = None,
    comparison: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """The table as lines of text, with its footnotes; empty when nothing was measured.

    ``estimate``: the estimate's model in one line (:meth:`energy_bench.meters.EstimateModel.label`), for the
    footnote of estimated rows.
    """
    benchmarks = list(benchmarks)
    headers, rows, any_estimated = energy_rows(benchmarks, comparison)
    if not rows:
        return []
    lines = tabulate(rows, headers=headers, disable_numparse=True).splitlines()
    if any_estimated:
        how = f": {estimate}" if estimate else ""
        lines.append(f"{ESTIMATED_MARK} estimated, not measured{how}")
    lines += footprint_note(benchmarks)
    return lines
