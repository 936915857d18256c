"""Choosing the meter for ``--energy-meter=NAME``: the built-ins, meters other packages plug in, and ``auto``.

Built-in meters: ``nvml`` (NVIDIA GPUs), ``rapl`` (CPU package and DRAM counters), ``estimate`` (CPU time x watts).
Other packages add meters through the entry point group ``energy_bench.meters``: each entry point's name is the
meter's name and its object a :class:`~energy_bench.meters.Meter` class or any factory called with one argument,
a :class:`MeterSettings`, that returns a meter (or raises :class:`MeterUnavailable` saying why it cannot work).
This package registers its own Zeus meter that way (``zeus``, :mod:`energy_bench.meters.zeus`). A plug-in cannot
take a built-in name. A meter asked for by name either works or raises :class:`MeterUnavailable` saying why; a
plug-in that fails to import or to build says so too (the plugin turns both into usage errors).

``auto`` takes the first that works, in this order:

1. ``nvml`` when NVML sees a GPU, with ``rapl`` beside it when the CPU counters are readable;
2. ``zeus`` (when installed) when it sees a GPU or an SoC (AMD GPUs, Apple silicon, Jetson), or CPU counters that
   ``rapl`` cannot read (through the Zeus daemon);
3. ``rapl``;
4. plugged-in meters whose factory declares ``auto = True``, by name;
5. ``estimate``, which always works.

Each step down is announced with one :class:`EnergyBenchWarning` carrying the reasons; a plug-in that fails to
load on the way is a warning too. GPUs that do not exist (``--energy-gpus``, ``CUDA_VISIBLE_DEVICES``) are an error
even in ``auto``: a wrong setting is not something to fall back from.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from energy_bench.errors import EnergyBenchWarning
from energy_bench.meters.base import CompositeMeter, Meter, MeterNotInstalled, MeterUnavailable
from energy_bench.meters.estimate import EstimateMeter
from energy_bench.meters.gpus import GpuIndexError
from energy_bench.meters.nvml import NvmlMeter
from energy_bench.meters.rapl import DEFAULT_POWERCAP_ROOT, RaplMeter

ENTRY_POINT_GROUP = "energy_bench.meters"
AUTO = "auto"
BUILTIN_METERS = ("nvml", "rapl", "estimate")
#: plugged-in meters that auto tries before rapl (they cover devices the built-ins cannot)
AUTO_BEFORE_RAPL = ("zeus",)


@dataclass(frozen=True)
class MeterSettings:
    """What a meter factory gets: the harness settings that concern meters."""

    #: CUDA indices to measure (--energy-gpus), None: every GPU CUDA shows
    gpus: tuple[int, ...] | None = None
    powercap_root: str = DEFAULT_POWERCAP_ROOT
    #: --energy-cpu-watts; None: the detected CPU's coefficients
    cpu_watts: float | None = None


def meter_entry_points() -> Sequence[importlib.metadata.EntryPoint]:
    """The installed entry points of group ``energy_bench.meters`` (tests replace this function)."""
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def plugged_in_meters() -> dict[str, importlib.metadata.EntryPoint]:
    """Plugged-in meters by name (the first of a name wins; built-in names and ``auto`` are not taken)."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for entry in meter_entry_points():
        name = entry.name.strip().lower()
        if name in BUILTIN_METERS or name == AUTO:
            _warn(f"meter entry point {entry.name} = {entry.value} ignored: {name!r} is a built-in name", stacklevel=2)
            continue
        found.setdefault(name, entry)
    return found


def meter_names() -> tuple[str, ...]:
    """Every name ``--energy-meter`` accepts: auto, the built-ins, then plugged-in meters by name."""
    return (AUTO, *BUILTIN_METERS, *sorted(plugged_in_meters()))


def select_meter(
    kind: str = AUTO,
    *,
    gpus: Iterable[int] | None = None,
    powercap_root: str = DEFAULT_POWERCAP_ROOT,
    cpu_watts: float | None = None,
) -> Meter:
    """Build the meter called ``kind``. Raises MeterUnavailable when a named meter cannot work."""
    settings = MeterSettings(None if gpus is None else tuple(gpus), powercap_root, cpu_watts)
    if kind == "nvml":
        return NvmlMeter(settings.gpus)
    if kind == "rapl":
        return RaplMeter(powercap_root)
    if kind == "estimate":
        return EstimateMeter(cpu_watts)
    if kind == AUTO:
        return _auto(settings)
    plugged = plugged_in_meters()
    if kind not in plugged:
        raise ValueError(f"unknown meter {kind!r}; expected one of {', '.join(meter_names())}")
    return build_plugged_in(kind, plugged[kind], settings)


def load_factory(name: str, entry: importlib.metadata.EntryPoint) -> Any:
    """The object an entry point names, or MeterUnavailable saying why it cannot be imported."""
    try:
        return entry.load()
    except Exception as exc:
        raise MeterUnavailable(
            f"meter {name!r} cannot be loaded from entry point {entry.value}: {type(exc).__name__}: {exc}"
        ) from None


def build_plugged_in(name: str, entry: importlib.metadata.EntryPoint, settings: MeterSettings) -> Meter:
    """Import and build a plugged-in meter; MeterUnavailable (GpuIndexError included) when it cannot work."""
    factory = load_factory(name, entry)
    try:
        meter = factory(settings)
    except MeterUnavailable:
        raise
    except Exception as exc:
        raise MeterUnavailable(f"meter {name!r} ({entry.value}) cannot be built: {type(exc).__name__}: {exc}") from None
    if not isinstance(meter, Meter):
        raise MeterUnavailable(f"meter {name!r} ({entry.value}) returned {type(meter).__name__}, not a Meter")
    return meter


def _try(build: Any, *args: Any) -> tuple[Meter | None, str | None]:
    """(meter, None) or (None, why not); None, None for a meter whose library is not installed.

    A GPU that does not exist is re-raised.
    """
    try:
        return build(*args), None
    except GpuIndexError:
        raise
    except MeterNotInstalled:
        return None, None
    except MeterUnavailable as exc:
        return None, str(exc)


def _auto(settings: MeterSettings) -> Meter:
    nvml, nvml_reason = _try(NvmlMeter, settings.gpus)
    rapl, rapl_reason = _try(RaplMeter, settings.powercap_root)
    if nvml:
        if rapl:
            return CompositeMeter([nvml, rapl])
        _warn(f"{rapl_reason}; measuring the GPUs only (CPU energy is not counted)")
        return nvml
    reasons = [nvml_reason]
    plugged = plugged_in_meters()
    for name in AUTO_BEFORE_RAPL:
        if name not in plugged:
            continue
        meter, reason = _try(build_plugged_in, name, plugged[name], settings)
        if meter is not None and (getattr(meter, "sees_accelerator", True) or rapl is None):
            if rapl:
                rapl.close()
            _warn(f"{nvml_reason}; measuring with {meter.name}")
            return meter
        if meter is not None:
            meter.close()  # it sees CPU counters only, and rapl reads those itself
        elif reason is not None:
            reasons.append(reason)
    if rapl:
        _warn(f"{'; '.join(r for r in reasons if r)}; measuring the CPU with RAPL only")
        return rapl
    reasons.append(rapl_reason)
    meter = _auto_plugged_in(plugged, settings, reasons)
    if meter is not None:
        return meter
    meter = EstimateMeter(settings.cpu_watts)
    _warn(f"{'; '.join(r for r in reasons if r)}; using the CPU-time estimate: {meter.model.label()}")
    return meter


def _auto_plugged_in(
    plugged: dict[str, importlib.metadata.EntryPoint], settings: MeterSettings, reasons: list[str | None]
) -> Meter | None:
    for name in sorted(plugged):
        if name in AUTO_BEFORE_RAPL:
            continue
        try:
            factory = load_factory(name, plugged[name])
        except MeterUnavailable as exc:
            _warn(str(exc))
            continue
        if not getattr(factory, "auto", False):
            continue
        meter, reason = _try(build_plugged_in, name, plugged[name], settings)
        if meter is not None:
            _warn(f"{'; '.join(r for r in reasons if r)}; measuring with {meter.name}")
            return meter
        reasons.append(reason)
    return None


def _warn(message: str, stacklevel: int = 3) -> None:
    warnings.warn(message, EnergyBenchWarning, stacklevel=stacklevel)
