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


class RunLoadError(EnergyBenchError):
    """A file that cannot be used as a saved run; the message names it and says why."""


class RunNotFound(EnergyBenchError, LookupError):
    """A run asked for by number, path or commit that does not exist; the message says what was looked for."""


@dataclass(frozen=True)
class Samples:
    """One metric of one benchmark: summary numbers and, when saved, the per-round values."""

    mean: float
    stddev: float | None = None
    rounds: int | None = None
    data: tuple[float, ...] | None = None


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

    def samples(self, metric: str) -> Samples | None:
        if metric == "accuracy":
            return None if self.accuracy is None else Samples(mean=self.accuracy)
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
