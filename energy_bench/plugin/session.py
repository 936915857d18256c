"""State shared by the plugin's parts for one pytest session (kept in ``config.stash``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from energy_bench.meters import speed
from energy_bench.meters.base import Meter
from energy_bench.meters.speed import SpeedProbe
from energy_bench.plugin.settings import Settings


@dataclass
class EnergySession:
    settings: Settings
    #: built lazily by the ``energy_meter`` fixture, so runs that never measure never touch NVML
    meter: Meter | None = None
    #: idle watts per domain, when --energy-idle-seconds was given and measured
    idle_watts: dict[str, float] | None = None
    #: extra report columns per benchmark fullname, filled by the comparison gate
    comparison: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: one line per regression found by the gate (empty: none, or no gate)
    regressions: list[str] = field(default_factory=list)
    #: when the session was configured (time.monotonic), for the run's wall time in machine_info.energy
    started: float = field(default_factory=time.monotonic)
    #: the reference loop's speed when the meter was built and when the run was saved (energy_bench.meters.speed)
    speed_start: SpeedProbe | None = None
    speed_end: SpeedProbe | None = None


SESSION_KEY = pytest.StashKey[EnergySession]()


def get_session(config: pytest.Config) -> EnergySession:
    return config.stash[SESSION_KEY]


def session_speed(session: EnergySession) -> dict[str, Any]:
    """The reference loop's speed when the meter was built and now, probed once at the end (pytest-benchmark may
    ask for machine_info more than once)."""
    if session.speed_end is None:
        session.speed_end = speed.probe_speed()
    if session.speed_start is None:  # a meter built elsewhere (the torchrun plugin): one probe only
        return speed.describe_session(session.speed_end, None)
    return speed.describe_session(session.speed_start, session.speed_end)
