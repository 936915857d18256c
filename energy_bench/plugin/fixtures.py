"""The harness's fixtures (``energy_device``, ``energy_meter``, ``energy``) and hooks.

Loaded by :mod:`energy_bench.plugin` as a sub-plugin. Hooks here: validate a meter asked for by
name at configure time (usage error, exit code 4), put the meter's description into
pytest-benchmark's ``machine_info.energy``, print the energy table after pytest-benchmark's
table, and close the meter at the end.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest

from energy_bench.errors import EnergyBenchWarning
from energy_bench.meters import Meter, MeterError, MeterUnavailable, Reading, select_meter, window
from energy_bench.plugin import table
from energy_bench.plugin.session import SESSION_KEY, EnergySession, get_session
from energy_bench.runs import record as records

#: usage errors found inside tests (e.g. energy() given a non-callable): they set exit code 4
USAGE_ERRORS_KEY = pytest.StashKey[list]()

DEFAULT_ROUNDS = 5


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
    """``energy(fn, *args, rounds=R, warmup_rounds=W, **kwargs)`` and ``energy.record(...)``."""

    def __init__(self, benchmark: Any, meter: Meter, session: EnergySession, usage_error: Callable[[str], None]):
        self.benchmark = benchmark
        self.meter = meter
        self._session = session
        self._usage_error = usage_error

    def __call__(
        self, fn: Callable[..., Any], *args: Any, rounds: int = DEFAULT_ROUNDS, warmup_rounds: int = 0, **kwargs: Any
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` as ``rounds`` measured rounds (after ``warmup_rounds``); return its result."""
        if not callable(fn):
            self._usage_error(f"energy(): expected a callable to measure, got {type(fn).__name__} {fn!r:.60}")
        for name, value, least in (("rounds", rounds, 1), ("warmup_rounds", warmup_rounds, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                self._usage_error(f"energy(): {name} must be an int >= {least}, got {value!r}")
        if self.benchmark.disabled:  # --benchmark-disable: just run the code, as pytest-benchmark does
            return fn(*args, **kwargs)

        meter = self.meter
        readings: list[Reading] = []
        state: dict[str, Any] = {"round": 0, "mark": None, "error": None}

        def setup():
            # Outside pytest-benchmark's timer: the meter's own cost does not inflate the time.
            # Warmup rounds come first; --benchmark-cprofile runs the target once more after the rounds.
            measured = warmup_rounds <= state["round"] < warmup_rounds + rounds
            state["round"] += 1
            state["mark"] = None
            if measured and state["error"] is None:
                try:
                    state["mark"] = window.open_window(meter)
                except MeterError as exc:
                    state["error"] = str(exc)
            return args, kwargs

        def target(*a, **kw):
            result = fn(*a, **kw)
            window.synchronize_devices()  # inside the timer, so GPU time is counted as time
            return result

        def teardown(*_a, **_kw):
            if state["mark"] is None:
                return
            try:
                readings.append(window.close_window(meter, state["mark"]))
            except MeterError as exc:
                state["error"] = str(exc)

        result = self.benchmark.pedantic(
            target, setup=setup, teardown=teardown, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1
        )
        if state["error"] is not None:
            self.benchmark.extra_info["energy"] = records.failed_record(state["error"], meter)
            warnings.warn(
                f"energy of {self.benchmark.fullname} not measured: {state['error']}", EnergyBenchWarning, stacklevel=2
            )
        else:
            idle = self._session.idle_watts or None  # {} = the idle measurement failed: no net joules
            self.benchmark.extra_info["energy"] = records.energy_record(readings, idle)
        return result

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
    # Only a meter that was built is described: runs that never measured never touch NVML.
    session = get_session(config)
    if session.meter is None:
        return
    info = session.meter.info()
    if session.idle_watts:
        info["idle_watts"] = dict(session.idle_watts)
        info["idle_seconds"] = session.settings.idle_seconds
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
        cpu_watts=session.settings.cpu_watts,
        comparison=session.comparison,
    )
    if not lines:
        return
    terminalreporter.ensure_newline()
    terminalreporter.write_sep("-", table.TITLE)
    for line in lines:
        terminalreporter.write_line(line)
