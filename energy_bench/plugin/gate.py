"""The comparison gate: ``--energy-compare``, ``--energy-compare-fail``, ``--energy-compare-force``.

The baseline is one saved run (``latest``, NUM, PATH) or the N newest saved runs of this machine pooled
(``last:N``), which lets the decision see how much whole runs differ (see :mod:`energy_bench.runs.compare`).
It is loaded at session start, before pytest-benchmark saves the current run in its
``pytest_sessionfinish`` wrapper, so a run is never compared with itself. Verdicts are decided in
our ``pytest_sessionfinish`` (after that save, before the terminal summary): the energy table gets
its comparison columns, and a regression sets exit status 1 with a summary written straight to the
terminal, so it shows with ``--no-summary`` and whatever pytest-benchmark's own flags do.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from energy_bench.plugin import options
from energy_bench.plugin.session import get_session, session_speed
from energy_bench.runs import drift
from energy_bench.runs.parse import BenchRecord, RunLoadError, SavedRun, load_run_file, record_from
from energy_bench.runs.pool import pool_label
from energy_bench.runs.store import HistorySpec, StoreError, parse_history_spec
from energy_bench.runs.store.files import RunNotFound, RunSpecError, Storage, parse_last

if TYPE_CHECKING:
    from energy_bench.runs.compare import Threshold

# energy_bench.runs.compare (numpy, scipy) and formats are imported inside the hooks, only when a comparison is asked
# for: this module loads in every pytest run that has the plugin installed.


@dataclass(frozen=True)
class Gate:
    #: the baseline runs, oldest first: one, or the pool of ``last:N``
    baselines: tuple[SavedRun, ...]
    thresholds: tuple[Threshold, ...]
    gating: bool
    force: bool
    #: what loading the baseline had to say (fewer runs than asked, unreadable files skipped)
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return pool_label(list(self.baselines))


GATE_KEY = pytest.StashKey[Gate]()


def parse_fail_option(config: pytest.Config) -> tuple[Threshold, ...]:
    value = options.get(config, "energy_compare_fail")
    if not value:
        return ()
    from energy_bench.runs.compare import ThresholdError, parse_thresholds

    try:
        return parse_thresholds(value)
    except ThresholdError as exc:
        raise pytest.UsageError(f"--energy-compare-fail: {exc}") from None


def _xdist_active(config: pytest.Config) -> bool:
    try:
        distributed = config.getoption("dist") not in (None, "no")
    except ValueError:  # pytest-xdist not installed (or -p no:xdist)
        distributed = False
    return distributed or config.pluginmanager.has_plugin("dsession")


def check_gate_can_work(config: pytest.Config) -> None:
    """A usage error, before any test runs, where the comparison could not see this session's benchmarks: it would
    otherwise compare nothing and pass, a gate that never fails."""
    bench_session = getattr(config, "_benchmarksession", None)
    if bench_session is None:
        raise pytest.UsageError("--energy-compare needs pytest-benchmark (is it disabled with -p no:benchmark?)")
    if _xdist_active(config):
        raise pytest.UsageError(
            "--energy-compare cannot work under pytest-xdist (-n/--dist): pytest-benchmark disables benchmarks "
            "there; run the benchmarks without -n"
        )
    if getattr(bench_session, "disabled", False):
        raise pytest.UsageError(
            "--energy-compare cannot work with --benchmark-disable: no benchmark is measured, so none is compared"
        )
    if getattr(bench_session, "skip", False):
        raise pytest.UsageError("--energy-compare cannot work with --benchmark-skip: it skips every benchmark")


def _storage(config: pytest.Config) -> Storage:
    """pytest-benchmark's storage of this session (checked by :func:`check_gate_can_work` first)."""
    bench_session = config._benchmarksession
    root = getattr(bench_session.storage, "path", None)
    if root is None:
        raise pytest.UsageError("--energy-compare: only file storage is supported (see --benchmark-storage)")
    return Storage(Path(root), bench_session.machine_id)


def load_history_baselines(config: pytest.Config, spec: HistorySpec) -> tuple[list[SavedRun], list[str]]:
    """``history:last:N`` (this machine's, or this runner label's, N newest runs on the branch) or ``history:RUN``
    from the history store."""
    from energy_bench.plugin import history

    label = history.runner_label(config)
    filters = {
        "machine": None if label else history.current_machine(config),
        "runner": label,
        "branch": options.get(config, "energy_compare_branch") or history.current_branch(config),
    }
    try:
        store = history.open_session_store(config)
    except StoreError as exc:
        raise pytest.UsageError(f"--energy-compare={spec.text}: {exc}") from None
    try:
        if spec.last is None:
            return [store.find(spec.run, **filters)], []
        runs = store.last(spec.last, **filters)
    except (StoreError, RunNotFound) as exc:
        raise pytest.UsageError(f"--energy-compare={spec.text}: {exc}") from None
    finally:
        store.close()
    whose = f"runner label {label!r}" if label else "this machine"
    if not runs:
        raise pytest.UsageError(
            f"--energy-compare={spec.text}: no run of {whose} on branch {filters['branch']!r} in {store.display_url} "
            "(save some with --benchmark-autosave, or name another with --energy-compare-branch)"
        )
    notes = []
    if len(runs) < spec.last:
        notes.append(f"{spec.text}: only {len(runs)} run(s) of {whose} in the history; pooled those")
    return runs, notes


def load_baselines(config: pytest.Config, spec: str) -> tuple[list[SavedRun], list[str]]:
    """The runs named by ``--energy-compare`` (latest, NUM, PATH, last:N or history:...), oldest first, and notes."""
    try:
        history_spec = parse_history_spec(spec)
        if history_spec is not None:
            return load_history_baselines(config, history_spec)
        count = parse_last(spec)
    except RunSpecError as exc:
        raise pytest.UsageError(f"--energy-compare: {exc}") from None
    storage = _storage(config)
    if count is None:
        return [load_baseline(storage, spec)], []
    notes: list[str] = []
    runs = storage.load_last(count, lambda message: notes.append(f"skipped {message}"))
    if not runs:
        raise pytest.UsageError(
            f"--energy-compare: no saved run in {storage.folder} for {spec} (save some with --benchmark-autosave)"
        )
    if len(runs) < count:
        notes.append(f"{spec}: only {len(runs)} readable saved run(s) on this machine; pooled those")
    return runs, notes


def load_baseline(storage: Storage, spec: str) -> SavedRun:
    """The run named by ``--energy-compare`` (latest, NUM or PATH) in pytest-benchmark's storage."""
    if spec != "latest" and not spec.isdigit() and not spec.endswith(".json") and Path(spec).exists():
        # nargs="?" took a test path as the run: say how to write it instead of failing to parse it as JSON
        raise pytest.UsageError(
            f"--energy-compare: {spec!r} is not a saved run (NUM or a .json file); to compare "
            f"with the latest run, write --energy-compare after the test paths or as "
            f"--energy-compare=latest"
        )
    try:
        return load_run_file(storage.find(spec))
    except (RunNotFound, RunLoadError) as exc:
        raise pytest.UsageError(f"--energy-compare: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    # Bad expressions fail fast, before any test runs.
    parse_fail_option(config)
    if config.getoption("energy_compare") is None and config.getoption("energy_compare_fail"):
        raise pytest.UsageError("--energy-compare-fail needs --energy-compare (the run to compare with)")


def pytest_sessionstart(session: pytest.Session) -> None:
    # After every plugin's configure (pytest-benchmark's session exists), before its sessionfinish saves this run.
    config = session.config
    spec = config.getoption("energy_compare")
    if spec is None or hasattr(config, "workerinput"):  # xdist workers: the controller has refused already
        return
    check_gate_can_work(config)
    from energy_bench.runs.compare import DEFAULT_THRESHOLDS, parse_thresholds

    thresholds = parse_fail_option(config)
    baselines, notes = load_baselines(config, spec)
    config.stash[GATE_KEY] = Gate(
        baselines=tuple(baselines),
        thresholds=thresholds or parse_thresholds(DEFAULT_THRESHOLDS),
        gating=bool(thresholds),
        force=bool(config.getoption("energy_compare_force")),
        notes=tuple(notes),
    )


def current_records(config: pytest.Config) -> dict[str, BenchRecord]:
    """This session's results, read from pytest-benchmark's session like a saved file would be."""
    records = {}
    for bench in config._benchmarksession.benchmarks:
        if not bench or bench.has_error:
            continue
        stats = bench.stats
        stats_dict = {"mean": stats.mean, "stddev": stats.stddev, "rounds": stats.rounds, "data": list(stats.data)}
        records[bench.fullname] = record_from(bench.fullname, bench.extra_info, stats_dict)
    return records


def _current_machine_energy(config: pytest.Config) -> dict[str, Any] | None:
    meter = get_session(config).meter
    return meter.info() if meter is not None else None


def drift_notes(config: pytest.Config, gate: Gate, comparisons: list) -> list[str]:
    """Where the sessions' speeds or the baseline runs' spread keep the gate from telling a threshold-size change."""
    energy_session = get_session(config)
    current = {drift.SPEED_KEY: session_speed(energy_session)} if energy_session.meter is not None else None
    speed_note = drift.speed_drift_note(
        [run.machine_energy for run in gate.baselines], current, drift.joules_threshold_percent(gate.thresholds)
    )
    return [*([speed_note] if speed_note else []), *drift.resolution_notes(comparisons)]


def _writer(config: pytest.Config):
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")  # ends the progress line ("....  [100%]"), which has no newline yet
        return reporter.write_line
    return lambda line, **markup: print(line, file=sys.stderr)


def _problems(gate: Gate, current: dict[str, BenchRecord], machine: dict[str, Any] | None) -> list[str]:
    """Why the baseline runs and this session are not comparable (each baseline run checked)."""
    from energy_bench.runs.compare import compatibility_problems

    problems = [
        problem
        for run in gate.baselines
        for problem in compatibility_problems(run.benchmarks, current, run.machine_energy, machine)
    ]
    return list(dict.fromkeys(problems))


def _refuse(session: pytest.Session, gate: Gate, current: dict[str, BenchRecord], problems: list[str], write) -> None:
    write(
        f"energy-bench: refusing to compare with {gate.label}: {'; '.join(problems)} "
        "(pass --energy-compare-force to compare anyway)",
        red=True,
        bold=True,
    )
    energy_session = get_session(session.config)
    for name in current:
        energy_session.comparison[name] = {"baseline J": "", "change": "", "accuracy change": "", "verdict": "refused"}
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.USAGE_ERROR


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    gate = config.stash.get(GATE_KEY, None)
    if gate is None:
        return
    from energy_bench.runs.compare import ALPHA, ONE_BASELINE_RUN, compare_records, describe_test, regression_lines
    from energy_bench.runs.formats import gate_columns

    write = _writer(config)
    energy_session = get_session(config)
    current = current_records(config)
    if not current:
        write(f"energy-bench: nothing compared with {gate.label}: no benchmark ran")
        return
    limits = ", ".join(str(t) for t in gate.thresholds)
    header = f"energy-bench: compared with {gate.label} ({limits}; {describe_test(len(gate.baselines), 1, ALPHA)})"

    problems = _problems(gate, current, _current_machine_energy(config))
    if problems and not gate.force:
        _refuse(session, gate, current, problems, write)
        return

    comparisons = compare_records([run.benchmarks for run in gate.baselines], current, gate.thresholds)
    for comparison in comparisons:
        if comparison.current is not None:
            energy_session.comparison[comparison.fullname] = gate_columns(comparison)
    notes = list(gate.notes) + [note for run in gate.baselines for note in run.notes]
    if len(gate.baselines) == 1:
        notes.append(
            f"{ONE_BASELINE_RUN}: the test sees only round-to-round noise, so a whole run that is slower or faster "
            "reads as significant; pool saved runs with --energy-compare=last:N"
        )
    notes += [f"forced despite: {p}" for p in problems]
    notes += drift_notes(config, gate, comparisons)
    notes += sorted({f"{c.fullname}: {n}" for c in comparisons if c.current is not None for n in c.notes})
    lines = regression_lines(comparisons) if gate.gating else []
    energy_session.regressions = lines
    if lines:
        write(f"{header}: {len(lines)} regression(s)", red=True, bold=True)
        for line in lines:
            write(f"  REGRESSION {line}", red=True)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        write(f"{header}: {'no regressions' if gate.gating else 'not gating (no --energy-compare-fail)'}")
    for note in notes:
        write(f"  note: {note}")
