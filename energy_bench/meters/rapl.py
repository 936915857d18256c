"""CPU package and DRAM energy from the Linux powercap RAPL counters (``energy_uj``).

Zones used: each top-level ``intel-rapl:N`` whose name is ``package-N`` (domain ``package-N``)
and each ``dram`` zone (domain ``dram-N``, N of its package). ``core``/``uncore`` sub-zones are
already inside the package, ``psys`` contains the packages, and ``intel-rapl-mmio`` repeats the
package counter, so those are skipped: nothing is counted twice.

Counters wrap at ``max_energy_range_uj``. Every read folds the change since the previous read
(one wrap at most) into a running total per zone, and marks hold those totals, so any number
of overlapping windows share the reads. A wrap is lost only if two reads are more than one wrap
period apart (ranges of 65-262 kJ last minutes at full power); a guard thread reads every
``guard_period_s`` (10 s) after the first window so long windows stay correct.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from energy_bench.meters.base import Meter, MeterError, MeterUnavailable, Reading, Source

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"
#: RAPL counters refresh about every millisecond
RAPL_UPDATE_S = 0.001
DEFAULT_GUARD_PERIOD_S = 10.0
#: counters are fine-grained; 100 ms rounds keep start-up effects of a call and timer jitter small
MIN_ROUND_S = 0.1

_TOP = re.compile(r"intel-rapl:(\d+)$")


def _open_counter(path: str) -> int:
    """Open a counter file for repeated reads (a seam the tests use to simulate EACCES)."""
    return os.open(path, os.O_RDONLY)


def _read_fd(fd: int) -> int:
    # sysfs regenerates the value on every read from offset 0, so one fd serves all reads.
    return int(os.pread(fd, 64, 0))


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _unreadable(path: str, exc: OSError) -> MeterUnavailable:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return MeterUnavailable(
            f"RAPL counters unreadable: permission denied on {path} "
            "(energy_uj is readable by root only since Linux 5.10)"
        )
    return MeterUnavailable(f"RAPL counters unreadable: {path}: {exc.strerror or exc}")


def find_zones(root: str) -> list[tuple[str, str]]:
    """(domain, zone directory) for every package and DRAM zone under ``root``."""
    if not os.path.isdir(root):
        raise MeterUnavailable(f"RAPL counters unreadable: powercap root {root} does not exist")
    tops = sorted(
        ((int(m.group(1)), entry) for entry in os.listdir(root) if (m := _TOP.match(entry))),
    )
    zones: list[tuple[str, str]] = []
    for number, entry in tops:
        top = os.path.join(root, entry)
        try:
            name = _read_text(os.path.join(top, "name"))
        except OSError as exc:
            raise _unreadable(os.path.join(top, "name"), exc) from None
        if name.startswith("package"):
            package = name.rsplit("-", 1)[-1] if name[-1:].isdigit() else str(number)
            zones.append((f"package-{package}", top))
            sub = re.compile(rf"{re.escape(entry)}:(\d+)$")
            for _, child in sorted((int(m.group(1)), c) for c in os.listdir(top) if (m := sub.match(c))):
                path = os.path.join(top, child)
                try:
                    sub_name = _read_text(os.path.join(path, "name"))
                except OSError as exc:
                    raise _unreadable(os.path.join(path, "name"), exc) from None
                if sub_name == "dram":
                    zones.append((f"dram-{package}", path))
        elif name == "dram":
            zones.append((f"dram-{number}", top))
    if not zones:
        raise MeterUnavailable(f"RAPL counters unreadable: no package zones (intel-rapl:N) under {root}")
    return zones


@dataclass
class _Zone:
    domain: str
    path: str
    max_range_uj: int
    fd: int
    last_uj: int
    total_uj: int = 0


@dataclass(frozen=True)
class RaplMark:
    time: float
    totals_uj: dict[str, int]


class RaplMeter(Meter):
    """Joules per RAPL domain (``package-0``, ``dram-0``, ...) from ``<root>/intel-rapl:*``."""

    name = "rapl"
    source = Source.MEASURED
    update_period_s = RAPL_UPDATE_S
    min_round_s = MIN_ROUND_S

    def __init__(
        self,
        root: str = DEFAULT_POWERCAP_ROOT,
        *,
        clock: Callable[[], float] = time.monotonic,
        guard_period_s: float | None = DEFAULT_GUARD_PERIOD_S,
    ):
        self.root = root
        self._clock = clock
        self._guard_period_s = guard_period_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._guard: threading.Thread | None = None
        self._zones: list[_Zone] = []
        try:
            for domain, path in find_zones(root):
                self._zones.append(self._open_zone(domain, path))
        except BaseException:
            self._close_fds()
            raise
        self._domains = [z.domain for z in self._zones]
        self._described = [
            {"domain": z.domain, "path": z.path, "max_energy_range_uj": z.max_range_uj} for z in self._zones
        ]

    @staticmethod
    def _open_zone(domain: str, path: str) -> _Zone:
        counter = os.path.join(path, "energy_uj")
        try:
            fd = _open_counter(counter)
        except OSError as exc:
            raise _unreadable(counter, exc) from None
        try:
            first = _read_fd(fd)
            limit = os.path.join(path, "max_energy_range_uj")
            max_range = int(_read_text(limit))
        except OSError as exc:
            os.close(fd)
            raise _unreadable(counter if exc.filename is None else exc.filename, exc) from None
        except ValueError:
            os.close(fd)
            raise MeterUnavailable(f"RAPL counters unreadable: {path} holds no integer counter") from None
        if max_range <= 0:
            os.close(fd)
            raise MeterUnavailable(f"RAPL counters unreadable: {limit} is {max_range}")
        return _Zone(domain, path, max_range, fd, first)

    def update(self) -> dict[str, int]:
        """Read every counter now and fold the change (at most one wrap) into running totals (uJ)."""
        with self._lock:
            if not self._zones:
                raise MeterError("RAPL meter is closed")
            for zone in self._zones:
                try:
                    raw = _read_fd(zone.fd)
                except (OSError, ValueError) as exc:
                    raise MeterError(f"RAPL read failed for {zone.path}/energy_uj: {exc}") from None
                delta = raw - zone.last_uj
                if delta < 0:
                    delta += zone.max_range_uj
                zone.total_uj += delta
                zone.last_uj = raw
            return {zone.domain: zone.total_uj for zone in self._zones}

    def begin(self) -> RaplMark:
        now = self._clock()
        mark = RaplMark(now, self.update())
        if self._guard is None and self._guard_period_s:
            self._guard = threading.Thread(target=self._guard_reads, name="energy-bench-rapl-guard", daemon=True)
            self._guard.start()
        return mark

    def end(self, mark: RaplMark) -> Reading:
        now = self._clock()
        totals = self.update()
        joules = {d: (totals[d] - start) / 1e6 for d, start in mark.totals_uj.items()}
        return Reading(joules, now - mark.time, Source.MEASURED, self.name)

    def _guard_reads(self) -> None:
        while not self._stop.wait(self._guard_period_s):
            with contextlib.suppress(MeterError):  # the next window boundary reads again and reports it
                self.update()

    def domains(self) -> list[str]:
        return list(self._domains)

    def info(self) -> dict[str, Any]:
        return {
            "meter": self.name,
            "source": self.source.value,
            "root": self.root,
            "update_period_s": self.update_period_s,
            "wrap_guard_s": self._guard_period_s,
            "zones": [dict(z) for z in self._described],
        }

    def close(self) -> None:
        self._stop.set()
        if self._guard is not None:
            self._guard.join(timeout=1.0)
        with self._lock:
            self._close_fds()

    def _close_fds(self) -> None:
        for zone in self._zones:
            with contextlib.suppress(OSError):
                os.close(zone.fd)
        self._zones = []
