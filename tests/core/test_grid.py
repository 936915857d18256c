"""Offline carbon intensity by country or cloud region: the vendored table, the option, its usage errors."""

from __future__ import annotations

import json

import pytest

from energy_bench.runs import grid
from energy_bench.runs import record as records
from energy_bench.runs.footprint import Footprint, add_footprint, from_record
from tests.core.test_footprint import BASE, ENERGY_TEST, readings


def test_country_by_alpha2_and_alpha3_any_case() -> None:
    france = grid.lookup("FR")
    assert grid.lookup("fra") == france == grid.lookup(" Fr ")
    row = grid.table()["countries"]["rows"]["FRA"]
    assert (france.code, france.name, france.g_per_kwh, france.year) == ("FR", "France", row["g_per_kwh"], row["year"])
    assert france.license == "CC BY 4.0" and "Our World in Data" in france.source()
    assert france.source().startswith(f"France (FR), {row['year']}: ")


@pytest.mark.parametrize(
    "code, provider, region", [("aws:us-east-1", "aws", "us-east-1"), ("gcp:europe-west1", "gcp", "europe-west1"),
                               ("azure:westeurope", "azure", "westeurope"), ("Azure:WestEurope", "azure", "westeurope")]
)  # fmt: skip
def test_cloud_regions(code: str, provider: str, region: str) -> None:
    found = grid.lookup(code)
    part = grid.table()["clouds"][provider]
    assert found.g_per_kwh == part["rows"][region]["g_per_kwh"] and found.code == f"{provider}:{region}"
    assert found.license == part["license"] and part["source"] in found.source()


def test_us_aws_regions_name_their_egrid_subregion() -> None:
    assert "US EPA eGRID, NERC region SERC" in grid.lookup("aws:us-east-1").source()


@pytest.mark.parametrize(
    "code, suggested",
    [("France", "FR"), ("aws:us-east-9", "aws:us-east-1"), ("azure:west-europe", "azure:westeurope"),
     ("amazon:us-east-1", "aws:us-east-1"), ("gcp:europe-wst1", "gcp:europe-west1")],
)  # fmt: skip
def test_unknown_codes_name_near_matches(code: str, suggested: str) -> None:
    with pytest.raises(grid.UnknownRegion, match="did you mean") as caught:
        grid.lookup(code)
    assert suggested in str(caught.value) and "\n" not in str(caught.value)


def test_vendored_table_carries_origin_license_and_year() -> None:
    table = grid.table()
    assert table["_source"]["unit"] == "gCO2e/kWh" and len(table["_source"]["ccf_commit"]) == 40
    assert all(isinstance(row["year"], int) for row in table["countries"]["rows"].values())
    for part in [table["countries"], *table["clouds"].values()]:
        assert part["source"] and part["license"] and part["rows"]
        assert all(0 <= row["g_per_kwh"] <= 2000 for row in part["rows"].values())


def test_region_details_survive_a_refresh_of_the_record() -> None:
    france = grid.lookup("FR")
    footprint = Footprint(france.g_per_kwh, france.source(), carbon_details=france.describe())
    record = add_footprint(records.energy_record(readings([3.6e6])), footprint)
    assert record["carbon"]["region"] == "FR" and record["carbon"]["grams_per_call"] == pytest.approx(france.g_per_kwh)
    assert from_record(record) == footprint


@pytest.mark.parametrize("code", ["FR", "aws:us-east-1"])
def test_option_puts_grams_and_their_source_in_record_run_and_table(pytester: pytest.Pytester, code: str) -> None:
    pytester.makepyfile(ENERGY_TEST)
    result = pytester.runpytest(*BASE, "--benchmark-json=out.json", f"--energy-carbon-region={code}")
    assert result.ret == 0, result.stdout.str()
    data = json.loads((pytester.path / "out.json").read_text())
    found = grid.lookup(code)
    carbon = data["benchmarks"][0]["extra_info"]["energy"]["carbon"]
    assert carbon["intensity_g_per_kwh"] == found.g_per_kwh and carbon["source"] == found.source()
    assert (carbon["region"], carbon["year"], carbon["license"]) == (found.code, found.year, found.license)
    assert data["machine_info"]["energy"]["carbon"]["region"] == found.code
    result.stdout.fnmatch_lines([f"CO2e at {found.g_per_kwh:g} gCO2e/kWh (source: {found.source()})"])


def test_a_typed_intensity_wins_over_the_region(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ENERGY_TEST)
    pytester.makeini("[pytest]\nenergy_carbon_region = FR\n")
    result = pytester.runpytest(*BASE, "--benchmark-json=out.json", "--energy-carbon-intensity=250")
    assert result.ret == 0, result.stdout.str()
    carbon = json.loads((pytester.path / "out.json").read_text())["machine_info"]["energy"]["carbon"]
    assert carbon == {"intensity_g_per_kwh": 250.0, "source": "not given"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--energy-carbon-region=XX"], "--energy-carbon-region: unknown region 'XX'"),
        (["--energy-carbon-region=aws:us-est-1"], "did you mean aws:"),
        (["--energy-carbon-region=XX", "--energy-carbon-intensity=100"], "unknown region 'XX'"),
        (["--energy-carbon-region=FR", "--energy-carbon-source=x"], "--energy-carbon-region brings its own source"),
    ],
)
def test_bad_regions_are_usage_errors(pytester: pytest.Pytester, args, message) -> None:
    pytester.makepyfile(ENERGY_TEST)
    result = pytester.runpytest(*BASE, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str() and "Traceback" not in result.stderr.str()
