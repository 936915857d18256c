"""Grid carbon intensity by country or cloud region, from a vendored table: never by IP, never over the network.

``--energy-carbon-region=CODE`` takes an ISO 3166-1 country code (``FR`` or ``FRA``) or a cloud region written
``PROVIDER:REGION`` (``aws:us-east-1``, ``gcp:europe-west1``, ``azure:westeurope``). The table
(``data/grid_intensity.json``) keeps, for each part, where its figures come from, their year and their license:

* countries: Our World in Data's electricity carbon intensity (from Ember and the Energy Institute, CC BY 4.0), as
  shipped in CodeCarbon, one figure per country with its year;
* GCP: Google's published figure per region, as shipped in CodeCarbon;
* AWS, Azure: Cloud Carbon Footprint's grid factors per region (US EPA eGRID for US regions, else EEA and
  carbonfootprint.com figures).

``scripts/vendor_grid_intensity.py`` regenerates it. Plain Python: no pytest, no torch.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from energy_bench.errors import EnergyBenchError

TABLE_FILE = "grid_intensity.json"
PROVIDERS = {"aws": "AWS", "gcp": "GCP", "azure": "Azure"}


class UnknownRegion(EnergyBenchError, ValueError):
    """A code the table does not have; the message lists the nearest ones."""


@dataclass(frozen=True)
class GridIntensity:
    """One row of the table, with where it comes from."""

    #: the code as the table knows it: ``FR`` (alpha-2 where the country has one, else alpha-3) or ``aws:us-east-1``
    code: str
    name: str
    g_per_kwh: float
    year: int | None
    dataset: str
    license: str
    #: what the dataset says this row's own figure comes from (e.g. ``US EPA eGRID, NERC region SERC``)
    origin: str | None = None
    #: the period in words where the dataset has no year per row
    period: str = "year not stated"

    def source(self) -> str:
        """One line for the record's ``source`` and the table's footnote."""
        when = str(self.year) if self.year is not None else self.period
        origin = f", {self.origin}" if self.origin and not self.origin.startswith("http") else ""
        return f"{self.name} ({self.code}), {when}: {self.dataset}{origin}; {self.license.split(' (')[0]}"

    def describe(self) -> dict[str, Any]:
        """The fields the record's ``carbon`` keeps beside the intensity and source."""
        return {"region": self.code, "region_name": self.name, "year": self.year, "license": self.license}


@cache
def table() -> dict[str, Any]:
    text = resources.files("energy_bench.runs").joinpath("data", TABLE_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _countries() -> dict[str, tuple[str, dict[str, Any]]]:
    """Upper-case alpha-2 and alpha-3 codes -> (the code to show, row)."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for alpha3, row in table()["countries"]["rows"].items():
        shown = row.get("alpha2") or alpha3
        found[alpha3] = (shown, row)
        if row.get("alpha2"):
            found[row["alpha2"]] = (shown, row)
    return found


def codes() -> list[str]:
    """Every code accepted: alpha-2 and alpha-3 country codes, then ``provider:region``."""
    clouds = table()["clouds"]
    return [*sorted(_countries()), *(f"{p}:{r}" for p in PROVIDERS for r in sorted(clouds[p]["rows"]))]


def lookup(code: str) -> GridIntensity:
    """The intensity for a country code or ``provider:region``; :class:`UnknownRegion` with near matches."""
    text = code.strip()
    provider, sep, region = text.partition(":")
    if sep:
        return _cloud(provider.strip().lower(), region.strip().lower(), text)
    found = _countries().get(text.upper())
    if found is None:
        raise UnknownRegion(_unknown(text))
    shown, row = found
    part = table()["countries"]
    return GridIntensity(shown, row["name"], float(row["g_per_kwh"]), row.get("year"), part["source"], part["license"])


def _cloud(provider: str, region: str, text: str) -> GridIntensity:
    part = table()["clouds"].get(provider)
    row = part["rows"].get(region) if part else None
    if row is None:
        raise UnknownRegion(_unknown(text))
    return GridIntensity(
        f"{provider}:{region}",
        f"{PROVIDERS[provider]} {region}",
        float(row["g_per_kwh"]),
        part.get("year"),
        part["source"],
        part["license"],
        row.get("origin"),
        part.get("period", "year not stated"),
    )


def _unknown(text: str) -> str:
    """One line: the code is unknown, the nearest codes (country names match too), and what codes look like."""
    names = {row["name"].lower(): shown for shown, row in _countries().values()}
    candidates = {c.lower(): c for c in codes()} | names
    near = difflib.get_close_matches(text.lower(), list(candidates), n=5, cutoff=0.6)
    suggestions = list(dict.fromkeys(candidates[n] for n in near))
    hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
    return (
        f"unknown region {text!r}{hint} (an ISO 3166-1 country code such as FR or FRA, or "
        f"{', '.join(p + ':REGION' for p in PROVIDERS)}, e.g. aws:us-east-1)"
    )
