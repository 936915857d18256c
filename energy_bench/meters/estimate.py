"""Estimated CPU energy: CPU seconds of this process and its children x watts per busy core.

For machines with no readable counter (most VMs and containers). CPU seconds are:

* this process, all threads: ``getrusage(RUSAGE_SELF)``;
* children that ended and were waited for (and what they waited for): ``getrusage(RUSAGE_CHILDREN)``;
* live descendants (e.g. DataLoader workers): utime+stime+cutime+cstime from ``/proc/<pid>/stat``,
  found through ``/proc/<pid>/task/*/children`` (or each process's parent id where the kernel
  lacks those files).

A window's CPU time is the change of that sum, so a child that starts inside the window counts
from zero, and one that ends and is reaped moves its whole time from the live part into
``RUSAGE_CHILDREN`` (the window keeps only what it spent after ``begin()``). Without ``/proc``
(macOS) only the first two parts are counted.

The default of 10 W per busy core is a rough stand-in derived from server CPUs' TDP per core
(e.g. a 32-core part of ~270 W TDP is ~8.4 W per core; desktop parts are higher per core), the
same TDP x load idea CodeCarbon uses without RAPL. Set ``--energy-cpu-watts`` for your CPU.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from energy_bench.meters.base import Meter, Reading, Source

DEFAULT_CPU_WATTS = 10.0
CPU_WATTS_BASIS = "TDP per core of common server CPUs (e.g. ~270 W / 32 cores = 8.4 W), rounded up"
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_HAS_CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _read(path: str) -> str | None:
    """A /proc file's text, or None when the process or thread ended meanwhile.

    Raw os.open/os.read rather than open(): no buffering layer to build, which matters because
    every begin() and end() reads a few files per live child.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = [os.read(fd, 65536)]
        while len(chunks[-1]) == 65536:  # /proc hands small files over in one read
            chunks.append(os.read(fd, 65536))
        return b"".join(chunks).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _children_by_ppid(pid: int) -> list[int]:
    """Slow path for kernels without CONFIG_PROC_CHILDREN: scan every process's parent."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            text = _read(f"/proc/{entry}/stat")
            if text and int(text[text.rfind(")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


def _children(pid: int) -> list[int]:
    if not _HAS_CHILDREN_FILES:
        return _children_by_ppid(pid) if os.path.isdir("/proc") else []
    tasks = f"/proc/{pid}/task"
    try:
        tids = os.listdir(tasks)
    except OSError:
        return []
    found: list[int] = []
    for tid in tids:
        text = _read(f"{tasks}/{tid}/children")
        if text:
            found.extend(int(p) for p in text.split())
    return found


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children, grandchildren, ...)."""
    seen: list[int] = []
    todo = _children(pid)
    while todo:
        child = todo.pop()
        if child not in seen:
            seen.append(child)
            todo.extend(_children(child))
    return seen


def proc_cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its reaped children, from /proc (0.0 when it is gone)."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return 0.0
    # Fields after the command name (which may hold spaces and parentheses): state is field 3.
    fields = text[text.rfind(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / _CLK_TCK


def process_tree_cpu_seconds() -> float:
    """CPU seconds used so far by this process, its reaped children and its live descendants."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    return total + sum(proc_cpu_seconds(pid) for pid in descendants(os.getpid()))


def cpu_model() -> str | None:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware"):
            return value.strip()
    return None


@dataclass(frozen=True)
class EstimateMark:
    time: float
    cpu_seconds: float


class EstimateMeter(Meter):
    """Joules in domain ``cpu`` = CPU seconds x ``cpu_watts``; always labelled estimated."""

    name = "estimate"
    source = Source.ESTIMATED
    #: live children's CPU time comes in clock ticks
    update_period_s = 1.0 / _CLK_TCK
    #: ten clock ticks at least, so a child's tick-rounded CPU time is within about 10 % of a round
    min_round_s = 10.0 / _CLK_TCK

    def __init__(
        self,
        cpu_watts: float = DEFAULT_CPU_WATTS,
        *,
        clock: Callable[[], float] = time.monotonic,
        cpu_seconds: Callable[[], float] = process_tree_cpu_seconds,
    ):
        if not cpu_watts > 0:
            raise ValueError(f"cpu_watts must be positive, got {cpu_watts!r}")
        self.cpu_watts = float(cpu_watts)
        self._clock = clock
        self._cpu_seconds = cpu_seconds

    def begin(self) -> EstimateMark:
        return EstimateMark(self._clock(), self._cpu_seconds())

    def end(self, mark: EstimateMark) -> Reading:
        now, cpu = self._clock(), self._cpu_seconds()
        # Never negative, even if a child escaped (re-parented) and took its time with it.
        busy = max(0.0, cpu - mark.cpu_seconds)
        return Reading({"cpu": busy * self.cpu_watts}, now - mark.time, Source.ESTIMATED, self.name)

    def domains(self) -> list[str]:
        return ["cpu"]

    def info(self) -> dict[str, Any]:
        try:
            usable = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            usable = os.cpu_count()
        return {
            "meter": self.name,
            "source": self.source.value,
            "cpu_watts": self.cpu_watts,
            "cpu_watts_basis": CPU_WATTS_BASIS if self.cpu_watts == DEFAULT_CPU_WATTS else "user setting",
            "cpu_count": os.cpu_count(),
            "cpus_usable": usable,
            "cpu_model": cpu_model(),
            "counts": "CPU time of this process (all threads) and its child processes",
        }
