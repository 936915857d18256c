"""Choosing the meter for ``--energy-meter=auto|nvml|rapl|estimate``.

A meter asked for by name either works or raises :class:`MeterUnavailable` saying why (the
plugin turns that into a usage error). ``auto`` takes the best that works: NVML for the GPUs
plus RAPL for the CPU when both work, else whichever works, else the CPU-time estimate; each
step down is announced with an :class:`EnergyBenchWarning` carrying the reasons.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from energy_bench.errors import EnergyBenchWarning
from energy_bench.meters.base import CompositeMeter, Meter, MeterUnavailable
from energy_bench.meters.estimate import DEFAULT_CPU_WATTS, EstimateMeter
from energy_bench.meters.nvml import GpuIndexError, NvmlMeter
from energy_bench.meters.rapl import DEFAULT_POWERCAP_ROOT, RaplMeter

METER_KINDS = ("auto", "nvml", "rapl", "estimate")


def select_meter(
    kind: str = "auto",
    *,
    gpus: Iterable[int] | None = None,
    powercap_root: str = DEFAULT_POWERCAP_ROOT,
    cpu_watts: float = DEFAULT_CPU_WATTS,
) -> Meter:
    """Build the meter for ``kind``. Raises MeterUnavailable when a named meter cannot work.

    In ``auto``, GPU indices that NVML does not see are still an error (a wrong setting is
    not something to fall back from); a missing library or unreadable counters are not.
    """
    if kind == "nvml":
        return NvmlMeter(gpus)
    if kind == "rapl":
        return RaplMeter(powercap_root)
    if kind == "estimate":
        return EstimateMeter(cpu_watts)
    if kind != "auto":
        raise ValueError(f"unknown meter {kind!r}; expected one of {', '.join(METER_KINDS)}")

    nvml = rapl = None
    try:
        nvml = NvmlMeter(gpus)
    except GpuIndexError:
        raise
    except MeterUnavailable as exc:
        nvml_reason = str(exc)
    try:
        rapl = RaplMeter(powercap_root)
    except MeterUnavailable as exc:
        rapl_reason = str(exc)

    if nvml and rapl:
        return CompositeMeter([nvml, rapl])
    if nvml:
        _warn(f"{rapl_reason}; measuring the GPUs only (CPU energy is not counted)")
        return nvml
    if rapl:
        _warn(f"{nvml_reason}; measuring the CPU with RAPL only")
        return rapl
    _warn(f"{nvml_reason}; {rapl_reason}; using the CPU-time estimate ({cpu_watts:g} W per busy core)")
    return EstimateMeter(cpu_watts)


def _warn(message: str) -> None:
    warnings.warn(message, EnergyBenchWarning, stacklevel=3)
