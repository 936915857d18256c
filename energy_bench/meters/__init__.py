"""Where joules come from: GPU (NVML), CPU package/DRAM (RAPL), the CPU-time estimate, and plugged-in meters.

``select_meter(name, ...)`` builds the meter asked for (:mod:`energy_bench.meters.select`: built-ins, the
``energy_bench.meters`` entry points, the ``auto`` order); every meter measures windows with
``mark = meter.begin()`` ... ``reading = meter.end(mark)``. :mod:`energy_bench.meters.cpus` picks the estimate's
watts for the detected CPU. :mod:`energy_bench.meters.gpus` maps CUDA's GPU
numbering to NVML devices. Nothing here imports pytest or torch.
"""

from __future__ import annotations

from energy_bench.errors import EnergyBenchWarning
from energy_bench.meters.base import (
    CompositeMeter,
    Meter,
    MeterError,
    MeterNotInstalled,
    MeterUnavailable,
    Reading,
    Source,
)
from energy_bench.meters.estimate import (
    LEGACY_CPU_WATTS,
    EstimateMeter,
    EstimateModel,
    detect_model,
    estimate_model_of,
)
from energy_bench.meters.gpus import GpuIndexError, MigUnsupported, nvml_index
from energy_bench.meters.nvml import NvmlMeter
from energy_bench.meters.rapl import DEFAULT_POWERCAP_ROOT, RaplMeter
from energy_bench.meters.select import (
    BUILTIN_METERS,
    ENTRY_POINT_GROUP,
    MeterSettings,
    meter_names,
    select_meter,
)

__all__ = [
    "BUILTIN_METERS",
    "DEFAULT_POWERCAP_ROOT",
    "ENTRY_POINT_GROUP",
    "LEGACY_CPU_WATTS",
    "CompositeMeter",
    "EnergyBenchWarning",
    "EstimateMeter",
    "EstimateModel",
    "GpuIndexError",
    "Meter",
    "MeterError",
    "MeterNotInstalled",
    "MeterSettings",
    "MeterUnavailable",
    "MigUnsupported",
    "NvmlMeter",
    "RaplMeter",
    "Reading",
    "Source",
    "detect_model",
    "estimate_model_of",
    "meter_names",
    "nvml_index",
    "select_meter",
]
