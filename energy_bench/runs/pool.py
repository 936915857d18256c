"""Several saved runs shown as one: the pooled baseline's table row (the comparison itself uses every run)."""

from __future__ import annotations

import math

from energy_bench.runs.parse import BenchRecord, Samples, SavedRun, TargetResult


def pool_label(runs: list[SavedRun]) -> str:
    """How a baseline of several runs is named: ``3 runs (0005_a..0007_c)``; one run keeps its own label."""
    if len(runs) == 1:
        return runs[0].label
    return f"{len(runs)} runs ({runs[0].label}..{runs[-1].label})"


def _pooled_samples(samples: list[Samples]) -> Samples | None:
    """Display summary of one metric over runs: the mean of the run means, their standard deviation across runs."""
    if not samples:
        return None
    if len(samples) == 1:
        return samples[0]
    means = [s.mean for s in samples]
    mean = sum(means) / len(means)
    spread = math.sqrt(sum((m - mean) ** 2 for m in means) / (len(means) - 1))
    rounds = [s.rounds for s in samples]
    return Samples(mean=mean, stddev=spread, rounds=sum(rounds) if all(r is not None for r in rounds) else None)


def pooled_record(records: list[BenchRecord]) -> BenchRecord:
    """One benchmark over several runs, for tables: means of run means, stddev across runs, no per-round data.

    The comparison itself works on the runs (see :mod:`energy_bench.runs.compare`); this is what a table shows.
    """
    if len(records) == 1:
        return records[0]
    last = records[-1]
    accuracies = [r.accuracy for r in records if r.accuracy is not None]
    targets = [r.to_target for r in records if r.to_target is not None]
    reached = [t.joules for t in targets if t.reached and t.joules is not None]
    to_target = None
    if targets:
        to_target = TargetResult(
            reached=all(t.reached for t in targets),
            rounds=max((t.rounds for t in targets if t.rounds is not None), default=None),
            max_rounds=targets[-1].max_rounds,
            joules=sum(reached) / len(reached) if reached else None,
            metric=targets[-1].metric,
            target=targets[-1].target,
            direction=targets[-1].direction,
        )
    return BenchRecord(
        fullname=last.fullname,
        joules=_pooled_samples([r.joules for r in records if r.joules is not None]),
        net_joules=_pooled_samples([r.net_joules for r in records if r.net_joules is not None]),
        time=_pooled_samples([r.time for r in records if r.time is not None]),
        accuracy=sum(accuracies) / len(accuracies) if accuracies else None,
        source=last.source,
        meter=last.meter,
        error=last.error,
        has_energy=any(r.has_energy for r in records),
        to_target=to_target,
    )


def pooled_run(runs: list[SavedRun], label: str | None = None) -> SavedRun:
    """Several runs shown as one (see :func:`pooled_record`); the newest run's machine and commit describe it."""
    if len(runs) == 1 and label is None:
        return runs[0]
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(run.benchmarks))
    benchmarks = {
        name: pooled_record([run.benchmarks[name] for run in runs if name in run.benchmarks]) for name in names
    }
    last = runs[-1]
    return SavedRun(
        label=label or pool_label(runs),
        benchmarks=benchmarks,
        commit_id=last.commit_id,
        commit_time=last.commit_time,
        datetime=last.datetime,
        machine_energy=last.machine_energy,
        branch=last.branch,
        machine=last.machine,
        notes=[note for run in runs for note in run.notes],
    )
