"""What a run's estimated joules were computed with, and the same run recomputed with another model.

The estimate meter's joules are CPU seconds x watts per CPU second, so a run saved with one model converts to
another exactly: every joules figure (per round, per call, net, to the target, per domain) and the mean watts scale
by the ratio of the two watts. What a run was computed with lives in ``machine_info.energy``:

* runs since per-CPU coefficients: ``"estimate": {"watts_per_cpu_second", "lower_watts_per_cpu_second",
  "architecture", "match", "coefficients", "label", ...}`` (and ``"recomputed_from"`` after a rescale);
* older runs: ``"cpu_watts": 10.0`` with ``"cpu_watts_basis"``: the flat 10 W per busy core of before, or a user
  setting.

Each benchmark's record also keeps ``"estimate": {"watts_per_cpu_second", "cpu_seconds_per_call",
"lower_joules_per_call"}``. Plain Python: no pytest, no torch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from energy_bench.errors import EnergyBenchError
from energy_bench.meters.estimate import LEGACY_CPU_WATTS, LEGACY_CPU_WATTS_BASIS, EstimateModel
from energy_bench.runs.footprint import add_footprint, from_record
from energy_bench.runs.text import printable

ESTIMATE_METER = "estimate"
#: how deep composite meters' ``parts`` are searched (a real one nests once)
_PARTS_DEPTH = 8
#: per-round summaries in a record, each in pytest-benchmark's shape
_SAMPLE_KEYS = ("joules", "joules_per_call", "net_joules")
_SUMMARY_FIELDS = ("mean", "median", "min", "max", "stddev")


class EstimateModelError(EnergyBenchError, ValueError):
    """A run that cannot be recomputed (no estimated energy, or no record of its watts); one line."""


@dataclass(frozen=True)
class RecordedModel:
    """The estimate a saved run was computed with."""

    watts: float
    lower_watts: float | None
    label: str


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def estimate_info(machine_energy: Any, depth: int = 0) -> Mapping[str, Any] | None:
    """The estimate meter's description in ``machine_info.energy`` (itself, or one of a composite's parts)."""
    if not isinstance(machine_energy, Mapping) or depth > _PARTS_DEPTH:
        return None
    if machine_energy.get("meter") == ESTIMATE_METER:
        return machine_energy
    parts = machine_energy.get("parts")
    for part in parts if isinstance(parts, list) else ():
        found = estimate_info(part, depth + 1)
        if found is not None:
            return found
    return None


def recorded_model(machine_energy: Any) -> RecordedModel | None:
    """What a run's estimated joules were computed with; None when it has no estimate (or does not say)."""
    info = estimate_info(machine_energy)
    if info is None:
        return None
    model = info.get("estimate")
    if isinstance(model, Mapping) and _number(model.get("watts_per_cpu_second")):
        label = model.get("label") if isinstance(model.get("label"), str) else "label not recorded"
        if isinstance(model.get("recomputed_from"), str):
            label += f", recomputed from {model['recomputed_from']}"
        lower = _number(model.get("lower_watts_per_cpu_second"))
        return RecordedModel(float(model["watts_per_cpu_second"]), lower, printable(label))
    watts = _number(info.get("cpu_watts"))
    if not watts:
        return None
    basis = info.get("cpu_watts_basis")
    if watts == LEGACY_CPU_WATTS and basis == LEGACY_CPU_WATTS_BASIS:
        return RecordedModel(watts, None, "CPU time x 10 W per busy core (the flat default of older energy-bench)")
    basis = basis if isinstance(basis, str) else "basis not recorded"
    return RecordedModel(watts, None, printable(f"CPU time x {watts:g} W per busy core ({basis})"))


def model_line(machine_energy: Any) -> str | None:
    """``Estimated energy: <model>.`` for a run with estimated joules; None otherwise."""
    model = recorded_model(machine_energy)
    return None if model is None else f"Estimated energy: {model.label}."


def add_estimate(record: MutableMapping[str, Any], model: EstimateModel | RecordedModel) -> MutableMapping[str, Any]:
    """Add (or refresh) ``estimate`` in an energy record: its watts, CPU seconds and lower-bound joules per call."""
    per_call = record.get("joules_per_call") or record.get("joules")
    joules = _number(per_call.get("mean")) if isinstance(per_call, Mapping) else None
    if "error" in record or joules is None or not model.watts > 0:
        return record
    estimate: dict[str, Any] = {"watts_per_cpu_second": model.watts, "cpu_seconds_per_call": joules / model.watts}
    if model.lower_watts is not None:
        estimate["lower_watts_per_cpu_second"] = model.lower_watts
        estimate["lower_joules_per_call"] = joules / model.watts * model.lower_watts
    record["estimate"] = estimate
    return record


def _scale_samples(samples: Any, ratio: float) -> None:
    if not isinstance(samples, MutableMapping):
        return
    for key in _SUMMARY_FIELDS:
        if _number(samples.get(key)) is not None:
            samples[key] = samples[key] * ratio
    if isinstance(samples.get("data"), list):
        samples["data"] = [v * ratio if _number(v) is not None else v for v in samples["data"]]


def _scale_record(record: MutableMapping[str, Any], ratio: float, model: EstimateModel) -> None:
    for key in _SAMPLE_KEYS:
        _scale_samples(record.get(key), ratio)
    for key in ("mean_watts", "idle_watts"):
        if _number(record.get(key)) is not None:
            record[key] = record[key] * ratio
    if isinstance(record.get("domains"), MutableMapping):
        record["domains"] = {d: j * ratio if _number(j) is not None else j for d, j in record["domains"].items()}
    target = record.get("to_target")
    if isinstance(target, MutableMapping):
        if _number(target.get("joules")) is not None:
            target["joules"] = target["joules"] * ratio
        curve = target.get("curve")
        if isinstance(curve, MutableMapping) and isinstance(curve.get("joules"), list):
            curve["joules"] = [j * ratio if _number(j) is not None else j for j in curve["joules"]]
    add_footprint(record, from_record(record))  # grams and cost follow the joules
    add_estimate(record, model)


def rescale_run(data: Mapping[str, Any], model: EstimateModel) -> dict[str, Any]:
    """A copy of a saved run (pytest-benchmark JSON) with its estimated joules recomputed with ``model``.

    Raises :class:`EstimateModelError` when the run's energy was not estimated or does not say with what watts.
    Benchmarks measured by another meter are left as they are.
    """
    machine = data.get("machine_info") if isinstance(data.get("machine_info"), Mapping) else {}
    old = recorded_model(machine.get("energy"))
    if old is None:
        raise EstimateModelError("the run has no estimated energy, or does not record the watts it used")
    ratio = model.watts / old.watts
    out = copy.deepcopy(dict(data))
    for bench in out.get("benchmarks") or ():
        extra = bench.get("extra_info") if isinstance(bench, Mapping) else None
        energy = extra.get("energy") if isinstance(extra, Mapping) else None
        if isinstance(energy, MutableMapping) and energy.get("meter") == ESTIMATE_METER and "error" not in energy:
            _scale_record(energy, ratio, model)
    info = estimate_info(out["machine_info"]["energy"])
    info["cpu_watts"] = model.watts
    info["cpu_watts_basis"] = model.label()
    info["estimate"] = model.describe() | {"recomputed_from": old.label, "scale": ratio}
    return out
