"""Round-start GPU temperatures, and an optional cooldown before each measured round.

A GPU that heats up over the rounds draws more power for the same work (leakage grows with temperature) and may
lower its clocks, so later rounds read differently from earlier ones. :class:`RoundTemperatures` is called before
each measured round, outside the timer and the meter's window:

* it records the temperatures the meter reads (:meth:`energy_bench.meters.Meter.temperatures`) at the start of
  every round;
* with a cooldown margin, before every round after the first it waits until each measured GPU is back within
  ``margin_c`` of the temperature at which the first round started (colder is fine), checking every
  ``poll_s``, for at most ``timeout_s``; a round that still starts too warm is noted in the record.

A meter that reads no temperature (RAPL, the estimate) makes this a no-op, and nothing is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from energy_bench.meters.base import Meter

DEFAULT_COOLDOWN_TIMEOUT_S = 60.0
#: how often a cooldown reads the temperatures again; NVML's sensor refreshes about as often
COOLDOWN_POLL_S = 0.5


@dataclass
class RoundTemperatures:
    """``before_round(i)`` callback for the round loop; :meth:`record` and :meth:`cooldown_record` for the record."""

    meter: Meter
    #: None: record temperatures only, never wait
    margin_c: float | None = None
    timeout_s: float = DEFAULT_COOLDOWN_TIMEOUT_S
    poll_s: float = COOLDOWN_POLL_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    #: domain -> °C at the start of each measured round
    temperatures: dict[str, list[float]] = field(default_factory=dict)
    #: seconds waited before each round (0.0 for the first)
    waits: list[float] = field(default_factory=list)
    #: indices of rounds that started before the GPUs had cooled down (the timeout ran out)
    timed_out: list[int] = field(default_factory=list)
    _reference: dict[str, float] = field(default_factory=dict)

    def __call__(self, round_index: int) -> None:
        """Before measured round ``round_index`` (0-based): wait if asked, then note the temperatures."""
        waited = 0.0
        now = self.meter.temperatures()
        if round_index > 0 and self.margin_c is not None and self._reference:
            now, waited = self._wait(now, round_index)
        elif round_index == 0:
            self._reference = dict(now)
        self.waits.append(waited)
        for domain, celsius in now.items():
            self.temperatures.setdefault(domain, []).append(float(celsius))

    def _too_warm(self, now: dict[str, float]) -> bool:
        assert self.margin_c is not None
        return any(now.get(d, start) > start + self.margin_c for d, start in self._reference.items())

    def _wait(self, now: dict[str, float], round_index: int) -> tuple[dict[str, float], float]:
        start = self.clock()
        while self._too_warm(now):
            waited = self.clock() - start
            if waited >= self.timeout_s:
                self.timed_out.append(round_index)
                break
            self.sleep(min(self.poll_s, self.timeout_s - waited))
            now = self.meter.temperatures()
        return now, self.clock() - start

    def record(self) -> dict[str, list[float]] | None:
        """``temperatures_c`` for the record: °C per domain at each round's start (None: none read)."""
        return {d: list(v) for d, v in self.temperatures.items()} or None

    def cooldown_record(self) -> dict[str, Any] | None:
        """``cooldown`` for the record (None without a margin, or when no temperature could be read)."""
        if self.margin_c is None or not self.temperatures:
            return None
        return {
            "margin_c": self.margin_c,
            "timeout_s": self.timeout_s,
            "waited_s": list(self.waits),
            "timeouts": list(self.timed_out),
        }
