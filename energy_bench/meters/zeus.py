"""Energy through Zeus (the ``zeus`` package: ``pip install -e '.[zeus]'``).

Zeus's ``ZeusMonitor`` measures NVIDIA and AMD GPUs, CPU packages and DRAM through RAPL (also without root, through
the Zeus daemon), and SoCs (Apple silicon, NVIDIA Jetson), so this one meter covers devices the built-in meters do
not. It is registered through this package's own ``energy_bench.meters`` entry point (``zeus``), the way any other
package would add a meter.

A window is one Zeus window: ``begin_window(name)`` ... ``end_window(name)`` returns a ``Measurement`` with
``time`` (s), ``gpu_energy``/``cpu_energy``/``dram_energy`` ({index: J}; the last two None when unmeasured) and
``soc_energy`` (a dataclass of mJ fields, or None). Zeus refuses a name already in use, so every window gets a
fresh one and windows may overlap. Domains: ``zeus-gpu<i>`` (i: CUDA index, as Zeus numbers GPUs; Zeus reads
CUDA_VISIBLE_DEVICES as integers only), ``zeus-cpu<i>``, ``zeus-dram<i>``, and ``zeus-soc-<part>`` (see
:data:`SOC_PARTS`). Devices are synchronized by :mod:`energy_bench.meters.window` like for every meter, so Zeus's own
synchronization (which would import torch) is off. Zeus is imported when the meter is built: it takes seconds.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable
from typing import Any

from energy_bench.meters.base import Meter, MeterError, MeterNotInstalled, MeterUnavailable, Reading, Source
from energy_bench.meters.gpus import VISIBLE_DEVICES_VAR, GpuIndexError

#: SoC measurement fields (mJ) -> domain suffix. Where a field contains others, only it is read: Jetson's
#: total_energy_mj (the module's input rail) holds its CPU and GPU rails; Apple's cpu_total_mj holds the per-core,
#: per-cluster and core-manager fields, which are therefore not listed.
SOC_PARTS = {
    "total_energy_mj": "total",
    "cpu_total_mj": "cpu",
    "cpu_energy_mj": "cpu",
    "gpu_mj": "gpu",
    "gpu_energy_mj": "gpu",
    "gpu_sram_mj": "gpu-sram",
    "ane_mj": "ane",
    "dram_mj": "dram",
}
#: GPU energy counters refresh about every 100 ms (NVML; amdsmi is similar), as for the nvml meter
GPU_UPDATE_S = 0.1
GPU_MIN_ROUND_S = 1.0
#: RAPL only: fine-grained counters, as for the rapl meter
CPU_UPDATE_S = 0.001
CPU_MIN_ROUND_S = 0.1


def load_zeus() -> tuple[Any, str]:
    """Zeus's ``ZeusMonitor`` class and the package version, or MeterNotInstalled."""
    try:
        import zeus
        from zeus.monitor import ZeusMonitor
    except ImportError as exc:
        raise MeterNotInstalled(
            f"zeus is not installed (pip install -e '.[zeus]'; importing it failed: {exc})"
        ) from None
    return ZeusMonitor, str(getattr(zeus, "__version__", "unknown"))


def soc_domains(soc: Any) -> dict[str, float]:
    """Joules per ``zeus-soc-<part>`` domain from a Zeus SoC measurement (fields in mJ), none counted twice."""
    if soc is None:
        return {}
    values = {name: getattr(soc, name, None) for name in SOC_PARTS}
    if values["total_energy_mj"] is not None:
        values = {"total_energy_mj": values["total_energy_mj"]}
    return {f"zeus-soc-{SOC_PARTS[name]}": float(mj) / 1000.0 for name, mj in values.items() if mj is not None}


class ZeusMeter(Meter):
    """Joules per device Zeus measures; ``gpus``: CUDA indices (default: every GPU Zeus sees)."""

    name = "zeus"
    source = Source.MEASURED

    def __init__(self, gpus: Iterable[int] | None = None):
        monitor_class, self.zeus_version = load_zeus()
        wanted = None if gpus is None else list(dict.fromkeys(gpus))
        try:
            self._monitor = monitor_class(gpu_indices=wanted)
        except Exception as exc:  # Zeus raises its own errors, ValueError for a UUID in CUDA_VISIBLE_DEVICES, ...
            hint = ""
            if any(not part.strip().isdigit() for part in os.environ.get(VISIBLE_DEVICES_VAR, "0").split(",")):
                hint = f" (Zeus reads {VISIBLE_DEVICES_VAR} as GPU indices only)"
            raise MeterUnavailable(f"Zeus cannot start: {type(exc).__name__}: {exc}{hint}") from None
        monitor = self._monitor
        count = len(monitor.gpus)
        bad = [i for i in wanted or () if not 0 <= i < count]
        if bad:
            raise GpuIndexError(
                f"GPU index {', '.join(map(str, bad))} out of range: Zeus sees {count} GPU(s), indices 0..{count - 1}"
            )
        self._gpu_indices = list(monitor.gpu_indices)
        self._cpu_indices = list(monitor.cpu_indices)
        self._soc = bool(getattr(monitor, "soc_is_present", False))
        if not (self._gpu_indices or self._cpu_indices or self._soc):
            raise MeterUnavailable("Zeus sees no GPU, no readable CPU counter and no SoC")
        #: a GPU or an SoC: something the rapl meter could not measure
        self.sees_accelerator = bool(self._gpu_indices) or self._soc
        self.update_period_s = GPU_UPDATE_S if self.sees_accelerator else CPU_UPDATE_S
        self.min_round_s = GPU_MIN_ROUND_S if self.sees_accelerator else CPU_MIN_ROUND_S
        self._names = itertools.count()
        self._closed = False

    def begin(self) -> str:
        if self._closed:
            raise MeterError("Zeus meter is closed")
        key = f"energy-bench-{next(self._names)}"  # Zeus refuses a name in use: one per window
        try:
            self._monitor.begin_window(key, sync_execution=False)
        except Exception as exc:
            raise MeterError(f"Zeus window start failed: {type(exc).__name__}: {exc}") from None
        return key

    def end(self, mark: str) -> Reading:
        if self._closed:
            raise MeterError("Zeus meter is closed")
        try:
            measured = self._monitor.end_window(mark, sync_execution=False)
        except Exception as exc:
            raise MeterError(f"Zeus window end failed: {type(exc).__name__}: {exc}") from None
        joules = {f"zeus-gpu{i}": float(j) for i, j in measured.gpu_energy.items()}
        joules.update({f"zeus-cpu{i}": float(j) for i, j in (measured.cpu_energy or {}).items()})
        joules.update({f"zeus-dram{i}": float(j) for i, j in (measured.dram_energy or {}).items()})
        joules.update(soc_domains(getattr(measured, "soc_energy", None)))
        seconds = float(measured.time)
        notes: tuple[str, ...] = ()
        if seconds < self.update_period_s:
            notes = (
                f"window of {seconds * 1000:.1f} ms is shorter than the counters' update period "
                f"({self.update_period_s * 1000:.0f} ms): its joules are coarse",
            )
        return Reading(joules, seconds, Source.MEASURED, self.name, notes)

    def domains(self) -> list[str]:
        """GPU and CPU domains (DRAM and SoC parts are known from the first reading on)."""
        return [f"zeus-gpu{i}" for i in self._gpu_indices] + [f"zeus-cpu{i}" for i in self._cpu_indices]

    def temperatures(self) -> dict[str, float]:
        """GPU temperatures through Zeus (°C); a GPU that cannot tell is left out."""
        found = {}
        for i in self._gpu_indices:
            with contextlib.suppress(Exception):
                found[f"zeus-gpu{i}"] = float(self._monitor.gpus.get_gpu_temperature(i))
        return found

    def info(self) -> dict[str, Any]:
        monitor = self._monitor
        info: dict[str, Any] = {
            "meter": self.name,
            "source": self.source.value,
            "zeus_version": self.zeus_version,
            "update_period_s": self.update_period_s,
            VISIBLE_DEVICES_VAR: os.environ.get(VISIBLE_DEVICES_VAR),
            "gpu_library": type(monitor.gpus).__name__,
            "gpus": [{"domain": f"zeus-gpu{i}", "index": i, "name": _gpu_name(monitor, i)} for i in self._gpu_indices],
            "cpu_library": type(monitor.cpus).__name__,
            "cpus": [{"domain": f"zeus-cpu{i}", "index": i} for i in self._cpu_indices],
        }
        if self._soc:
            info["soc"] = {"library": type(monitor.soc).__name__, "metrics": _soc_metrics(monitor.soc)}
        return info

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        power_monitor = getattr(self._monitor, "power_monitor", None)  # polling processes for pre-Volta GPUs
        if power_monitor is not None:
            with contextlib.suppress(Exception):
                power_monitor.stop()


def _gpu_name(monitor: Any, index: int) -> str | None:
    try:
        return str(monitor.gpus.get_name(index))
    except Exception:
        return None


def _soc_metrics(soc: Any) -> list[str]:
    try:
        return sorted(str(m) for m in soc.get_available_metrics())
    except Exception:
        return []


def from_settings(settings: Any) -> ZeusMeter:
    """The ``zeus`` entry point: a :class:`ZeusMeter` for the harness settings (``settings.gpus``)."""
    return ZeusMeter(settings.gpus)
