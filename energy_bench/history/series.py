"""One benchmark's values over commits, per machine and metric: what change points, the site and the CLI read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from energy_bench.runs.parse import SavedRun

#: the metrics a series can follow: per call (joules, seconds), per run (accuracy, joules to the target)
METRICS = ("joules", "time", "accuracy", "joules_to_target")


@dataclass(frozen=True)
class Point:
    """One run's value of one benchmark and metric."""

    run: str  # the run's label
    value: float  # the run's mean (per call for joules and time)
    stddev: float | None  # the spread of the run's rounds (per call), None for one value per run
    rounds: int | None
    commit: str | None
    commit_time: str | None
    datetime: str | None
    branch: str | None
    source: str | None  # "measured" | "estimated"
    meter: str | None


@dataclass
class Series:
    benchmark: str
    machine: str | None
    metric: str
    points: list[Point] = field(default_factory=list)


def build_series(runs: Iterable[SavedRun], metric: str) -> list[Series]:
    """Series of ``metric`` per (benchmark, machine), in the order of ``runs`` (the store's: oldest first).

    A run without a usable value of the metric for a benchmark adds no point to it.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    series: dict[tuple[str, str | None], Series] = {}
    for run in runs:
        for name, record in run.benchmarks.items():
            samples = record.samples(metric)
            if samples is None:
                continue
            key = (name, run.machine)
            if key not in series:
                series[key] = Series(benchmark=name, machine=run.machine, metric=metric)
            series[key].points.append(
                Point(
                    run=run.label,
                    value=samples.mean,
                    stddev=samples.stddev,
                    rounds=samples.rounds,
                    commit=run.commit_id,
                    commit_time=run.commit_time,
                    datetime=run.datetime,
                    branch=run.branch,
                    source=record.source,
                    meter=record.meter,
                )
            )
    return list(series.values())
