"""Reading saved runs: pytest-benchmark's JSON, old files too, into :class:`SavedRun`.

A run is pytest-benchmark's own JSON; energy-bench's record lives in each benchmark's
``extra_info`` (see :mod:`energy_bench.runs.record`). Files saved before energy-bench, or
without per-round data, still load: what they lack is said in :attr:`SavedRun.notes`.
Files that are not runs at all raise :class:`RunLoadError`, whose message names the file.
Where runs are kept and found is :mod:`energy_bench.runs.store`; several runs as one, :mod:`energy_bench.runs.pool`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_bench.errors import EnergyBenchError
from energy_bench.runs.text import printable

RUN_NUMBER = re.compile(r"^(\d{4})_")


class RunLoadError(EnergyBenchError):
    """A file that cannot be used as a saved run; the message names it and says why."""


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
    #: the record has an energy record (``extra_info.energy``), usable or not
    has_energy: bool = False
    #: metric -> why the saved value cannot be used (the metric then has no data)
    invalid: dict[str, str] = field(default_factory=dict)
    #: energy to a target (``energy(..., until=...)``), when the benchmark had one
    to_target: TargetResult | None = None
    #: pytest-benchmark's ``group`` and the saved ``extra_info`` as read (plain JSON): what the ranking of variants
    #: (:mod:`energy_bench.runs.ranking`) reads, so that a run from any store can be ranked
    group: str | None = None
    extra_info: Mapping[str, Any] | None = field(default=None, repr=False)

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
    #: ``commit_info.branch`` and ``commit_info.dirty`` as pytest-benchmark saved them
    branch: str | None = None
    dirty: bool | None = None
    #: the machine the run was saved for: pytest-benchmark's machine id (its storage folder), or the store's key
    machine: str | None = None

    @property
    def order_key(self) -> tuple[str, str, int]:
        """Commit order: commit time, then save time, then run number."""
        return (self.commit_time or self.datetime or "", self.datetime or "", self.number or 0)


# ---------------------------------------------------------------------------- records

#: largest magnitude a saved joules or seconds value may have: beyond it the value is out of range (no round takes a
#: petajoule or 30 million years), and sums and ratios of such values could overflow
MAX_MAGNITUDE = 1e15
#: the largest run file read: one with per-round data of a million rounds is about 20 MB
MAX_RUN_BYTES = 64 * 2**20
#: (record key, metric, smallest valid value): the per-round quantities of an energy record
_ENERGY_SAMPLES = (("joules", "joules", 0.0), ("net_joules", "net_joules", None), ("seconds", "time", 0.0))


class InvalidValue(EnergyBenchError, ValueError):
    """A value in a saved record that cannot be used; the message says which and why, without the metric name."""


def _number(value: Any) -> float | None:
    """A finite JSON number as a float, else None (huge integers included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _describe(value: Any) -> str:
    """A saved value in a note: short, and never a ``nan`` or ``inf`` that reads like a number."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**15 else "a huge integer"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "not finite"
    return f"a {type(value).__name__}"


def check_number(value: Any, what: str, minimum: float | None = None, maximum: float = MAX_MAGNITUDE) -> float:
    """``value`` as a finite float in ``[minimum, maximum]`` (magnitude at most ``maximum``), else InvalidValue."""
    number = _number(value)
    if number is None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise InvalidValue(f"{what} is not a finite number")
        raise InvalidValue(f"{what} is {_describe(value)}, not a number")
    if abs(number) > maximum or (minimum is not None and number < minimum):
        low = f"{minimum:g}" if minimum is not None else f"-{maximum:g}"
        raise InvalidValue(f"{what} {number:g} is outside {low}..{maximum:g}")
    return number


def check_count(value: Any, what: str, maximum: int = int(MAX_MAGNITUDE)) -> int:
    """A whole number in ``1..maximum``, else InvalidValue."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidValue(f"{what} is {_describe(value)}, not a whole number in 1..{maximum:g}")
    return value


def parse_samples(stats: Any, minimum: float | None = None) -> Samples | None:
    """Samples from a ``{mean, stddev, rounds, data}`` dict; None when absent, InvalidValue when unusable.

    Per-round data, when saved, is the truth: the mean is recomputed from it (a saved mean is still checked).
    """
    if stats is None:
        return None
    if not isinstance(stats, Mapping):
        raise InvalidValue(f"the summary is {_describe(stats)}, not an object")
    data = stats.get("data")
    values = None
    if data is not None and data != []:
        if not isinstance(data, list):
            raise InvalidValue(f"'data' is {_describe(data)}, not a list")
        values = tuple(check_number(v, "a per-round value", minimum) for v in data)
    mean = stats.get("mean")
    if mean is not None or not values:
        mean = check_number(mean, "'mean'", minimum)
    if values:
        mean = math.fsum(values) / len(values)  # no overflow: every value is at most MAX_MAGNITUDE
    stddev = stats.get("stddev")
    stddev = None if stddev is None else check_number(stddev, "'stddev'", 0.0)
    rounds = stats.get("rounds")
    rounds = None if rounds is None else check_count(rounds, "'rounds'")
    if values:
        rounds = len(values)
    return Samples(mean=mean, stddev=stddev, rounds=rounds, data=values)


def samples_from(stats: Any, minimum: float | None = None) -> Samples | None:
    """Samples from a ``{mean, stddev, rounds, data}`` dict (our record or pytest-benchmark's stats); None when
    absent or unusable (:func:`parse_samples` says why)."""
    try:
        return parse_samples(stats, minimum)
    except InvalidValue:
        return None


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


def _label(value: Any) -> str | None:
    """A saved text field (source, meter): itself when text, None when absent, a placeholder for anything else
    (so that a compatibility check sees an unknown value rather than none)."""
    if value is None or isinstance(value, str):
        return value
    return f"unreadable ({type(value).__name__})"


def _energy_samples(record: BenchRecord, energy: Mapping) -> None:
    """Per-call joules, net joules and seconds of an energy record, or the reason each is unusable."""
    try:
        # Per call, so that runs with other calls per round compare (records before iterations: one call a round).
        iterations = 1 if energy.get("iterations") is None else check_count(energy["iterations"], "'iterations'")
    except InvalidValue as exc:
        for key, metric, _ in _ENERGY_SAMPLES:
            if energy.get(key) is not None:
                record.invalid[metric] = str(exc)
        return
    for key, metric, minimum in _ENERGY_SAMPLES:
        try:
            setattr(record, metric, per_call(parse_samples(energy.get(key), minimum), iterations))
        except InvalidValue as exc:
            record.invalid[metric] = f"'{key}': {exc}"


def parse_target(to_target: Any) -> TargetResult | None:
    """A :class:`TargetResult` from ``extra_info.energy.to_target``; None when absent, InvalidValue when unusable."""
    if to_target is None:
        return None
    if not isinstance(to_target, Mapping):
        raise InvalidValue(f"it is {_describe(to_target)}, not an object")
    reached = to_target.get("reached")
    if not isinstance(reached, bool):
        raise InvalidValue(f"'reached' is {_describe(reached)}, not true or false")
    rounds, max_rounds, seconds, target = (to_target.get(k) for k in ("rounds", "max_rounds", "seconds", "target"))
    return TargetResult(
        reached=reached,
        rounds=None if rounds is None else check_count(rounds, "'rounds'"),
        max_rounds=None if max_rounds is None else check_count(max_rounds, "'max_rounds'"),
        joules=check_number(to_target.get("joules"), "'joules'", 0.0),
        seconds=None if seconds is None else check_number(seconds, "'seconds'", 0.0),
        metric=_label(to_target.get("metric")),
        target=_number(target),
        direction=_label(to_target.get("direction")),
    )


def record_from(fullname: str, extra_info: Any, stats: Any) -> BenchRecord:
    """A :class:`BenchRecord` from a benchmark's ``extra_info`` and pytest-benchmark ``stats``.

    Works the same for a saved JSON entry and for the running session's results. A value that cannot be used
    (not a finite number, out of range, of the wrong type) leaves its metric without data and is named in
    :attr:`BenchRecord.invalid`; it never raises.
    """
    record = BenchRecord(fullname=fullname)
    extra = extra_info if isinstance(extra_info, Mapping) else {}
    energy = extra.get("energy")
    if isinstance(energy, Mapping):
        record.has_energy = True
        _energy_samples(record, energy)
        try:
            record.to_target = parse_target(energy.get("to_target"))
        except InvalidValue as exc:
            record.invalid["joules_to_target"] = f"'to_target': {exc}"
        record.source = _label(energy.get("source"))
        record.meter = _label(energy.get("meter"))
        error = energy.get("error")
        if error:
            record.error = error if isinstance(error, str) else f"meter failed (unreadable reason: {_describe(error)})"
        if record.joules is None and record.error is None and "joules" not in record.invalid:
            record.notes.append("energy record without joules")
    elif energy is not None:
        record.notes.append(f"unreadable energy record ({_describe(energy)})")
    else:
        record.notes.append("no energy record (saved without energy-bench)")
    if record.time is None and "time" not in record.invalid:
        # Old records: wall time from pytest-benchmark's stats (per-round only with --benchmark-save-data).
        try:
            record.time = parse_samples(stats, 0.0)
        except InvalidValue as exc:
            record.invalid["time"] = f"pytest-benchmark 'stats': {exc}"
    if extra.get("accuracy") is not None:
        try:
            record.accuracy = check_number(extra["accuracy"], "accuracy", 0.0, 1.0)
        except InvalidValue as exc:
            record.invalid["accuracy"] = str(exc)
    record.notes.extend(f"no {metric} data: {reason}" for metric, reason in record.invalid.items())
    return record


def run_from_json(data: Any, label: str, path: Path | None = None) -> SavedRun:
    """A :class:`SavedRun` from parsed JSON; :class:`RunLoadError` when it is not a pytest-benchmark run."""
    if not isinstance(data, Mapping) or not isinstance(data.get("benchmarks"), list):
        raise RunLoadError(f"{label}: not a pytest-benchmark run (no 'benchmarks' list)")
    benchmarks: dict[str, BenchRecord] = {}
    duplicates: list[str] = []
    for entry in data["benchmarks"]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("fullname"), str):
            raise RunLoadError(f"{label}: not a pytest-benchmark run (a benchmark without 'fullname')")
        if entry["fullname"] in benchmarks:
            duplicates.append(entry["fullname"])
        record = record_from(entry["fullname"], entry.get("extra_info"), entry.get("stats"))
        record.group = entry.get("group") if isinstance(entry.get("group"), str) else None
        record.extra_info = entry.get("extra_info") if isinstance(entry.get("extra_info"), Mapping) else None
        benchmarks[entry["fullname"]] = record
    commit = data.get("commit_info") if isinstance(data.get("commit_info"), Mapping) else {}
    machine = data.get("machine_info") if isinstance(data.get("machine_info"), Mapping) else {}
    match = RUN_NUMBER.match(path.name) if path else None
    run = SavedRun(
        label=label,
        benchmarks=benchmarks,
        path=path,
        number=int(match.group(1)) if match else None,
        commit_id=commit.get("id") if isinstance(commit.get("id"), str) else None,
        commit_time=commit.get("time") if isinstance(commit.get("time"), str) else None,
        datetime=data.get("datetime") if isinstance(data.get("datetime"), str) else None,
        machine_energy=machine.get("energy") if isinstance(machine.get("energy"), Mapping) else None,
        branch=commit.get("branch") if isinstance(commit.get("branch"), str) else None,
        dirty=commit.get("dirty") if isinstance(commit.get("dirty"), bool) else None,
        machine=path.parent.name if path and match else None,
    )
    run.notes.extend(_run_notes(run))
    run.notes.extend(
        f"{printable(label)}: {printable(name)} saved more than once: the last one is used"
        for name in dict.fromkeys(duplicates)
    )
    # what the run itself says about its joules (e.g. a merge of shards that shared a node's RAPL counters)
    energy_notes = run.machine_energy.get("notes") if run.machine_energy else None
    if isinstance(energy_notes, list):
        run.notes.extend(f"{printable(label)}: {printable(note)}" for note in energy_notes if isinstance(note, str))
    return run


def _run_notes(run: SavedRun) -> list[str]:
    records = list(run.benchmarks.values())
    label = printable(run.label)
    notes = []
    no_energy = [r for r in records if not r.has_energy]
    no_joules = [r for r in records if r.has_energy and r.joules is None and r.error is None and not r.invalid]
    if records and len(no_energy) == len(records):
        notes.append(f"{label}: no energy records (saved without energy-bench): time only")
    elif no_energy:
        notes.append(f"{label}: {len(no_energy)} benchmark(s) without an energy record")
    if no_joules:
        notes.append(f"{label}: {len(no_joules)} benchmark(s) with an energy record but no joules")
    no_rounds = [
        r for r in records if (r.joules or r.time) and not ((r.joules and r.joules.data) or (r.time and r.time.data))
    ]
    if no_rounds:
        notes.append(f"{label}: no per-round data for {len(no_rounds)} benchmark(s): threshold only")
    for record in records:
        notes.extend(
            f"{label}: {printable(record.fullname)}: no {metric} data ({printable(reason)})"
            for metric, reason in record.invalid.items()
        )
    return notes


def read_json(path: Path) -> Any:
    """The parsed content of ``path``; :class:`RunLoadError` naming the file when it cannot be (too large, binary,
    truncated, nested too deeply for the parser). JSON is data: reading it never executes anything."""
    where = printable(str(path))
    try:
        size = path.stat().st_size
        if size > MAX_RUN_BYTES:
            raise RunLoadError(f"{where}: too large to be a run ({size} bytes, over {MAX_RUN_BYTES // 2**20} MiB)")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RunLoadError(f"{where}: cannot read ({reason})") from None
    try:
        return json.loads(text)
    except ValueError as exc:  # also the interpreter's limit on digits in an integer
        raise RunLoadError(f"{where}: truncated or invalid JSON ({str(exc)[:200]})") from None
    except RecursionError:
        raise RunLoadError(f"{where}: nested too deeply to be a run") from None


def load_run_file(path: Path | str, label: str | None = None) -> SavedRun:
    """Read one JSON file; :class:`RunLoadError` (naming the file) when unreadable, truncated or foreign."""
    path = Path(path)
    label = label or run_label(path)
    data = read_json(path)
    try:
        return run_from_json(data, label, path)
    except RunLoadError as exc:
        raise RunLoadError(f"{printable(str(path))}: {str(exc)[len(label) + 2 :]}") from None


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
