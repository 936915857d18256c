"""GPU energy from NVML: the total-energy counter, or integrated power where a GPU lacks it.

Counter path (Volta and newer): joules = difference of ``nvmlDeviceGetTotalEnergyConsumption`` (mJ).
Polling path (older GPUs, counter "Not Supported"): a daemon thread samples
``nvmlDeviceGetPowerUsage`` (mW) every ``poll_period_s`` and integrates with the trapezoid rule.
Window boundaries take a sample too, so each window's integral starts and ends exactly at
``begin()``/``end()``. The thread starts with the first window and runs until ``close()``.

``pynvml`` is imported when a meter is built (not at import time), so machines without
nvidia-ml-py can still import this package and tests can substitute a fake module.
GPUs are numbered as CUDA numbers them (CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER applied, see
:mod:`energy_bench.meters.gpus`): domain ``gpu0`` is ``cuda:0``. Synchronizing the device before a read
is the caller's job.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from energy_bench.errors import EnergyBenchWarning
from energy_bench.meters.base import Meter, MeterError, MeterUnavailable, Reading, Source
from energy_bench.meters.gpus import CudaGpu, GpuIndexError, load_pynvml, select_gpus
from energy_bench.meters.gpus import text as _text

#: the energy counter refreshes about every 100 ms; shorter windows read coarse values
COUNTER_UPDATE_S = 0.1
#: rounds of ten counter updates or more: the refresh step is then within about 10 % of a round
MIN_ROUND_S = 1.0
#: 40 Hz: fine enough for power that changes with kernels, cheap enough to stay under 1 % of a core
DEFAULT_POLL_PERIOD_S = 0.025
#: longest single sleep of the polling thread, bounding how long close() waits for it
STOP_SLICE_S = 0.1
#: a polled window needs several samples before the trapezoid rule means much
MIN_SAMPLES_PER_WINDOW = 4


__all__ = ["GpuIndexError", "NvmlMeter", "PowerIntegrator", "load_pynvml"]


@dataclass(frozen=True)
class _Gpu:
    device: CudaGpu
    counter: bool  # True: energy counter, False: power polling
    power_limit_w: float | None
    counter_unavailable: str | None = None

    @property
    def index(self) -> int:
        """The CUDA index: marks and readings are keyed by it."""
        return self.device.cuda_index

    @property
    def handle(self) -> Any:
        return self.device.handle

    @property
    def name(self) -> str:
        return self.device.name

    @property
    def domain(self) -> str:
        return self.device.domain


@dataclass(frozen=True)
class NvmlMark:
    time: float
    counter_mj: dict[int, int]
    polled_j: dict[int, float]
    errors: int


class PowerIntegrator:
    """Cumulative joules per GPU from power samples (trapezoid rule).

    Samples come from a daemon thread every ``period_s`` and from the window boundaries.
    ``read_watts`` returns {gpu index: watts} and may raise one of ``error_types``: errors in
    the thread are recorded (windows spanning them fail); errors at a boundary propagate.
    """

    def __init__(
        self,
        read_watts: Callable[[], dict[int, float]],
        *,
        period_s: float,
        clock: Callable[[], float],
        error_types: tuple[type[BaseException], ...],
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.period_s = period_s
        self._read = read_watts
        self._clock = clock
        self._sleep = sleep
        self._error_types = error_types
        self._lock = threading.Lock()
        self._last: tuple[float, dict[int, float]] | None = None
        self._joules: dict[int, float] = {}
        self._errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0
        self.thread_cpu_s = 0.0
        self.thread_wall_s = 0.0

    def sample(self) -> tuple[float, dict[int, float], int]:
        """Take one sample now; returns (its time, cumulative joules per GPU, errors seen so far)."""
        with self._lock:
            now = self._clock()
            watts = self._read()
            if self._last is not None:
                then, before = self._last
                dt = now - then
                for index, power in watts.items():
                    self._joules[index] = self._joules.get(index, 0.0) + 0.5 * (before[index] + power) * dt
            else:
                self._joules = {index: 0.0 for index in watts}
            self._last = (now, watts)
            self.samples += 1
            return now, dict(self._joules), len(self._errors)

    def errors_since(self, count: int) -> list[str]:
        with self._lock:
            return self._errors[count:]

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="energy-bench-nvml-poll", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        cpu0, wall0 = time.thread_time(), time.monotonic()
        while self._pause():
            try:
                self.sample()
            except self._error_types as exc:
                with self._lock:
                    self._errors.append(_text(exc) or type(exc).__name__)
            self.thread_cpu_s = time.thread_time() - cpu0
            self.thread_wall_s = time.monotonic() - wall0

    def _pause(self) -> bool:
        """Sleep one period (in slices, so stop() never waits long); False once stopped.

        time.sleep wakes more cheaply than Event.wait (no lock and condition to take per
        wake-up), which keeps the thread under 1 % of a core at 40 Hz.
        """
        deadline = time.monotonic() + self.period_s
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            self._sleep(min(remaining, STOP_SLICE_S))
        return False

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_SLICE_S + 1.0)


class NvmlMeter(Meter):
    """Joules per GPU (domains ``gpu0``, ``gpu1``, ... numbered as CUDA numbers them) from NVML.

    ``gpus``: CUDA indices to measure, i.e. positions in CUDA_VISIBLE_DEVICES when it is set (default: every GPU
    CUDA shows). ``environ`` stands in for the process environment (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER).
    ``polling=True`` forces the power-polling path even where the counter exists (used to compare the two).
    """

    source = Source.MEASURED
    min_round_s = MIN_ROUND_S

    def __init__(
        self,
        gpus: Iterable[int] | None = None,
        *,
        polling: bool = False,
        poll_period_s: float = DEFAULT_POLL_PERIOD_S,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
    ):
        if poll_period_s <= 0:
            raise ValueError("poll_period_s must be positive")
        self._nvml = nvml = load_pynvml()
        self._clock = clock
        self._closed = False
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise MeterUnavailable(_init_failure(nvml, exc)) from None
        try:
            self._view, devices = select_gpus(nvml, gpus, environ)
            self._gpus = [self._open_gpu(device, polling) for device in devices]
            self.driver_version = self._driver_version()
        except nvml.NVMLError as exc:
            self._shutdown()
            raise MeterUnavailable(f"NVML query failed: {_text(exc)}") from None
        except BaseException:
            self._shutdown()
            raise
        polled = [g for g in self._gpus if not g.counter]
        self.poll_period_s = poll_period_s if polled else None
        self._integrator = (
            PowerIntegrator(
                self._read_watts,
                period_s=poll_period_s,
                clock=clock,
                error_types=(nvml.NVMLError,),
            )
            if polled
            else None
        )
        self.name = "nvml-power" if polled else "nvml-counter"
        self.update_period_s = (
            max(COUNTER_UPDATE_S, MIN_SAMPLES_PER_WINDOW * poll_period_s) if polled else COUNTER_UPDATE_S
        )

    # -- setup -----------------------------------------------------------------------------

    def _open_gpu(self, device: CudaGpu, polling: bool) -> _Gpu:
        nvml = self._nvml
        handle = device.handle
        try:
            limit_w: float | None = nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0
        except nvml.NVMLError:
            limit_w = None
        reason = "polling requested" if polling else None
        if not polling:
            try:
                nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                return _Gpu(device, True, limit_w)
            except nvml.NVMLError as exc:
                reason = _text(exc)
        try:
            nvml.nvmlDeviceGetPowerUsage(handle)
        except nvml.NVMLError as exc:
            raise MeterUnavailable(
                f"GPU {device.cuda_index} ({device.name}): NVML has neither an energy counter ({reason}) "
                f"nor a power reading ({_text(exc)})"
            ) from None
        return _Gpu(device, False, limit_w, reason)

    def _driver_version(self) -> str | None:
        try:
            return _text(self._nvml.nvmlSystemGetDriverVersion())
        except self._nvml.NVMLError:
            return None

    # -- reads -----------------------------------------------------------------------------

    def _read_counters(self) -> dict[int, int]:
        read = self._nvml.nvmlDeviceGetTotalEnergyConsumption
        return {g.index: read(g.handle) for g in self._gpus if g.counter}

    def _read_watts(self) -> dict[int, float]:
        read = self._nvml.nvmlDeviceGetPowerUsage
        return {g.index: read(g.handle) / 1000.0 for g in self._gpus if not g.counter}

    def _read_all(self, when: str) -> tuple[float, dict[int, int], dict[int, float], int]:
        if self._closed:
            raise MeterError("NVML meter is closed")
        now = self._clock()
        try:
            counters = self._read_counters()
            if self._integrator:
                # The sample's own time bounds the window, so seconds and joules cover the same span.
                now, polled, errors = self._integrator.sample()
            else:
                polled, errors = {}, 0
        except self._nvml.NVMLError as exc:
            raise MeterError(f"NVML read failed at window {when}: {_text(exc)}") from None
        return now, counters, polled, errors

    # -- Meter interface -------------------------------------------------------------------

    def begin(self) -> NvmlMark:
        now, counters, polled, errors = self._read_all("start")
        if self._integrator:
            self._integrator.start()
        return NvmlMark(now, counters, polled, errors)

    def end(self, mark: NvmlMark) -> Reading:
        now, counters, polled, _ = self._read_all("end")
        if self._integrator:
            failed = self._integrator.errors_since(mark.errors)
            if failed:
                raise MeterError(f"NVML power polling failed during the window: {failed[-1]}")
        joules: dict[str, float] = {}
        for gpu in self._gpus:
            if gpu.counter:
                delta = counters[gpu.index] - mark.counter_mj[gpu.index]
                if delta < 0:
                    raise MeterError(f"{gpu.domain}: NVML energy counter went backwards (GPU reset or driver reload?)")
                joules[gpu.domain] = delta / 1000.0
            else:
                joules[gpu.domain] = polled[gpu.index] - mark.polled_j[gpu.index]
        seconds = now - mark.time
        notes: tuple[str, ...] = ()
        if seconds < self.update_period_s:
            what = "energy counter" if self.name == "nvml-counter" else "power polling"
            period_ms = self.update_period_s * 1000
            notes = (
                f"window of {seconds * 1000:.1f} ms is shorter than the NVML {what} update period "
                f"({period_ms:.0f} ms): its joules are coarse",
            )
            # A fixed text, so Python and pytest show it once rather than once per round.
            warnings.warn(
                f"energy windows shorter than {period_ms:.0f} ms (the NVML {what} update period) "
                "give coarse joules; make rounds longer",
                EnergyBenchWarning,
                stacklevel=2,
            )
        return Reading(joules, seconds, Source.MEASURED, self.name, notes)

    def domains(self) -> list[str]:
        return [g.domain for g in self._gpus]

    def temperatures(self) -> dict[str, float]:
        """GPU temperature (°C, NVML's GPU sensor) per domain; a GPU whose sensor cannot be read is left out."""
        if self._closed:
            return {}
        found = {}
        for gpu in self._gpus:
            with contextlib.suppress(self._nvml.NVMLError):
                found[gpu.domain] = float(self._temperature(gpu.handle))
        return found

    def _temperature(self, handle: Any) -> int:
        nvml = self._nvml
        try:
            return nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
        except nvml.NVMLError as exc:
            # nvmlDeviceGetTemperature is deprecated; drivers that dropped it have the versioned call
            newer = getattr(nvml, "nvmlDeviceGetTemperatureV", None)
            if getattr(exc, "value", None) != getattr(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", object()) or not newer:
                raise
            return newer(handle, nvml.NVML_TEMPERATURE_GPU)

    def polling_stats(self) -> dict[str, float] | None:
        """Samples taken and the polling thread's CPU and wall seconds (None: no polling)."""
        if self._integrator is None:
            return None
        it = self._integrator
        return {"samples": it.samples, "thread_cpu_s": it.thread_cpu_s, "thread_wall_s": it.thread_wall_s}

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "meter": self.name,
            "source": self.source.value,
            "driver_version": self.driver_version,
            "update_period_s": self.update_period_s,
            **self._view.describe(),
            "gpus": [
                {
                    **g.device.describe(),
                    "power_limit_w": g.power_limit_w,
                    "source": "counter" if g.counter else "polling",
                    **({"counter_unavailable": g.counter_unavailable} if g.counter_unavailable else {}),
                }
                for g in self._gpus
            ],
        }
        if self.poll_period_s is not None:
            info["poll_period_s"] = self.poll_period_s
            info["polling"] = self.polling_stats()
        return info

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._integrator:
            self._integrator.stop()
        self._shutdown()

    def _shutdown(self) -> None:
        with contextlib.suppress(self._nvml.NVMLError):
            self._nvml.nvmlShutdown()


def _init_failure(nvml: Any, exc: BaseException) -> str:
    code = getattr(exc, "value", None)
    if code == getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", object()):
        return f"NVML library not found ({_text(exc)}: libnvidia-ml.so.1 is missing; is an NVIDIA driver installed?)"
    if code == getattr(nvml, "NVML_ERROR_DRIVER_NOT_LOADED", object()):
        return f"NVML cannot start: {_text(exc)} (no NVIDIA driver loaded)"
    return f"NVML cannot start: {_text(exc)}"
