"""Where joules come from: GPU (NVML), CPU package/DRAM (RAPL) and the CPU-time estimate.

``select_meter(kind, ...)`` builds the meter asked for; every meter measures windows with
``mark = meter.begin()`` ... ``reading = meter.end(mark)``. Nothing here imports pytest or torch.
"""

from __future__ import annotations


class EnergyBenchWarning(UserWarning):
    """Something about a measurement the user should know (a fallback, a too-short window)."""


# Defined before the submodules are imported: they import it from this package.
from energy_bench.meters.base import (  # noqa: E402
    CompositeMeter,
    Meter,
    MeterError,
    MeterUnavailable,
    Reading,
    Source,
)
from energy_bench.meters.estimate import DEFAULT_CPU_WATTS, EstimateMeter  # noqa: E402
from energy_bench.meters.nvml import GpuIndexError, NvmlMeter  # noqa: E402
from energy_bench.meters.rapl import DEFAULT_POWERCAP_ROOT, RaplMeter  # noqa: E402
from energy_bench.meters.select import METER_KINDS, select_meter  # noqa: E402

__all__ = [
    "CompositeMeter",
    "DEFAULT_CPU_WATTS",
    "DEFAULT_POWERCAP_ROOT",
    "EnergyBenchWarning",
    "EstimateMeter",
    "GpuIndexError",
    "METER_KINDS",
    "Meter",
    "MeterError",
    "MeterUnavailable",
    "NvmlMeter",
    "RaplMeter",
    "Reading",
    "Source",
    "select_meter",
]
