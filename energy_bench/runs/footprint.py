"""Carbon and cost beside joules: grams CO2e and money at a grid intensity and an energy price the user gives.

Nothing here has a default: a run without ``--energy-carbon-intensity`` / ``--energy-carbon-region`` /
``--energy-price`` carries no carbon or cost fields at all. An intensity looked up by region
(:mod:`energy_bench.runs.grid`) adds ``region``, ``region_name``, ``year`` and ``license`` to ``carbon``.
The conversion is plain arithmetic on the record's gross joules (what the meter saw):
``kWh = J / 3.6e6``, ``grams = kWh x intensity (gCO2e/kWh)``, ``cost = kWh x price per kWh``.

Fields added to ``extra_info.energy`` (per call, and to the target where the record has ``to_target``)::

    "carbon": {"grams_per_call": g, "grams_to_target": g, "intensity_g_per_kwh": G, "source": text}
    "cost": {"per_call": c, "to_target": c, "price_per_kwh": P, "currency": "EUR"}

and to ``machine_info.energy``: ``"carbon": {"intensity_g_per_kwh", "source"}``, ``"cost": {"price_per_kwh",
"currency"}``. Plain Python: no pytest, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from energy_bench.runs.text import printable

JOULES_PER_KWH = 3.6e6
#: recorded as the source when an intensity was given without --energy-carbon-source
SOURCE_NOT_GIVEN = "not given"
#: what a looked-up intensity adds to ``carbon``
DETAIL_KEYS = ("region", "region_name", "year", "license")


@dataclass(frozen=True)
class Footprint:
    """A grid intensity (gCO2e per kWh) and/or an energy price per kWh, as the user gave them."""

    intensity_g_per_kwh: float | None = None
    carbon_source: str | None = None
    price_per_kwh: float | None = None
    currency: str | None = None
    #: where a looked-up intensity comes from: region, region_name, year, license (:meth:`GridIntensity.describe`)
    carbon_details: Mapping[str, Any] | None = None

    def __bool__(self) -> bool:
        return self.intensity_g_per_kwh is not None or self.price_per_kwh is not None

    def grams(self, joules: float) -> float | None:
        return None if self.intensity_g_per_kwh is None else joules / JOULES_PER_KWH * self.intensity_g_per_kwh

    def cost(self, joules: float) -> float | None:
        return None if self.price_per_kwh is None else joules / JOULES_PER_KWH * self.price_per_kwh

    def describe(self) -> dict[str, Any]:
        """What ``machine_info.energy`` and each record say about the factors used (empty when none)."""
        info: dict[str, Any] = {}
        if self.intensity_g_per_kwh is not None:
            info["carbon"] = {
                "intensity_g_per_kwh": self.intensity_g_per_kwh,
                "source": self.carbon_source or SOURCE_NOT_GIVEN,
                **(self.carbon_details or {}),
            }
        if self.price_per_kwh is not None:
            info["cost"] = {"price_per_kwh": self.price_per_kwh, "currency": self.currency}
        return info


def from_record(record: Mapping[str, Any]) -> Footprint:
    """The factors a record was converted with (an empty Footprint when it has none)."""
    carbon = record.get("carbon") if isinstance(record.get("carbon"), Mapping) else {}
    cost = record.get("cost") if isinstance(record.get("cost"), Mapping) else {}
    return Footprint(
        _number(carbon.get("intensity_g_per_kwh")),
        carbon.get("source") if isinstance(carbon.get("source"), str) else None,
        _number(cost.get("price_per_kwh")),
        cost.get("currency") if isinstance(cost.get("currency"), str) else None,
        {k: carbon[k] for k in DETAIL_KEYS if k in carbon} or None,
    )


def add_footprint(record: MutableMapping[str, Any], footprint: Footprint | None) -> MutableMapping[str, Any]:
    """Add (or refresh) ``carbon`` and ``cost`` in an energy record; a failed record or no factors: unchanged."""
    if not footprint or "error" in record:
        return record
    per_call = record.get("joules_per_call") or record.get("joules")
    joules = _number(per_call.get("mean")) if isinstance(per_call, Mapping) else None
    to_target = record.get("to_target") if isinstance(record.get("to_target"), Mapping) else None
    target_joules = _number(to_target.get("joules")) if to_target else None
    described = footprint.describe()
    if "carbon" in described and joules is not None:
        carbon = {"grams_per_call": footprint.grams(joules)}
        if target_joules is not None:
            carbon["grams_to_target"] = footprint.grams(target_joules)
        record["carbon"] = carbon | described["carbon"]
    if "cost" in described and joules is not None:
        cost = {"per_call": footprint.cost(joules)}
        if target_joules is not None:
            cost["to_target"] = footprint.cost(target_joules)
        record["cost"] = cost | described["cost"]
    return record


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def saved_footprint(machine_energy: Mapping[str, Any] | None) -> Footprint:
    """The factors a saved run was converted with (``machine_info.energy``), to convert its other figures alike."""
    info = machine_energy if isinstance(machine_energy, Mapping) else {}
    carbon = info.get("carbon") if isinstance(info.get("carbon"), Mapping) else {}
    source = carbon.get("source")
    return Footprint(
        intensity_g_per_kwh=_number(carbon.get("intensity_g_per_kwh")),
        carbon_source=printable(source) if isinstance(source, str) else None,
    )


def factor_lines(machine_energy: Mapping[str, Any] | None) -> list[str]:
    """The factors a saved run was converted with (``machine_info.energy``), one sentence each; none when unset."""
    info = machine_energy if isinstance(machine_energy, Mapping) else {}
    carbon, cost = info.get("carbon"), info.get("cost")
    lines = []
    if isinstance(carbon, Mapping):
        lines.append(f"CO2e at {carbon.get('intensity_g_per_kwh')} gCO2e/kWh (source: {carbon.get('source')}).")
    if isinstance(cost, Mapping):
        lines.append(f"Cost at {cost.get('price_per_kwh')} {cost.get('currency')}/kWh.")
    return [printable(line) for line in lines]  # read from a file anyone can write
