"""Meters another package could plug in through the ``energy_bench.meters`` entry point group, good and broken.

Tests make entry points naming these objects (``importlib.metadata.EntryPoint(name, "tests.fakes.meter_plugins:
SteadyMeter", "energy_bench.meters")``) and hand them to the harness through ``select.meter_entry_points``.
"""

from __future__ import annotations

import time
from typing import Any

from energy_bench.meters import Meter, MeterUnavailable, Reading, Source


class SteadyMeter(Meter):
    """A plug-in meter class: a device drawing a steady ``watts`` (default 25 W), measured."""

    name = "steady"
    source = Source.MEASURED
    min_round_s = 0.0
    #: tried by --energy-meter=auto after the built-in meters
    auto = True
    built_with: list[Any] = []

    def __init__(self, settings: Any, watts: float = 25.0):
        SteadyMeter.built_with.append(settings)
        self.watts = watts

    def begin(self) -> float:
        return time.monotonic()

    def end(self, mark: float) -> Reading:
        seconds = time.monotonic() - mark
        return Reading({"steady": self.watts * seconds}, seconds, Source.MEASURED, self.name)

    def domains(self) -> list[str]:
        return ["steady"]

    def temperatures(self) -> dict[str, float]:
        return {"steady": 30.0}


def shy_meter(settings: Any) -> SteadyMeter:
    """A factory function that does not opt in to auto."""
    meter = SteadyMeter(settings, watts=5.0)
    meter.name = "shy"
    return meter


def unavailable_meter(settings: Any) -> Meter:
    raise MeterUnavailable("the frobnicator is unplugged")


def unavailable_meter_auto(settings: Any) -> Meter:
    raise MeterUnavailable("the auto frobnicator is unplugged")


unavailable_meter_auto.auto = True  # type: ignore[attr-defined]


def crashing_meter(settings: Any) -> Meter:
    raise RuntimeError("boom")


def not_a_meter(settings: Any) -> int:
    return 42
