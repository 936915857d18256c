"""Meters plugged in through the ``energy_bench.meters`` entry points, seen from pytest: --help, usage errors, records.

The entry points are handed over through the ``meter_entry_points`` seam, so these tests do not depend on what is
installed; pytest runs in-process so that the seam applies.
"""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from energy_bench.meters import select as select_mod

BASE = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--benchmark-max-time=0.05")
ENERGY_TEST = """
    def test_measured(energy):
        energy(sum, range(1000), rounds=2, warmup_rounds=0, iterations=1)
"""


@pytest.fixture(autouse=True)
def plugged(monkeypatch):
    entries = [
        importlib.metadata.EntryPoint("steady", "tests.fakes.meter_plugins:SteadyMeter", "energy_bench.meters"),
        importlib.metadata.EntryPoint("crashing", "tests.fakes.meter_plugins:crashing_meter", "energy_bench.meters"),
    ]
    monkeypatch.setattr(select_mod, "meter_entry_points", lambda: entries)
    return entries


def test_help_lists_plugged_in_meters(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert "auto|nvml|rapl|estimate|crashing|steady" in " ".join(result.stdout.str().split())


def test_unknown_meter_names_the_plugged_in_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*BASE, "--energy-meter=joulemeter")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = "expected one of auto, nvml, rapl, estimate, crashing, steady"
    result.stderr.fnmatch_lines([f"ERROR: --energy-meter: unknown meter 'joulemeter'; {expected}"])


def test_a_named_plug_in_that_cannot_be_built_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ENERGY_TEST)
    result = pytester.runpytest(*BASE, "--energy-meter=crashing")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --energy-meter=crashing: meter 'crashing' (*) cannot be built: RuntimeError: boom"]
    )


def test_a_plugged_in_meter_measures_and_is_recorded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ENERGY_TEST)
    result = pytester.runpytest(*BASE, "--energy-meter=steady", "--benchmark-json=out.json")
    result.assert_outcomes(passed=1)
    data = json.loads((pytester.path / "out.json").read_text())
    energy = data["benchmarks"][0]["extra_info"]["energy"]
    assert (energy["meter"], energy["source"], list(energy["domains"])) == ("steady", "measured", ["steady"])
    assert energy["temperatures_c"] == {"steady": [30.0, 30.0]}  # the meter reads a temperature: it is recorded
    assert data["machine_info"]["energy"]["meter"] == "steady"
