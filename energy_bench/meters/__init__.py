"""Where joules come from: GPU (NVML), CPU package/DRAM (RAPL) and the CPU-time estimate.

``select_meter(kind, ...)`` builds the meter asked for; every meter measures windows with
``mark = meter.begin()`` ... ``reading = meter.end(mark)``. Nothing here imports pytest or torch.
"""

from __future__ import annotations

from energy_bench.errors import EnergyBenchWarning
from energy_bench.meters.base import CompositeMeter, Meter, MeterError, MeterUnavailable, Reading, Source
from energy_bench.meters.estimate import DEFAULT_CPU_WATTS, EstimateMeter
from energy_bench.meters.nvml import GpuIndexError, NvmlMeter
from energy_bench.meters.rapl import DEFAULT_POWERCAP_ROOT, RaplMeter
from energy_bench.meters.select import METER_KINDS, select_meter

__all__ = [
    "DEFAULT_CPU_WATTS",
    "DEFAULT_POWERCAP_ROOT",
    "METER_KINDS",
    "CompositeMeter",
    "EnergyBenchWarning",
    "EstimateMeter",
    "GpuIndexError",
    "Meter",
    "MeterError",
    "MeterUnavailable",
    "NvmlMeter",
    "RaplMeter",
    "Reading",
    "Source",
    "select_meter",
]
