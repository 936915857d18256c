"""A/B in one job (``energy-bench ab``): the order of the runs, and each side's runs pooled into a comparison.

Plain data in, data out: checking out trees and running pytest lives in :mod:`energy_bench.cli.ab`.

Every benchmark runs ``2 x repeat`` times, alternating sides in Thue-Morse order (``repeat`` 1: AB, 2: ABBA,
4: ABBABAAB). Each side gets the same number of runs, and a drift that is linear in time (a machine warming up,
a neighbour's job ramping up) adds the same total to both sides for any ``repeat`` >= 2; with 4, a quadratic drift
cancels too (the Prouhet-Tarry-Escott property of the Thue-Morse sequence). Each run is one pytest process, so its
mean is one sample of the between-run noise: with ``repeat`` >= 2 the two sides' run means go through the
two-sample Student t test of :func:`energy_bench.runs.compare.judge_runs`; with 1, the rounds test.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from energy_bench.runs import formats
from energy_bench.runs.compare import ALPHA, Threshold, compare_records, compatibility_problems
from energy_bench.runs.parse import SavedRun, run_from_json
from energy_bench.runs.pool import pooled_run
from energy_bench.runs.record import samples

#: the two sides, in the letters of the run order
SIDES = {"A": "base", "B": "head"}


def run_order(repeat: int) -> str:
    """The sides of one benchmark's ``2 x repeat`` runs: the Thue-Morse sequence over A (base) and B (head)."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    return "".join("AB"[bin(i).count("1") % 2] for i in range(2 * repeat))


@dataclass(frozen=True)
class PlannedRun:
    """One pytest process: one benchmark on one side; ``repetition`` counts that side's runs of it from 0."""

    benchmark: str
    side: str
    repetition: int


def schedule(benchmarks: Iterable[str], repeat: int) -> list[PlannedRun]:
    """Benchmark by benchmark, each in :func:`run_order`."""
    plan = []
    order = run_order(repeat)
    for benchmark in benchmarks:
        seen = {"base": 0, "head": 0}
        for letter in order:
            side = SIDES[letter]
            plan.append(PlannedRun(benchmark, side, seen[side]))
            seen[side] += 1
    return plan


@dataclass(frozen=True)
class Selection:
    """What both trees collected: the benchmarks to compare, and those only one side has (reported, not compared)."""

    common: list[str]
    only_base: list[str]
    only_head: list[str]


def select(base: Sequence[str], head: Sequence[str]) -> Selection:
    """Benchmarks in both trees (in the head tree's order), and the ones in one tree only."""
    base_set, head_set = set(base), set(head)
    return Selection(
        common=[b for b in head if b in base_set],
        only_base=[b for b in base if b not in head_set],
        only_head=[b for b in head if b not in base_set],
    )


def merge_repetition(results: Sequence[Mapping[str, Any]], label: str) -> SavedRun:
    """One side's ``repetition``-th run of every benchmark (one pytest-benchmark JSON each) as one run."""
    first = results[0] if results else {}
    combined = {
        "machine_info": first.get("machine_info", {}),
        "commit_info": first.get("commit_info", {}),
        "datetime": first.get("datetime"),
        "benchmarks": [entry for result in results for entry in result.get("benchmarks", [])],
    }
    return run_from_json(combined, label)


def side_runs(results: Mapping[int, Sequence[Mapping[str, Any]]], side: str) -> list[SavedRun]:
    """A side's JSON results by repetition -> one run per repetition."""
    return [merge_repetition(results[rep], f"{side} run {rep + 1}") for rep in sorted(results)]


def ab_problems(base: Sequence[SavedRun], head: Sequence[SavedRun]) -> list[str]:
    """Why the two sides' energy is not comparable (measured vs estimated, other meters or devices)."""
    problems = [
        problem
        for b in base
        for h in head
        for problem in compatibility_problems(b.benchmarks, h.benchmarks, b.machine_energy, h.machine_energy)
    ]
    return list(dict.fromkeys(problems))


def ab_report(
    base: Sequence[SavedRun],
    head: Sequence[SavedRun],
    labels: tuple[str, str],
    thresholds: tuple[Threshold, ...],
    *,
    gating: bool,
    alpha: float = ALPHA,
    notes: Sequence[str] = (),
) -> formats.CompareReport:
    """Head's runs against base's runs, pooled per benchmark (see :func:`energy_bench.runs.compare.judge_runs`)."""
    comparisons = compare_records([r.benchmarks for r in base], [r.benchmarks for r in head], thresholds, alpha)
    return formats.CompareReport(
        runs=[pooled_run(list(base), labels[0]), pooled_run(list(head), labels[1])],
        comparisons=[comparisons],
        thresholds=thresholds,
        gating=gating,
        alpha=alpha,
        notes=tuple(notes),
        baseline_runs=len(base),
        current_runs=len(head),
    )


# ---------------------------------------------------------------------------- --save


def pooled_json(runs: Sequence[SavedRun], results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A side's runs as one pytest-benchmark JSON: per benchmark, every run's rounds as per-call values.

    ``results`` are the side's raw JSON results (for machine and commit info). Each benchmark's
    ``extra_info.energy`` holds the rounds of all runs (``iterations`` 1: per call) and ``runs``, the number of runs
    with their means, so ``energy-bench compare`` reads the file like any other run.
    """
    first = results[0] if results else {}
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(run.benchmarks))
    benchmarks = []
    for name in names:
        records = [run.benchmarks[name] for run in runs if name in run.benchmarks]
        entry = _pooled_entry(name, records)
        if entry is not None:
            benchmarks.append(entry)
    return {
        "machine_info": first.get("machine_info", {}),
        "commit_info": first.get("commit_info", {}),
        "datetime": first.get("datetime"),
        "version": first.get("version"),
        "benchmarks": benchmarks,
    }


def _pooled_entry(name: str, records: Sequence[Any]) -> dict[str, Any] | None:
    measured = [r for r in records if r.joules is not None and r.joules.data and r.time is not None and r.time.data]
    if not measured:
        return None
    joules = [v for r in measured for v in r.joules.data]
    seconds = [v for r in measured for v in r.time.data]
    energy = {
        "joules": samples(joules),
        "iterations": 1,
        "joules_per_call": samples(joules),
        "seconds": samples(seconds),
        "mean_watts": sum(joules) / sum(seconds) if sum(seconds) > 0 else 0.0,
        "source": measured[-1].source,
        "meter": measured[-1].meter,
        "runs": {
            "count": len(measured),
            "joules_means": [r.joules.mean for r in measured],
            "seconds_means": [r.time.mean for r in measured],
        },
    }
    extra: dict[str, Any] = {"energy": energy}
    accuracies = [r.accuracy for r in records if r.accuracy is not None]
    if accuracies:
        extra["accuracy"] = statistics.fmean(accuracies)
    stats = {"mean": statistics.fmean(seconds), "rounds": len(seconds), "data": seconds}
    return {"name": name.rpartition("::")[2] or name, "fullname": name, "stats": stats, "extra_info": extra}
