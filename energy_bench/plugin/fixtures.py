"""The harness's fixtures (``energy_device``, ``energy_meter``, ``energy``) and hooks.

Loaded by :mod:`energy_bench.plugin` as a sub-plugin. Hooks here: validate a meter asked for by
name at configure time (usage error, exit code 4), put the meter's description and the OpenMP
wait policy into pytest-benchmark's ``machine_info.energy``, print the energy table after
pytest-benchmark's table, and close the meter at the end. ``energy()`` records round-start GPU
temperatures and waits for the GPUs to cool (``--energy-cooldown``) through
:class:`energy_bench.meters.cooldown.RoundTemperatures`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from energy_bench.errors import EnergyBenchWarning
from energy_bench.meters import Meter, MeterError, MeterUnavailable, estimate_model_of, select_meter, window
from energy_bench.meters.cooldown import RoundTemperatures
from energy_bench.meters.speed import probe_speed
from energy_bench.plugin import openmp, table
from energy_bench.plugin import rounds as rounds_mod
from energy_bench.plugin.session import SESSION_KEY, EnergySession, get_session, session_speed
from energy_bench.runs import record as records
from energy_bench.runs.estimate_model import add_estimate
from energy_bench.runs.footprint import add_footprint

#: usage errors found inside tests (e.g. energy() given a non-callable): they set exit code 4
USAGE_ERRORS_KEY = pytest.StashKey[list]()

DEFAULT_ROUNDS = 5
DEFAULT_WARMUP_ROUNDS = 1


# ---------------------------------------------------------------------------- the meter


def build_meter(config: pytest.Config) -> Meter:
    """The session's meter, built once. Raises pytest.UsageError when it cannot work."""
    session = get_session(config)
    if session.meter is None:
        s = session.settings
        try:
            session.meter = select_meter(s.meter, gpus=s.gpus, powercap_root=s.powercap_root, cpu_watts=s.cpu_watts)
        except MeterUnavailable as exc:
            raise pytest.UsageError(f"--energy-meter={s.meter}: {exc}") from None
        session.speed_start = probe_speed()
    return session.meter


def measure_idle(session: EnergySession, meter: Meter) -> None:
    """Idle watts per domain, once per session, when --energy-idle-seconds asks for it."""
    seconds = session.settings.idle_seconds
    if seconds <= 0 or session.idle_watts is not None:
        return
    try:
        session.idle_watts = window.idle_watts(meter, seconds)
    except MeterError as exc:
        warnings.warn(f"idle baseline not measured ({exc}): no net joules this run", EnergyBenchWarning, stacklevel=2)
        session.idle_watts = {}


def pytest_configure(config: pytest.Config) -> None:
    # A meter asked for by name, or GPUs picked by index, must work: say why not before any test runs.
    # With --benchmark-compare, pytest-benchmark reads machine_info now (after this hook): describe the meter.
    config.stash[USAGE_ERRORS_KEY] = []
    settings = get_session(config).settings
    comparing = bool(config.getoption("benchmark_compare", None))
    if settings.meter != "auto" or settings.gpus is not None or comparing:
        build_meter(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None and session.meter is not None:
        session.meter.close()
        session.meter = None


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def energy_device(pytestconfig: pytest.Config):
    """The torch device of --energy-device: auto = cuda when torch sees one, else cpu."""
    import torch  # only users of this fixture need torch

    wanted = get_session(pytestconfig).settings.device
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted.startswith("cuda"):
        if not torch.cuda.is_available():
            pytest.fail(f"--energy-device={wanted}: torch sees no CUDA device (use auto or cpu)", pytrace=False)
        index = int(wanted.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            pytest.fail(
                f"--energy-device={wanted}: torch sees {torch.cuda.device_count()} CUDA device(s)", pytrace=False
            )
    return torch.device(wanted)


@pytest.fixture(scope="session")
def energy_meter(pytestconfig: pytest.Config) -> Meter:
    """The session's meter (--energy-meter), with the idle baseline measured once when asked."""
    session = get_session(pytestconfig)
    try:
        meter = build_meter(pytestconfig)
    except pytest.UsageError as exc:  # configure validated named meters; this is the auto safety net
        pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    measure_idle(session, meter)
    return meter


class EnergyFixture:
    """``energy(fn, *args, rounds=R, warmup_rounds=W, iterations=N, until=C, **kwargs)`` and ``energy.record(...)``."""

    def __init__(
        self,
        benchmark: Any,
        meter: Meter,
        session: EnergySession,
        usage_error: Callable[[str], None],
    ):
        self.benchmark = benchmark
        self.meter = meter
        self._session = session
        self._usage_error = usage_error

    def __call__(
        self,
        fn: Callable[..., Any],
        *args: Any,
        rounds: int = DEFAULT_ROUNDS,
        warmup_rounds: int = DEFAULT_WARMUP_ROUNDS,
        iterations: int | None = None,
        until: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` as up to ``rounds`` measured rounds; return its (last) result.

        Each round is ``iterations`` calls (default: as many as make a round last the meter's minimum window) inside
        one meter window, after ``warmup_rounds`` unmeasured rounds. ``until``, called after each measured round
        (outside the window and the timer), stops the rounds once it returns true: energy to a target.
        """
        self._check_arguments(fn, rounds, warmup_rounds, iterations, until)
        if self.benchmark._mode:
            self._usage_error(f"energy(): the benchmark of this test was already used in {self.benchmark._mode} mode")
        self.benchmark._mode = "energy(...)"
        if self.benchmark.disabled:  # --benchmark-disable: just run the code, as pytest-benchmark does
            return fn(*args, **kwargs)

        settings = self._session.settings
        temperatures = RoundTemperatures(self.meter, settings.cooldown_c, settings.cooldown_timeout_s)
        done = rounds_mod.run_rounds(
            self.benchmark,
            self.meter,
            lambda: fn(*args, **kwargs),
            rounds=rounds,
            warmup_rounds=warmup_rounds,
            iterations=iterations,
            min_round_s=settings.min_round_s(self.meter),
            until=until,
            before_round=temperatures,
        )
        if done.error is not None or not done.readings:
            reason = done.error or "no round was measured"
            self.benchmark.extra_info["energy"] = records.failed_record(reason, self.meter)
            message = f"energy of {self.benchmark.fullname} not measured: {reason}"
            warnings.warn(message, EnergyBenchWarning, stacklevel=2)
            return done.result
        idle = self._session.idle_watts or None  # {} = the idle measurement failed: no net joules
        record = records.energy_record(
            done.readings,
            idle,
            iterations=done.iterations,
            temperatures=temperatures.record(),
            cooldown=temperatures.cooldown_record(),
        )
        if until is not None:
            target = until.describe() if isinstance(until, rounds_mod.Target) else {}
            values = until.values if isinstance(until, rounds_mod.Target) else None
            record["to_target"] = records.target_record(done.readings, bool(done.reached), rounds, target, values)
        add_footprint(record, self._session.settings.footprint)
        model = estimate_model_of(self.meter)
        if model is not None and record.get("meter") == "estimate":
            add_estimate(record, model)
        self.benchmark.extra_info["energy"] = record
        return done.result

    def target(
        self,
        metric_fn: Callable[[], Any],
        *,
        at_least: float | None = None,
        at_most: float | None = None,
        name: str = "accuracy",
    ) -> rounds_mod.Target:
        """A stop condition for ``until=``: ``metric_fn()`` reaches ``at_least`` (or falls to ``at_most``).

        The values it sees after each round become the record's curve (``extra_info.energy.to_target.curve``).
        """
        if (at_least is None) == (at_most is None):
            self._usage_error("energy.target(): give exactly one of at_least= or at_most=")
        if not callable(metric_fn):
            self._usage_error(f"energy.target(): expected a callable metric, got {type(metric_fn).__name__}")
        threshold = at_least if at_least is not None else at_most
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold != threshold:
            self._usage_error(f"energy.target(): the threshold must be a number, got {threshold!r}")
        return rounds_mod.Target(metric_fn, float(threshold), at_least is not None, str(name))

    def _check_arguments(self, fn: Any, rounds: Any, warmup_rounds: Any, iterations: Any, until: Any) -> None:
        if not callable(fn):
            self._usage_error(f"energy(): expected a callable to measure, got {type(fn).__name__} {fn!r:.60}")
        checks = [("rounds", rounds, 1), ("warmup_rounds", warmup_rounds, 0)]
        if iterations is not None:
            checks.append(("iterations", iterations, 1))
        for name, value, least in checks:
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                self._usage_error(f"energy(): {name} must be an int >= {least}, got {value!r}")
        if until is not None and not callable(until):
            self._usage_error(f"energy(): until must be a callable returning true to stop, got {type(until).__name__}")

    def record(self, accuracy: float | None = None, **more: Any) -> None:
        """Store quality metrics beside the energy record (``extra_info.accuracy``, ...)."""
        metrics = ({"accuracy": accuracy} if accuracy is not None else {}) | more
        for name, value in metrics.items():
            try:
                self.benchmark.extra_info[name] = records.plain_metric(name, value)
            except (TypeError, ValueError) as exc:
                self._usage_error(str(exc))


@pytest.fixture
def energy(benchmark, energy_meter: Meter, request: pytest.FixtureRequest) -> EnergyFixture:
    """Joules per round on top of pytest-benchmark's ``benchmark`` fixture."""
    config = request.config

    def usage_error(message: str) -> None:
        # A mistake in the test's own code: fail this test with one line, and exit with code 4 at the end.
        config.stash[USAGE_ERRORS_KEY].append(f"{request.node.nodeid}: {message}")
        pytest.fail(message, pytrace=False)

    return EnergyFixture(benchmark, energy_meter, get_session(config), usage_error)


# ---------------------------------------------------------------------------- results and report


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    # pytest-benchmark asks when it saves (sessionfinish) and when --benchmark-compare loads (configure).
    # Only a meter that was built is described: runs that never measured never touch NVML. The OpenMP wait
    # policy changes times too, so it is recorded either way.
    session = get_session(config)
    info = {} if session.meter is None else session.meter.info()
    if session.meter is not None and session.idle_watts:
        info["idle_watts"] = dict(session.idle_watts)
        info["idle_seconds"] = session.settings.idle_seconds
    if session.meter is not None:
        # Wall time of the whole session until it is saved: set-up (pretraining, compression) included.
        info["session_seconds"] = round(time.monotonic() - session.started, 1)
        info["speed"] = session_speed(session)
    policy = openmp.policy_of(config)
    if policy is not None:
        info.update(policy.describe())
    info |= session.settings.footprint.describe()
    if info:
        machine_info["energy"] = info


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    errors = session.config.stash.get(USAGE_ERRORS_KEY, [])
    if errors and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        session.exitstatus = pytest.ExitCode.USAGE_ERROR


@pytest.hookimpl(wrapper=True)
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config):
    # Around pytest-benchmark's summary, whose --benchmark-compare-fail raises: the table prints anyway.
    try:
        return (yield)
    finally:
        write_energy_table(terminalreporter, config)


def write_energy_table(terminalreporter, config: pytest.Config) -> None:
    bench_session = getattr(config, "_benchmarksession", None)
    if bench_session is None:
        return
    session = get_session(config)
    lines = table.energy_table_lines(
        [b for b in bench_session.benchmarks if b],
        estimate=None if (model := estimate_model_of(session.meter)) is None else model.label(),
        comparison=session.comparison,
    )
    if not lines:
        return
    terminalreporter.ensure_newline()
    terminalreporter.write_sep("-", table.TITLE)
    for line in lines:
        terminalreporter.write_line(line)
