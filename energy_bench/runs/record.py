"""The energy record stored in each benchmark's ``extra_info``.

``extra_info.energy`` holds plain JSON values only, so pytest-benchmark's own storage, autosave
and ``pytest-benchmark compare`` keep working on the files::

    {"joules": {mean, median, min, max, stddev, rounds, data}, # total of all domains, per round
     "iterations": int,                  # calls of the benchmarked code per round
     "joules_per_call": {...same shape...},  # joules / iterations: what runs with other round sizes compare on
     "net_joules": {...same shape...},   # only with an idle baseline: joules - idle watts x seconds
     "idle_watts": float,                # only with an idle baseline: the watts subtracted
     "seconds": {...same shape...},      # wall seconds of each window, as the meter saw them
     "mean_watts": float,                # all joules / all seconds
     "source": "measured" | "estimated",
     "meter": "nvml-counter" | "nvml-power" | "rapl" | "estimate" | "a+b",
     "domains": {name: mean joules per round},
     "warnings": [str, ...],             # only when the meter warned (e.g. windows too short)
     "temperatures_c": {domain: [°C at the start of each round]},  # only when the meter reads temperatures
     "cooldown": {"margin_c", "timeout_s",  # only with --energy-cooldown and readable temperatures:
                  "waited_s": [per round], "timeouts": [rounds that started still too warm]},
     "to_target": {...},                 # only with energy(..., until=...): see target_record()
     "carbon": {...}, "cost": {...}}     # only with --energy-carbon-intensity / --energy-price: runs.footprint

A benchmark whose meter failed gets ``{"error": reason, "meter": ..., "source": ...}`` instead.
Quality metrics sit beside it: ``extra_info.accuracy`` (a float in 0..1) and any others recorded.
"""

from __future__ import annotations

import itertools
import math
import numbers
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from energy_bench.meters.base import Meter, Reading, Source

#: extra_info keys that energy.record() must not overwrite
RESERVED_KEYS = ("energy",)


def samples(values: Sequence[float]) -> dict[str, Any]:
    """Summary of per-round values in pytest-benchmark's shape (stddev 0 for a single round)."""
    data = [float(v) for v in values]
    if not data:
        raise ValueError("no rounds to summarize")
    return {
        "mean": statistics.fmean(data),
        "median": float(statistics.median(data)),
        "min": min(data),
        "max": max(data),
        "stddev": statistics.stdev(data) if len(data) > 1 else 0.0,
        "rounds": len(data),
        "data": data,
    }


def _source(readings: Iterable[Reading]) -> str:
    """Measured only when every window was measured."""
    return (
        Source.MEASURED.value if all(Source(r.source) is Source.MEASURED for r in readings) else Source.ESTIMATED.value
    )


def energy_record(
    readings: Sequence[Reading],
    idle_watts: Mapping[str, float] | None = None,
    *,
    iterations: int = 1,
    temperatures: Mapping[str, Sequence[float]] | None = None,
    cooldown: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record for one benchmark from the readings of its measured rounds of ``iterations`` calls each.

    ``temperatures`` (°C per domain at each round's start) and ``cooldown`` (the waits between rounds) come from
    :class:`energy_bench.meters.cooldown.RoundTemperatures`; left out of the record when None or empty.
    """
    if not readings:
        raise ValueError("an energy record needs at least one reading")
    joules = [r.total for r in readings]
    seconds = [float(r.seconds) for r in readings]
    domain_names = sorted({d for r in readings for d in r.joules})
    record: dict[str, Any] = {
        "joules": samples(joules),
        "iterations": int(iterations),
        "joules_per_call": samples([j / iterations for j in joules]),
    }
    if idle_watts is not None:
        # Per round: idle watts of the domains this reading has, times its own length.
        idle = [sum(float(idle_watts.get(d, 0.0)) for d in r.joules) for r in readings]
        record["net_joules"] = samples([j - w * s for j, w, s in zip(joules, idle, seconds)])
        record["idle_watts"] = statistics.fmean(idle)
    record["seconds"] = samples(seconds)
    total_seconds = sum(seconds)
    record["mean_watts"] = sum(joules) / total_seconds if total_seconds > 0 else 0.0
    record["source"] = _source(readings)
    record["meter"] = str(readings[0].meter)
    record["domains"] = {d: statistics.fmean(float(r.joules.get(d, 0.0)) for r in readings) for d in domain_names}
    notes = list(dict.fromkeys(w for r in readings for w in r.warnings))
    if notes:
        record["warnings"] = notes
    if temperatures:
        record["temperatures_c"] = {str(d): [float(t) for t in values] for d, values in temperatures.items()}
    if cooldown:
        record["cooldown"] = {
            "margin_c": float(cooldown["margin_c"]),
            "timeout_s": float(cooldown["timeout_s"]),
            "waited_s": [float(s) for s in cooldown["waited_s"]],
            "timeouts": [int(i) for i in cooldown["timeouts"]],
        }
    return record


def target_record(
    readings: Sequence[Reading],
    reached: bool,
    max_rounds: int,
    target: Mapping[str, Any] | None = None,
    values: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Energy to a target (``energy(..., until=...)``): cumulative joules and seconds of the rounds it took.

    ``{"reached": bool, "rounds": n, "max_rounds": cap, "joules": J, "seconds": s,
    "curve": {"joules": [cumulative per round], "seconds": [...], "value": [metric per round]},
    "metric": "accuracy", "target": 0.93, "direction": "at_least"}`` (the last three when ``until`` was an
    ``energy.target(...)``). When the target was not reached, joules and seconds are what all rounds took.
    """
    cumulative_joules = list(itertools.accumulate(r.total for r in readings))
    cumulative_seconds = list(itertools.accumulate(float(r.seconds) for r in readings))
    curve: dict[str, Any] = {"joules": cumulative_joules, "seconds": cumulative_seconds}
    if values is not None:
        curve["value"] = [float(v) for v in values[: len(readings)]]
    return {
        **(dict(target) if target else {}),
        "reached": bool(reached),
        "rounds": len(readings),
        "max_rounds": int(max_rounds),
        "joules": cumulative_joules[-1],
        "seconds": cumulative_seconds[-1],
        "curve": curve,
    }


def target_from_curve(
    curve: Mapping[str, Sequence[float]], target: Mapping[str, Any], max_rounds: int
) -> dict[str, Any]:
    """The ``to_target`` record of rounds that ran to a fixed count, for a target known only afterwards.

    The baseline of a study defines its target by its accuracy after all its rounds, so its own energy to that
    target comes from its curve: the first round whose value meets ``target`` (``{"target", "direction",
    "metric"}``). The whole curve is kept (it may extend past ``rounds``); ``rounds_run`` says how long it is.
    """
    threshold = float(target["target"])
    at_least = target.get("direction", "at_least") == "at_least"
    values = [float(v) for v in curve.get("value", [])]
    joules = [float(j) for j in curve["joules"]]
    seconds = [float(s) for s in curve["seconds"]]
    met = [i for i, v in enumerate(values) if (v >= threshold if at_least else v <= threshold)]
    end = met[0] if met else len(joules) - 1
    return {
        **dict(target),
        "reached": bool(met),
        "rounds": end + 1,
        "max_rounds": int(max_rounds),
        "joules": joules[end],
        "seconds": seconds[end],
        "curve": {"joules": joules, "seconds": seconds, "value": values},
        "rounds_run": len(joules),
    }


def failed_record(reason: str, meter: Meter) -> dict[str, Any]:
    """The record of a benchmark whose meter failed: the reason instead of joules."""
    return {"error": str(reason), "meter": meter.name, "source": Source(meter.source).value}


def plain_metric(name: str, value: Any) -> Any:
    """``value`` as a plain JSON value, or TypeError/ValueError saying what is wrong."""
    if name in RESERVED_KEYS:
        raise ValueError(f"energy.record(): {name!r} is reserved for the energy record")
    if name == "accuracy":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"energy.record(): accuracy must be a number in 0..1, got {type(value).__name__}")
        accuracy = float(value)
        if not 0.0 <= accuracy <= 1.0:  # also rejects NaN
            raise ValueError(f"energy.record(): accuracy must be in 0..1 (a fraction, not a percent), got {value!r}")
        return accuracy
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):  # numpy and torch scalars included
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"energy.record(): {name} must be finite, got {value!r}")
        return number
    if hasattr(value, "item") and callable(value.item):  # a one-element tensor or array
        return plain_metric(name, value.item())
    raise TypeError(f"energy.record(): {name} must be a number, string, bool or None, got {type(value).__name__}")
