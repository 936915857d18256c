"""Carbon and cost beside joules: conversion, record fields, options (usage errors), table columns, saved run."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from energy_bench.meters.base import Reading, Source
from energy_bench.plugin import table
from energy_bench.runs import record as records
from energy_bench.runs.footprint import Footprint, add_footprint, from_record

BASE = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--energy-meter=estimate", "--benchmark-max-time=0.05")
GRID = Footprint(400.0, "grid operator 2025", 0.25, "EUR")


def readings(joules, source=Source.MEASURED):
    return [Reading({"gpu0": j}, 1.0, source, "nvml-counter") for j in joules]


def test_one_kwh_converts_to_the_factors() -> None:
    assert GRID.grams(3.6e6) == pytest.approx(400.0)
    assert GRID.cost(3.6e6) == pytest.approx(0.25)
    assert Footprint().grams(3.6e6) is None and not Footprint()
    assert Footprint(0.0)  # a zero-carbon grid is a value, not "not set"


def test_record_carries_grams_and_cost_per_call_and_to_target() -> None:
    reads = readings([7.2e5, 7.2e5, 3.6e5])
    record = records.energy_record(reads, iterations=2)
    record["to_target"] = records.target_record(reads, True, 5, {"metric": "accuracy", "target": 0.9})
    add_footprint(record, GRID)
    per_call = record["joules_per_call"]["mean"]  # 1.8e6 J / 3 rounds / 2 calls
    assert record["carbon"] == {
        "grams_per_call": pytest.approx(per_call / 3.6e6 * 400),
        "grams_to_target": pytest.approx(1.8e6 / 3.6e6 * 400),
        "intensity_g_per_kwh": 400.0,
        "source": "grid operator 2025",
    }
    assert record["cost"] == {
        "per_call": pytest.approx(per_call / 3.6e6 * 0.25),
        "to_target": pytest.approx(0.125),
        "price_per_kwh": 0.25,
        "currency": "EUR",
    }
    assert from_record(record) == GRID
    json.dumps(record)  # plain JSON


def test_nothing_is_added_without_factors_or_to_a_failed_record() -> None:
    record = records.energy_record(readings([10.0]))
    assert "carbon" not in add_footprint(dict(record), Footprint()) and "cost" not in add_footprint(record, None)
    failed = {"error": "GPU is lost", "meter": "nvml-counter", "source": "measured"}
    assert add_footprint(dict(failed), GRID) == failed
    only_carbon = add_footprint(records.energy_record(readings([10.0])), Footprint(100.0))
    assert only_carbon["carbon"]["source"] == "not given" and "cost" not in only_carbon


def test_retargeted_record_refreshes_its_footprint() -> None:
    reads = readings([3.6e6, 3.6e6, 3.6e6])
    record = add_footprint(records.energy_record(reads), GRID)
    curve = records.target_record(reads, False, 3, {"metric": "accuracy", "target": 2.0}, [0.5, 0.8, 0.9])["curve"]
    record["to_target"] = records.target_from_curve(curve, {"metric": "accuracy", "target": 0.75}, 3)
    add_footprint(record, from_record(record))
    assert record["to_target"]["rounds"] == 2 and record["carbon"]["grams_to_target"] == pytest.approx(800.0)


def bench(name, energy, accuracy=None):
    extra = {"energy": energy} | ({} if accuracy is None else {"accuracy": accuracy})
    return SimpleNamespace(name=name, fullname=f"t.py::{name}", stats=SimpleNamespace(mean=1.0), extra_info=extra)


def test_table_shows_carbon_and_cost_columns_with_their_factors() -> None:
    reads = readings([3.6e5, 3.6e5])
    plain = add_footprint(records.energy_record(reads), GRID)
    target = records.energy_record(reads)
    target["to_target"] = records.target_record(reads, False, 2, {"metric": "accuracy", "target": 0.9})
    add_footprint(target, GRID)
    headers, rows, _ = table.energy_rows([bench("test_a", plain), bench("test_b", target)])
    assert headers[headers.index("to target (J)") + 1 :][:4] == [
        "CO2e (g/call)",
        "to target CO2e (g)",
        "cost (EUR/call)",
        "to target cost (EUR)",
    ]
    start = headers.index("CO2e (g/call)")
    assert rows[0][start : start + 4] == ["40", "", "0.025", ""]
    assert rows[1][start : start + 4] == ["40", "not reached", "0.025", "not reached"]
    lines = table.energy_table_lines([bench("test_a", plain)])
    assert lines[-2:] == ["CO2e at 400 gCO2e/kWh (source: grid operator 2025)", "cost at 0.25 EUR/kWh"]


def test_table_has_no_carbon_columns_when_not_set() -> None:
    headers, _, _ = table.energy_rows([bench("test_a", records.energy_record(readings([1.0])))])
    assert not any("CO2e" in h or "cost" in h for h in headers)


ENERGY_TEST = """
    def test_measured(energy):
        energy(sum, range(20000), rounds=2)
"""


@pytest.mark.parametrize(
    "args, message",
    [
        (["--energy-carbon-intensity=lots"], "--energy-carbon-intensity: 'lots' is not a number"),
        (["--energy-carbon-intensity=-5"], "--energy-carbon-intensity: '-5' must be at least 0"),
        (["--energy-carbon-intensity=inf"], "--energy-carbon-intensity: 'inf' must be a finite number"),
        (["--energy-carbon-intensity=1e9"], "must be at least 0 and at most 5000"),
        (["--energy-carbon-source=grid"], "--energy-carbon-source needs --energy-carbon-intensity"),
        (["--energy-price=0.3"], "--energy-price needs --energy-currency"),
        (["--energy-price=nan", "--energy-currency=EUR"], "--energy-price: 'nan' must be a finite number"),
        (["--energy-currency=EUR"], "--energy-currency needs --energy-price"),
        (["--energy-price=0.3", "--energy-currency=euro cents"], "is not a currency code or symbol"),
    ],
)
def test_bad_factors_are_usage_errors(pytester: pytest.Pytester, args, message) -> None:
    pytester.makepyfile(ENERGY_TEST)
    result = pytester.runpytest(*BASE, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_saved_run_and_table_carry_the_factors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ENERGY_TEST)
    pytester.makeini("[pytest]\nenergy_price = 0.3\nenergy_currency = EUR\n")
    result = pytester.runpytest(
        *BASE, "--benchmark-json=out.json", "--energy-carbon-intensity=250", "--energy-carbon-source=test grid"
    )
    assert result.ret == 0, result.stdout.str()
    data = json.loads((pytester.path / "out.json").read_text())
    record = data["benchmarks"][0]["extra_info"]["energy"]
    assert record["carbon"]["intensity_g_per_kwh"] == 250.0 and record["carbon"]["source"] == "test grid"
    assert record["carbon"]["grams_per_call"] == pytest.approx(record["joules_per_call"]["mean"] / 3.6e6 * 250)
    assert record["cost"]["currency"] == "EUR" and record["cost"]["price_per_kwh"] == 0.3
    assert data["machine_info"]["energy"]["carbon"] == {"intensity_g_per_kwh": 250.0, "source": "test grid"}
    assert data["machine_info"]["energy"]["cost"] == {"price_per_kwh": 0.3, "currency": "EUR"}
    result.stdout.fnmatch_lines(["*CO2e (g/call)*cost (EUR/call)*", "CO2e at 250 gCO2e/kWh (source: test grid)"])


def test_nothing_is_recorded_without_factors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ENERGY_TEST)
    result = pytester.runpytest(*BASE, "--benchmark-json=out.json")
    assert result.ret == 0
    data = json.loads((pytester.path / "out.json").read_text())
    assert "carbon" not in data["benchmarks"][0]["extra_info"]["energy"]
    assert not {"carbon", "cost"} & set(data["machine_info"]["energy"])
    assert "CO2e" not in result.stdout.str()
