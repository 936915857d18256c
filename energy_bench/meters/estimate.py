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

Watts per CPU second come from the detected CPU (:mod:`energy_bench.meters.cpus`): Cloud Carbon
Footprint's per-vCPU coefficients for its microarchitecture, ``min`` W at idle and ``max`` W at full load.
A CPU second is one vCPU busy for one second, so the estimate is ``CPU seconds x max W``: the whole wall power
of a vCPU at full load, its share of the machine's idle power included. The lower bound ``CPU seconds x (max -
min) W`` counts only the power that load adds above idle, as if the idle share were someone else's. Both are
recorded (:class:`EstimateModel`). ``--energy-cpu-watts`` replaces the detection with a number of your own.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from energy_bench.meters import cpus
from energy_bench.meters.base import Meter, Reading, Source

#: the flat watts per busy core of energy-bench before per-CPU coefficients (old runs say this, or nothing)
LEGACY_CPU_WATTS = 10.0
LEGACY_CPU_WATTS_BASIS = "TDP per core of common server CPUs (e.g. ~270 W / 32 cores = 8.4 W), rounded up"
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
    return cpus.parse_cpuinfo(_read("/proc/cpuinfo") or "").name


@dataclass(frozen=True)
class EstimateModel:
    """What the estimate multiplies CPU seconds by, and why: watts per CPU second, the lower bound, the match."""

    watts: float
    #: watts per CPU second of the lower bound (max - min of the coefficients); None for a user setting
    lower_watts: float | None
    architecture: str
    #: cpuinfo, name, proxy, default or user (:data:`energy_bench.meters.cpus.MATCHES`)
    match: str
    #: the coefficients' row (e.g. ``AMD EPYC 3rd Gen``) and source; None for a user setting
    coefficients: str | None = None
    source: str | None = None
    evidence: str | None = None

    def label(self) -> str:
        """The model in one line, e.g. ``CPU time x 2.02 W per vCPU (AMD EPYC Milan (Zen 3) from cpuinfo, ...)``."""
        head = f"CPU time x {self.watts:g} W per vCPU"
        if self.match == "user" and self.coefficients is None:
            return f"{head} (set by the user; no bounds)"
        if self.match == "user":
            how = f"{self.architecture} as chosen, Cloud Carbon Footprint coefficients"
        elif self.match == "proxy":
            how = f"{self.architecture}, proxy: Cloud Carbon Footprint's {self.coefficients} coefficients"
        elif self.match == "default":
            how = f"{self.architecture}, Cloud Carbon Footprint's default for an unknown CPU"
        else:
            how = f"{self.architecture} from {self.match}, Cloud Carbon Footprint coefficients"
        return f"{head} ({how}; lower bound {self.lower_watts:g} W)"

    def describe(self) -> dict[str, Any]:
        """Plain JSON for the record (``machine_info.energy.estimate``)."""
        info = {
            "method": "cpu-seconds x watts per vCPU",
            "watts_per_cpu_second": self.watts,
            "lower_watts_per_cpu_second": self.lower_watts,
            "architecture": self.architecture,
            "match": self.match,
            "coefficients": self.coefficients,
            "coefficients_source": self.source,
            "evidence": self.evidence,
            "label": self.label(),
        }
        return {k: v for k, v in info.items() if v is not None}


def model_for(match: cpus.CpuMatch) -> EstimateModel:
    """The estimate of a matched CPU: max W per CPU second, with max - min W as the lower bound."""
    return EstimateModel(
        watts=match.max_watts,
        lower_watts=round(match.max_watts - match.min_watts, 6),
        architecture=match.architecture,
        match=match.match,
        coefficients=match.coefficients,
        source=cpus.source_line(),
        evidence=match.evidence,
    )


def user_model(watts: float) -> EstimateModel:
    return EstimateModel(watts=float(watts), lower_watts=None, architecture="as set by the user", match="user")


def model_from_spec(spec: str) -> EstimateModel:
    """``detect`` (this machine's CPU), a number of watts per CPU second, or an architecture by name (``milan``,
    ``cascade-lake``, ``default``); ValueError with one line when it is none of these."""
    text = spec.strip()
    if text.lower() == "detect":
        return detect_model()
    try:
        watts = float(text)
    except ValueError:
        watts = None
    if watts is not None:
        if not 0 < watts < float("inf"):
            raise ValueError(f"{spec!r}: watts per CPU second must be a positive finite number")
        return user_model(watts)
    if text.lower() == "default":
        return model_for(cpus.match_cpu(cpus.CpuId()))
    try:
        arch = cpus.find_architecture(text)
    except LookupError as exc:
        raise ValueError(f"{exc}; or give detect, default or a number of watts") from None
    return model_for(cpus.match_architecture(arch, f"chosen by name ({text})"))


def detect_model(cpuinfo: str | None = None) -> EstimateModel:
    """The model for this machine's CPU (``cpuinfo``: a ``/proc/cpuinfo`` text to use instead)."""
    text = _read("/proc/cpuinfo") if cpuinfo is None else cpuinfo
    return model_for(cpus.match_cpu(cpus.parse_cpuinfo(text or "")))


@dataclass(frozen=True)
class EstimateMark:
    time: float
    cpu_seconds: float


class EstimateMeter(Meter):
    """Joules in domain ``cpu`` = CPU seconds x ``cpu_watts``; always labelled estimated.

    ``cpu_watts`` None: the detected CPU's coefficients (:func:`detect_model`); a number: that, as a user setting;
    ``model``: an :class:`EstimateModel` to use as it is.
    """

    name = "estimate"
    source = Source.ESTIMATED
    #: live children's CPU time comes in clock ticks
    update_period_s = 1.0 / _CLK_TCK
    #: ten clock ticks at least, so a child's tick-rounded CPU time is within about 10 % of a round
    min_round_s = 10.0 / _CLK_TCK

    def __init__(
        self,
        cpu_watts: float | None = None,
        *,
        model: EstimateModel | None = None,
        clock: Callable[[], float] = time.monotonic,
        cpu_seconds: Callable[[], float] = process_tree_cpu_seconds,
    ):
        if cpu_watts is not None and not cpu_watts > 0:
            raise ValueError(f"cpu_watts must be positive, got {cpu_watts!r}")
        if model is None:
            model = detect_model() if cpu_watts is None else user_model(cpu_watts)
        self.model = model
        self.cpu_watts = model.watts
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
            "cpu_watts_basis": self.model.label(),
            "estimate": self.model.describe(),
            "cpu_count": os.cpu_count(),
            "cpus_usable": usable,
            "cpu_model": cpu_model(),
            "counts": "CPU time of this process (all threads) and its child processes",
        }


def estimate_model_of(meter: Meter | None) -> EstimateModel | None:
    """The model of the estimate meter in ``meter`` (itself or a part of a composite); None when there is none."""
    if isinstance(meter, EstimateMeter):
        return meter.model
    for part in getattr(meter, "meters", ()):
        found = estimate_model_of(part)
        if found is not None:
            return found
    return None
