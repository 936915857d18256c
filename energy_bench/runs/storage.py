"""Loading saved runs: pytest-benchmark storage folders and JSON files, old files too.

A run is pytest-benchmark's own JSON; energy-bench's record lives in each benchmark's
``extra_info`` (see :mod:`energy_bench.runs.record`). Files saved before energy-bench, or
without per-round data, still load: what they lack is said in :attr:`SavedRun.notes`.
Files that are not runs at all raise :class:`RunLoadError`, whose message names the file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_benchmark.utils import get_machine_id

from energy_bench.errors import EnergyBenchError

DEFAULT_STORAGE = "./.benchmarks"
RUN_GLOB = "[0-9][0-9][0-9][0-9]_*.json"
_RUN_NUMBER = re.compile(r"^(\d{4})_")
#: ``last:N``: the N newest saved runs of this machine, pooled as one baseline
_LAST = re.compile(r"^last:(?P<count>[0-9]{1,6})$")


class RunLoadError(EnergyBenchError):
    """A file that cannot be used as a saved run; the message names it and says why."""


class RunNotFound(EnergyBenchError, LookupError):
    """A run asked for by number, path or commit that does not exist; the message says what was looked for."""


class RunSpecError(EnergyBenchError, ValueError):
    """A malformed run spec (e.g. ``last:0``); the message is one line fit for a usage error."""


@dataclass(frozen=True)
class Samples:
    """One metric of one benchmark: summary numbers and, when saved, the per-round values."""

    mean: float
    stddev: float | None = None
    rounds: int | None = None
    data: tuple[float, ...] | None = None


@dataclass(frozen=True)
class TargetResult:
    """Energy to a target (``extra_info.energy.to_target``): whether it was reached, in how many rounds, at what cost.

    ``joules`` and ``seconds`` are cumulative over the rounds run: to the target when ``reached``, else all rounds.
    One value per run (not per call).
    """

    reached: bool
    rounds: int | None = None
    max_rounds: int | None = None
    joules: float | None = None
    seconds: float | None = None
    metric: str | None = None
    target: float | None = None
    direction: str | None = None


@dataclass
class BenchRecord:
    """What the comparison needs of one benchmark of one run."""

    fullname: str
    joules: Samples | None = None
    net_joules: Samples | None = None
    time: Samples | None = None
    accuracy: float | None = None
    source: str | None = None
    meter: str | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    to_target: TargetResult | None = None

    def samples(self, metric: str) -> Samples | None:
        """One metric's samples; accuracy and joules to the target are one value per run (no rounds)."""
        if metric == "accuracy":
            return None if self.accuracy is None else Samples(mean=self.accuracy)
        if metric == "joules_to_target":
            target = self.to_target
            return Samples(mean=target.joules) if target and target.reached and target.joules is not None else None
        return getattr(self, metric)


@dataclass
class SavedRun:
    label: str
    benchmarks: dict[str, BenchRecord]
    path: Path | None = None
    number: int | None = None
    commit_id: str | None = None
    commit_time: str | None = None
    datetime: str | None = None
    machine_energy: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def order_key(self) -> tuple[str, str, int]:
        """Commit order: commit time, then save time, then run number."""
        return (self.commit_time or self.datetime or "", self.datetime or "", self.number or 0)


# ---------------------------------------------------------------------------- records


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def samples_from(stats: Any) -> Samples | None:
    """Samples from a ``{mean, stddev, rounds, data}`` dict (our record or pytest-benchmark's stats)."""
    if not isinstance(stats, Mapping):
        return None
    data = stats.get("data")
    values = None
    if isinstance(data, list) and data:
        numbers = [_number(v) for v in data]
        if all(n is not None for n in numbers):
            values = tuple(numbers)
    mean = _number(stats.get("mean"))
    if mean is None and values:
        mean = sum(values) / len(values)
    if mean is None:
        return None
    rounds = stats.get("rounds")
    rounds = (
        int(rounds) if isinstance(rounds, int) and not isinstance(rounds, bool) else (len(values) if values else None)
    )
    return Samples(mean=mean, stddev=_number(stats.get("stddev")), rounds=rounds, data=values)


def per_call(samples: Samples | None, iterations: int) -> Samples | None:
    """Per-round samples of rounds of ``iterations`` calls, as per-call samples."""
    if samples is None or iterations == 1:
        return samples
    return Samples(
        mean=samples.mean / iterations,
        stddev=None if samples.stddev is None else samples.stddev / iterations,
        rounds=samples.rounds,
        data=None if samples.data is None else tuple(v / iterations for v in samples.data),
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def target_from(to_target: Any) -> TargetResult | None:
    """A :class:`TargetResult` from ``extra_info.energy.to_target``; None when absent or without ``reached``."""
    if not isinstance(to_target, Mapping) or not isinstance(to_target.get("reached"), bool):
        return None
    return TargetResult(
        reached=to_target["reached"],
        rounds=_count(to_target.get("rounds")),
        max_rounds=_count(to_target.get("max_rounds")),
        joules=_number(to_target.get("joules")),
        seconds=_number(to_target.get("seconds")),
        metric=to_target.get("metric") if isinstance(to_target.get("metric"), str) else None,
        target=_number(to_target.get("target")),
        direction=to_target.get("direction") if isinstance(to_target.get("direction"), str) else None,
    )


def record_from(fullname: str, extra_info: Any, stats: Any) -> BenchRecord:
    """A :class:`BenchRecord` from a benchmark's ``extra_info`` and pytest-benchmark ``stats``.

    Works the same for a saved JSON entry and for the running session's results.
    """
    record = BenchRecord(fullname=fullname)
    extra = extra_info if isinstance(extra_info, Mapping) else {}
    energy = extra.get("energy")
    if isinstance(energy, Mapping):
        # Per call, so that runs with other calls per round compare (records before iterations: one call a round).
        iterations = energy.get("iterations", 1)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            iterations = 1
        record.joules = per_call(samples_from(energy.get("joules")), iterations)
        record.net_joules = per_call(samples_from(energy.get("net_joules")), iterations)
        record.time = per_call(samples_from(energy.get("seconds")), iterations)
        record.to_target = target_from(energy.get("to_target"))
        record.source = energy.get("source") if isinstance(energy.get("source"), str) else None
        record.meter = energy.get("meter") if isinstance(energy.get("meter"), str) else None
        if energy.get("error"):
            record.error = str(energy["error"])
        if record.joules is None and record.error is None:
            record.notes.append("energy record without joules")
    else:
        record.notes.append("no energy record (saved without energy-bench)")
    if record.time is None:
        # Old records: wall time from pytest-benchmark's stats (per-round only with --benchmark-save-data).
        record.time = samples_from(stats)
    accuracy = _number(extra.get("accuracy"))
    record.accuracy = accuracy
    return record


def run_from_json(data: Any, label: str, path: Path | None = None) -> SavedRun:
    """A :class:`SavedRun` from parsed JSON; :class:`RunLoadError` when it is not a pytest-benchmark run."""
    if not isinstance(data, Mapping) or not isinstance(data.get("benchmarks"), list):
        raise RunLoadError(f"{label}: not a pytest-benchmark run (no 'benchmarks' list)")
    benchmarks: dict[str, BenchRecord] = {}
    for entry in data["benchmarks"]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("fullname"), str):
            raise RunLoadError(f"{label}: not a pytest-benchmark run (a benchmark without 'fullname')")
        benchmarks[entry["fullname"]] = record_from(entry["fullname"], entry.get("extra_info"), entry.get("stats"))
    commit = data.get("commit_info") if isinstance(data.get("commit_info"), Mapping) else {}
    machine = data.get("machine_info") if isinstance(data.get("machine_info"), Mapping) else {}
    match = _RUN_NUMBER.match(path.name) if path else None
    run = SavedRun(
        label=label,
        benchmarks=benchmarks,
        path=path,
        number=int(match.group(1)) if match else None,
        commit_id=commit.get("id") if isinstance(commit.get("id"), str) else None,
        commit_time=commit.get("time") if isinstance(commit.get("time"), str) else None,
        datetime=data.get("datetime") if isinstance(data.get("datetime"), str) else None,
        machine_energy=machine.get("energy") if isinstance(machine.get("energy"), Mapping) else None,
    )
    run.notes.extend(_run_notes(run))
    return run


def _run_notes(run: SavedRun) -> list[str]:
    records = list(run.benchmarks.values())
    notes = []
    no_energy = [r for r in records if r.joules is None and r.error is None]
    if records and len(no_energy) == len(records):
        notes.append(f"{run.label}: no energy records (saved without energy-bench): time only")
    elif no_energy:
        notes.append(f"{run.label}: {len(no_energy)} benchmark(s) without an energy record")
    no_rounds = [
        r for r in records if (r.joules or r.time) and not ((r.joules and r.joules.data) or (r.time and r.time.data))
    ]
    if no_rounds:
        notes.append(f"{run.label}: no per-round data for {len(no_rounds)} benchmark(s): threshold only")
    return notes


def load_run_file(path: Path | str, label: str | None = None) -> SavedRun:
    """Read one JSON file; :class:`RunLoadError` (naming the file) when unreadable, truncated or foreign."""
    path = Path(path)
    label = label or run_label(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RunLoadError(f"{path}: cannot read ({reason})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RunLoadError(f"{path}: truncated or invalid JSON ({exc})") from None
    try:
        return run_from_json(data, label, path)
    except RunLoadError as exc:
        raise RunLoadError(f"{path}: {str(exc).split(': ', 1)[1]}") from None


def run_label(path: Path) -> str:
    """Short name of a run file, as pytest-benchmark shows it: the file name without ``.json``."""
    return path.name[:-5] if path.name.endswith(".json") else path.name


def load_runs(paths: Iterable[Path], on_error: Callable[[str], None]) -> list[SavedRun]:
    """Load every file that is a run; report each one that is not through ``on_error`` and skip it."""
    runs = []
    for path in paths:
        try:
            runs.append(load_run_file(path))
        except RunLoadError as exc:
            on_error(str(exc))
    return runs


# ---------------------------------------------------------------------------- storage


def storage_path(storage: str | None) -> Path:
    """The folder behind a ``--benchmark-storage`` value: ``file://PATH`` or a plain path."""
    storage = storage or DEFAULT_STORAGE
    if "://" in storage:
        scheme, _, rest = storage.partition("://")
        if scheme != "file":
            raise ValueError(f"storage {storage!r}: only file:// storage is supported by energy-bench")
        storage = rest
    return Path(storage)


@dataclass(frozen=True)
class Storage:
    """Saved runs under ``<root>/<machine_id>/NNNN_<name>.json`` (pytest-benchmark's file storage)."""

    root: Path
    machine_id: str = field(default_factory=get_machine_id)

    @classmethod
    def from_uri(cls, storage: str | None, machine_id: str | None = None) -> Storage:
        return cls(storage_path(storage), machine_id or get_machine_id())

    @property
    def folder(self) -> Path:
        return self.root / self.machine_id

    def run_files(self) -> list[Path]:
        """This machine's run files, oldest (lowest number) first."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(RUN_GLOB), key=lambda p: (int(p.name[:4]), p.name))

    def all_run_files(self) -> list[Path]:
        """Run files of every machine folder, for looking up commits and paths."""
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob(f"*/{RUN_GLOB}"))

    def find(self, spec: str) -> Path:
        """The run file for ``spec``: ``latest``, a run number, a JSON path, or (last) a commit prefix."""
        files = self.run_files()
        if spec == "latest":
            if not files:
                raise RunNotFound(f"no saved run in {self.folder} (save one with --benchmark-autosave)")
            return files[-1]
        if spec.isdigit():
            number = int(spec)
            for path in files:
                if int(path.name[:4]) == number:
                    return path
            raise RunNotFound(f"no run number {number:04d} in {self.folder}")
        candidate = Path(spec)
        if candidate.is_file():
            return candidate
        if spec.endswith(".json") or "/" in spec or "\\" in spec:
            raise RunNotFound(f"no such file: {spec}")
        return self._find_commit(spec)

    def _find_commit(self, prefix: str) -> Path:
        """The newest run of this machine whose file name, or commit id, starts with ``prefix``."""
        for path in reversed(self.run_files()):
            if path.name.startswith(prefix) or path.name[5:].startswith(prefix):  # 0003_abc or abc
                return path
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                commit = data.get("commit_info", {}).get("id") or ""
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(commit, str) and commit.startswith(prefix):
                return path
        raise RunNotFound(f"no run, file or commit matching {prefix!r} in {self.folder}")

    def load_last(self, count: int, on_error: Callable[[str], None], before: Path | None = None) -> list[SavedRun]:
        """The ``count`` newest readable runs of this machine, oldest first (fewer when fewer exist).

        ``before``: a run file that is not part of the pool; when it is one of this machine's numbered runs, only runs
        with a lower number count (the runs saved before it). Unreadable files are reported through ``on_error`` and
        skipped, so the pool still holds ``count`` runs when enough readable ones exist.
        """
        files = self.run_files()
        if before is not None:
            resolved = before.resolve()
            if resolved.parent == self.folder.resolve() and _RUN_NUMBER.match(before.name):
                files = [f for f in files if int(f.name[:4]) < int(before.name[:4])]
            else:
                files = [f for f in files if f.resolve() != resolved]
        runs: list[SavedRun] = []
        for path in reversed(files):
            if len(runs) == count:
                break
            try:
                runs.append(load_run_file(path))
            except RunLoadError as exc:
                on_error(str(exc))
        return runs[::-1]


def parse_last(spec: str) -> int | None:
    """N of a ``last:N`` run spec, None for any other spec; :class:`RunSpecError` for ``last:0`` or ``last:x``."""
    if not spec.startswith("last:"):
        return None
    match = _LAST.match(spec)
    if not match or int(match["count"]) < 1:
        raise RunSpecError(f"{spec!r}: expected last:N with a whole number N >= 1, e.g. last:5")
    return int(match["count"])


# ---------------------------------------------------------------------------- a pool of runs as one


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
        notes=[note for run in runs for note in run.notes],
    )
