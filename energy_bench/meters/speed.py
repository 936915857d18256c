"""How fast this machine runs a fixed piece of work now: the session's speed, saved beside its joules.

Whole-session speed on shared machines (VMs, hosted CI runners) drifts by several percent within an hour, in
either direction, and the CPU-time estimate charges a slower session more joules for the same work. A pooled
baseline cannot tell that from a change of the code; the gate can warn when it sees it
(:mod:`energy_bench.runs.drift`). The work is a fixed pure-Python loop, timed in CPU seconds of this thread (what the
estimate counts) and repeated; the median over repeats, taken when the session's meter is built and again when the
run is saved, is the session's figure. It is not calibrated to the machine on purpose: the same work in every
session is what makes two sessions' figures comparable. No pytest, no torch.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

#: iterations of the reference loop: a few milliseconds of CPU on current cores, so a probe costs about 0.1 s
REFERENCE_ITERATIONS = 100_000
#: timed repeats per probe (the median resists one interrupted repeat)
REPEATS = 11
METHOD = f"median CPU seconds (this thread) of a {REFERENCE_ITERATIONS:,}-iteration Python loop, {REPEATS} repeats"


def reference_loop(iterations: int = REFERENCE_ITERATIONS) -> int:
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


@dataclass(frozen=True)
class SpeedProbe:
    """One probe: the median and spread of the repeats' CPU seconds."""

    seconds: float
    #: (slowest - fastest) / median over the repeats
    spread: float

    def describe(self) -> dict[str, float]:
        return {"seconds": round(self.seconds, 7), "spread": round(self.spread, 4)}


def probe_speed(repeats: int = REPEATS, clock=time.thread_time) -> SpeedProbe:
    """Time the reference loop ``repeats`` times (one warm-up first)."""
    reference_loop()
    times = []
    for _ in range(repeats):
        start = clock()
        reference_loop()
        times.append(clock() - start)
    median = statistics.median(times)
    spread = (max(times) - min(times)) / median if median > 0 else 0.0
    return SpeedProbe(median, spread)


def describe_session(start: SpeedProbe, end: SpeedProbe | None) -> dict[str, Any]:
    """What ``machine_info.energy.speed`` holds: both probes and the session's figure (their mean)."""
    probes = [p for p in (start, end) if p is not None]
    return {
        "method": METHOD,
        "seconds": round(statistics.fmean(p.seconds for p in probes), 7),
        "start": start.describe(),
        "end": None if end is None else end.describe(),
    }
