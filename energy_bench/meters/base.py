"""The meter interface shared by every energy source.

A meter measures windows: ``mark = meter.begin()`` ... ``reading = meter.end(mark)``.
Readings are plain values that add up (joules per named domain, elapsed seconds), so
several meters (GPU + CPU) or several ranks can later be combined by summing joules.
This package never imports pytest or model code.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import Any

from energy_bench.errors import EnergyBenchError


class Source(str, enum.Enum):
    """Whether joules came from a hardware counter or were estimated."""

    MEASURED = "measured"
    ESTIMATED = "estimated"


class MeterError(EnergyBenchError, RuntimeError):
    """A meter failed during a window (e.g. an NVML call errored mid-run)."""


class MeterUnavailable(EnergyBenchError, RuntimeError):
    """A meter cannot work on this machine; the message says why."""


class MeterNotInstalled(MeterUnavailable):
    """The library a meter needs is not installed (``auto`` passes such a meter over without a warning)."""


@dataclass(frozen=True)
class Reading:
    """Energy of one measured window.

    ``joules`` maps a domain name (``gpu0``, ``package-0``, ``dram-0``, ``cpu``) to joules.
    """

    joules: dict[str, float]
    seconds: float
    source: Source
    meter: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def total(self) -> float:
        return float(sum(self.joules.values()))

    @property
    def watts(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0

    def combine(self, other: Reading) -> Reading:
        """Readings of two meters over the same window: domains merged, longest time kept.

        The result is only ``measured`` when both parts are.
        """
        overlap = set(self.joules) & set(other.joules)
        if overlap:
            raise ValueError(f"domains measured twice: {sorted(overlap)}")
        source = (
            Source.MEASURED if self.source is Source.MEASURED and other.source is Source.MEASURED else Source.ESTIMATED
        )
        return Reading(
            joules={**self.joules, **other.joules},
            seconds=max(self.seconds, other.seconds),
            source=source,
            meter=f"{self.meter}+{other.meter}",
            warnings=self.warnings + other.warnings,
        )


class Meter(abc.ABC):
    """One energy source. Subclasses read a counter (or integrate power) per window."""

    #: short name stored in the record, e.g. "nvml-counter", "rapl", "estimate"
    name: str = "meter"
    source: Source = Source.MEASURED
    #: how often the underlying counter updates; windows shorter than this are warned about
    update_period_s: float = 0.0
    #: the shortest round energy() sizes its rounds to: long enough for the counter's resolution to stop mattering
    min_round_s: float = 0.0

    @abc.abstractmethod
    def begin(self) -> Any:
        """Start a window; returns an opaque mark to hand to :meth:`end`."""

    @abc.abstractmethod
    def end(self, mark: Any) -> Reading:
        """Close the window opened by ``mark``. Raises :class:`MeterError` on failure."""

    def domains(self) -> list[str]:
        """Names of the domains this meter reports."""
        return []

    def info(self) -> dict[str, Any]:
        """Plain-JSON description for ``machine_info.energy`` (devices, driver, limits)."""
        return {"meter": self.name, "source": self.source.value}

    def temperatures(self) -> dict[str, float]:
        """Device temperatures now, in °C per domain (e.g. ``{"gpu0": 41.0}``); {} when the meter reads none.

        Used between rounds (GPU cooldown, the record's ``temperatures_c``), never inside a window.
        """
        return {}

    def close(self) -> None:
        """Release background threads and library handles."""


class CompositeMeter(Meter):
    """Several meters read over the same windows (e.g. NVML for GPUs plus RAPL for CPUs)."""

    def __init__(self, meters: list[Meter]):
        if not meters:
            raise ValueError("CompositeMeter needs at least one meter")
        self.meters = list(meters)
        self.name = "+".join(m.name for m in self.meters)
        self.source = Source.MEASURED if all(m.source is Source.MEASURED for m in self.meters) else Source.ESTIMATED
        self.update_period_s = max(m.update_period_s for m in self.meters)
        self.min_round_s = max(m.min_round_s for m in self.meters)

    def begin(self) -> list[Any]:
        return [m.begin() for m in self.meters]

    def end(self, mark: list[Any]) -> Reading:
        readings = [m.end(part) for m, part in zip(self.meters, mark)]
        total = readings[0]
        for reading in readings[1:]:
            total = total.combine(reading)
        return total

    def domains(self) -> list[str]:
        return [d for m in self.meters for d in m.domains()]

    def info(self) -> dict[str, Any]:
        return {"meter": self.name, "source": self.source.value, "parts": [m.info() for m in self.meters]}

    def temperatures(self) -> dict[str, float]:
        return {domain: t for m in self.meters for domain, t in m.temperatures().items()}

    def close(self) -> None:
        for m in self.meters:
            m.close()
