"""A stand-in for the ``zeus`` package (``zeus.monitor.ZeusMonitor``, ``Measurement``) with devices on power traces.

The shape is Zeus 0.16's (``zeus/monitor/energy.py``): ``ZeusMonitor(gpu_indices=None, cpu_indices=None,
approx_instant_energy=False, log_file=None, sync_execution_with="torch")`` with attributes ``gpus`` (an object with
``len()``, ``get_name(i)``, ``get_gpu_temperature(i)``), ``cpus``, ``soc``, ``soc_is_present``, ``gpu_indices``,
``cpu_indices``, ``power_monitor``; ``begin_window(key, sync_execution=True, restart=False)`` raising
``ValueError("Measurement window '<key>' already exists")`` for a name in use; ``end_window(key,
sync_execution=True, cancel=False)`` raising ``ValueError`` for an unknown name and returning
``Measurement(time, gpu_energy, cpu_energy=None, dram_energy=None, soc_energy=None)``: joules per index, the CPU
and DRAM dicts None when nothing was measured, the SoC a dataclass of cumulative-difference mJ fields (like
``JetsonMeasurement``/``AppleSiliconMeasurement``).

Install with ``FakeZeus(...).install(monkeypatch)``: it puts ``zeus`` and ``zeus.monitor`` into ``sys.modules``.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property

from tests.fakes.fake_pynvml import RampTrace, SineTrace

Trace = SineTrace | RampTrace


@dataclass
class Measurement:
    time: float
    gpu_energy: dict[int, float]
    cpu_energy: dict[int, float] | None = None
    dram_energy: dict[int, float] | None = None
    soc_energy: object | None = None

    @cached_property
    def total_energy(self) -> float:
        return sum(self.gpu_energy.values())


@dataclass
class JetsonMeasurement:
    """Zeus's Jetson SoC measurement: mJ per rail; the total (input) rail contains the others."""

    cpu_energy_mj: float | None = None
    gpu_energy_mj: float | None = None
    total_energy_mj: float | None = None


@dataclass
class AppleSiliconMeasurement:
    """A subset of Zeus's Apple silicon measurement (mJ): cpu_total contains the per-core fields."""

    cpu_total_mj: int | None = None
    efficiency_cores_mj: list[int] | None = None
    performance_core_manager_mj: int | None = None
    dram_mj: int | None = None
    gpu_mj: int | None = None
    gpu_sram_mj: int | None = None
    ane_mj: int | None = None


@dataclass
class FakeZeusGpu:
    trace: Trace = field(default_factory=SineTrace)
    name: str = "AMD Instinct MI250X"
    #: °C, a function of seconds since the fake started, or None: the query raises
    temperature: float | Callable[[float], float] | None = 45.0


@dataclass
class FakeZeusCpu:
    trace: Trace = field(default_factory=lambda: RampTrace(60.0, 0.0))
    dram: Trace | None = field(default_factory=lambda: RampTrace(8.0, 0.0))


@dataclass
class FakeSoc:
    """An SoC whose fields (names of a measurement dataclass) follow traces."""

    kind: type = JetsonMeasurement
    traces: dict[str, Trace] = field(default_factory=dict)


class _Gpus:
    def __init__(self, owner: FakeZeus):
        self._owner = owner

    @property
    def gpus(self) -> list[FakeZeusGpu]:
        return self._owner.gpus

    def __len__(self) -> int:
        return len(self._owner.gpus)

    def get_name(self, gpu_index: int) -> str:
        return self._owner.gpus[gpu_index].name

    def get_gpu_temperature(self, gpu_index: int) -> int:
        gpu = self._owner.gpus[gpu_index]
        if gpu.temperature is None:
            raise RuntimeError("temperature not supported")
        value = gpu.temperature(self._owner.elapsed()) if callable(gpu.temperature) else gpu.temperature
        return int(value)


class _Cpus:
    def __init__(self, owner: FakeZeus):
        self._owner = owner

    def __len__(self) -> int:
        return len(self._owner.cpus)


class _Soc:
    def get_available_metrics(self) -> set[str]:
        return {"cpu", "gpu"}


class FakeZeus:
    """State of the fake package; ``ZeusMonitor`` instances made from ``.module`` read it."""

    def __init__(
        self,
        gpus: list[FakeZeusGpu] | None = None,
        cpus: list[FakeZeusCpu] | None = None,
        soc: FakeSoc | None = None,
        *,
        clock: Callable[[], float] = time.time,
        version: str = "0.16.0",
        init_error: Exception | None = None,
    ):
        self.gpus = [FakeZeusGpu()] if gpus is None else list(gpus)
        self.cpus = [] if cpus is None else list(cpus)
        self.soc = soc
        self.clock = clock
        self.t0 = clock()
        self.version = version
        self.init_error = init_error
        self.monitors: list[object] = []
        self.sync_requests = 0
        self.module, self.monitor_module = self._build_modules()

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def energy(self, trace: Trace) -> float:
        """Joules a trace has used since the fake started."""
        return trace.energy(self.elapsed())

    def install(self, monkeypatch) -> FakeZeus:
        monkeypatch.setitem(sys.modules, "zeus", self.module)
        monkeypatch.setitem(sys.modules, "zeus.monitor", self.monitor_module)
        return self

    def soc_state(self):
        if self.soc is None:
            return None
        values = {}
        for f in fields(self.soc.kind):
            trace = self.soc.traces.get(f.name)
            values[f.name] = None if trace is None else self.energy(trace) * 1000.0
        return values

    def _build_modules(self) -> tuple[types.ModuleType, types.ModuleType]:
        fake = self

        class ZeusMonitor:
            def __init__(
                self,
                gpu_indices=None,
                cpu_indices=None,
                approx_instant_energy=False,
                log_file=None,
                sync_execution_with="torch",
            ):
                if fake.init_error is not None:
                    raise fake.init_error
                self.gpus = _Gpus(fake)
                self.cpus = _Cpus(fake)
                self.soc = _Soc() if fake.soc else None
                self.soc_is_present = fake.soc is not None
                self.gpu_indices = gpu_indices if gpu_indices is not None else list(range(len(fake.gpus)))
                self.cpu_indices = cpu_indices if cpu_indices is not None else list(range(len(fake.cpus)))
                self.power_monitor = None
                self.measurement_states: dict[str, tuple] = {}
                fake.monitors.append(self)

            def _state(self):
                gpu = {i: fake.energy(fake.gpus[i].trace) for i in self.gpu_indices}
                cpu = {i: fake.energy(fake.cpus[i].trace) for i in self.cpu_indices}
                dram = {i: fake.energy(fake.cpus[i].dram) for i in self.cpu_indices if fake.cpus[i].dram}
                return fake.clock(), gpu, cpu, dram, fake.soc_state()

            def begin_window(self, key, sync_execution=True, restart=False):
                if key in self.measurement_states and not restart:
                    raise ValueError(f"Measurement window '{key}' already exists")
                fake.sync_requests += bool(sync_execution)
                self.measurement_states[key] = self._state()

            def end_window(self, key, sync_execution=True, cancel=False):
                try:
                    start = self.measurement_states.pop(key)
                except KeyError:
                    raise ValueError(f"Measurement window '{key}' does not exist") from None
                fake.sync_requests += bool(sync_execution)
                end = self._state()
                t0, gpu0, cpu0, dram0, soc0 = start
                t1, gpu1, cpu1, dram1, soc1 = end
                soc = None
                if soc1 is not None:
                    soc = fake.soc.kind(**{k: None if v is None else v - soc0[k] for k, v in soc1.items()})
                return Measurement(
                    time=t1 - t0,
                    gpu_energy={i: gpu1[i] - gpu0[i] for i in gpu1},
                    cpu_energy={i: cpu1[i] - cpu0[i] for i in cpu1} or None,
                    dram_energy={i: dram1[i] - dram0[i] for i in dram1} or None,
                    soc_energy=soc,
                )

        package = types.ModuleType("zeus", "fake zeus for tests")
        package.__version__ = self.version
        package.__path__ = []  # a package, so that "import zeus.monitor" is allowed
        monitor = types.ModuleType("zeus.monitor")
        monitor.ZeusMonitor = ZeusMonitor
        monitor.Measurement = Measurement
        package.monitor = monitor
        return package, monitor
