"""The estimate's watts per vCPU: each mapping row matched from a real CPU's /proc/cpuinfo (tests/core/cpuinfo/).

Nothing here reads this machine's CPU: every case parses a fixture text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from energy_bench.meters import cpus
from energy_bench.meters.estimate import EstimateMeter, detect_model, model_for, model_from_spec

FIXTURES = Path(__file__).parent / "cpuinfo"

#: fixture -> (architecture, how it is matched, coefficients row used)
EXPECTED = {
    "intel-xeon-e5-2670-sandy-bridge": ("Intel Sandy Bridge", "cpuinfo", "Sandy Bridge"),
    "intel-xeon-e5-2680v2-ivy-bridge": ("Intel Ivy Bridge", "cpuinfo", "Ivy Bridge"),
    "intel-xeon-e5-2676v3-haswell": ("Intel Haswell", "cpuinfo", "Haswell"),
    "intel-xeon-e5-2686v4-broadwell": ("Intel Broadwell", "cpuinfo", "Broadwell"),
    "intel-core-i7-6700-skylake": ("Intel Skylake", "cpuinfo", "Skylake"),
    "intel-xeon-platinum-8175m-skylake": ("Intel Skylake", "cpuinfo", "Skylake"),
    "intel-xeon-platinum-8259cl-cascade-lake": ("Intel Cascade Lake", "cpuinfo", "Cascade Lake"),
    "intel-xeon-platinum-8380h-cooper-lake": ("Intel Cooper Lake", "proxy", "Cascade Lake"),
    "intel-core-i7-8700-coffee-lake": ("Intel Coffee Lake", "cpuinfo", "Coffee Lake"),
    "intel-core-i7-10700-comet-lake": ("Intel Comet Lake", "proxy", "Coffee Lake"),
    "intel-xeon-platinum-8375c-ice-lake": ("Intel Ice Lake", "proxy", "Cascade Lake"),
    "intel-xeon-platinum-8488c-sapphire-rapids": ("Intel Sapphire Rapids", "proxy", "Cascade Lake"),
    "intel-xeon-platinum-8581c-emerald-rapids": ("Intel Emerald Rapids", "proxy", "Cascade Lake"),
    "intel-xeon-6972p-granite-rapids": ("Intel Granite Rapids", "proxy", "Cascade Lake"),
    "intel-core-i7-12700-alder-lake": ("Intel Alder Lake / Raptor Lake", "proxy", "Coffee Lake"),
    "amd-epyc-7571-naples": ("AMD EPYC Naples (Zen)", "cpuinfo", "AMD EPYC 1st Gen"),
    "amd-epyc-7r32-rome": ("AMD EPYC Rome (Zen 2)", "cpuinfo", "AMD EPYC 2nd Gen"),
    "amd-epyc-7763-milan": ("AMD EPYC Milan (Zen 3)", "cpuinfo", "AMD EPYC 3rd Gen"),
    # the two kinds of VM that say only "AMD EPYC": family 25 model 1 (AVX2) and model 17 (AVX-512, bf16)
    "amd-epyc-vm-milan": ("AMD EPYC Milan (Zen 3)", "cpuinfo", "AMD EPYC 3rd Gen"),
    "amd-epyc-vm-genoa": ("AMD EPYC Genoa (Zen 4)", "proxy", "AMD EPYC 3rd Gen"),
    "amd-epyc-9754-bergamo": ("AMD EPYC Genoa (Zen 4)", "proxy", "AMD EPYC 3rd Gen"),
    "amd-epyc-9755-turin": ("AMD EPYC Turin (Zen 5)", "proxy", "AMD EPYC 3rd Gen"),
    "amd-epyc-9965-turin-dense": ("AMD EPYC Turin (Zen 5)", "proxy", "AMD EPYC 3rd Gen"),
    # model numbers the id rules lack: the name, else the family (and AVX-512) decides
    "amd-epyc-4564p-zen4": ("AMD EPYC Genoa (Zen 4)", "proxy", "AMD EPYC 3rd Gen"),
    "amd-ryzen-9-5950x-zen3": ("AMD EPYC Milan (Zen 3)", "cpuinfo", "AMD EPYC 3rd Gen"),
    "amd-ryzen-9-7950x-zen4": ("AMD EPYC Genoa (Zen 4)", "proxy", "AMD EPYC 3rd Gen"),
    "amd-ryzen-7-3700x-zen2": ("AMD EPYC Rome (Zen 2)", "cpuinfo", "AMD EPYC 2nd Gen"),
    "amd-ryzen-9-9950x-zen5": ("AMD EPYC Turin (Zen 5)", "proxy", "AMD EPYC 3rd Gen"),
    "arm-aws-graviton2-neoverse-n1": ("Arm Neoverse N1 (AWS Graviton2, Ampere Altra)", "cpuinfo", "AWS Graviton2"),
    "arm-aws-graviton3-neoverse-v1": ("Arm Neoverse V1 (AWS Graviton3)", "proxy", "AWS Graviton2"),
    "arm-azure-cobalt-100-neoverse-n2": ("Arm Neoverse N2", "proxy", "AWS Graviton2"),
    "arm-aws-graviton4-neoverse-v2": ("Arm Neoverse V2 (AWS Graviton4, NVIDIA Grace)", "proxy", "AWS Graviton2"),
    "qemu-virtual-cpu": ("unknown CPU", "default", "default"),
}


def cpuinfo(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text()


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.txt")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cpuinfo_maps_to_its_architecture_and_coefficients(name: str) -> None:
    architecture, how, row = EXPECTED[name]
    found = cpus.match_cpu(cpus.parse_cpuinfo(cpuinfo(name)))
    assert (found.architecture, found.match, found.coefficients) == (architecture, how, row)
    table = cpus.coefficients()
    coefficients = table["default"] if row == "default" else table["architectures"][row]
    assert (found.min_watts, found.max_watts) == (coefficients["min_watts"], coefficients["max_watts"])


def test_each_id_arm_and_name_rule_has_a_fixture() -> None:
    parsed = [cpus.parse_cpuinfo(cpuinfo(name)) for name in EXPECTED]
    used_ids = {rule for rule in cpus.ID_RULES for cpu in parsed if cpus.by_id(cpu) is rule[-1] and _fits(rule, cpu)}
    assert len(used_ids) == len(cpus.ID_RULES)
    assert {(c.implementer, c.part) for c in parsed if c.part is not None} == set(cpus.ARM_PARTS)
    names = [c.name for c in parsed if c.name]
    assert all(any(pattern.search(n) for n in names) for pattern, _ in cpus.NAME_RULES)


def _fits(rule, cpu: cpus.CpuId) -> bool:
    vendor, family, models, steppings, _ = rule
    return (
        (cpu.vendor, cpu.family) == (vendor, family)
        and cpu.model in models
        and cpu.stepping in (steppings or [cpu.stepping])
    )


#: fixtures whose model name alone (the second key) names the same architecture as their cpuinfo id
NAME_AGREES = [n for n in EXPECTED if n.startswith(("intel-xeon", "amd-epyc-7", "amd-epyc-9"))]


@pytest.mark.parametrize("name", NAME_AGREES)
def test_the_model_name_alone_gives_the_same_architecture(name: str) -> None:
    cpu = cpus.parse_cpuinfo(cpuinfo(name))
    if name == "intel-xeon-6972p-granite-rapids":
        assert cpus.by_name(cpu) is None  # "Xeon 6" names carry no generation digit: cpuinfo only
        return
    by_name = cpus.match_cpu(cpus.CpuId(name=cpu.name))
    assert by_name.architecture == EXPECTED[name][0]
    assert by_name.match == ("proxy" if EXPECTED[name][1] == "proxy" else "name")


def test_the_name_decides_where_the_model_number_is_unknown() -> None:
    cpu = cpus.parse_cpuinfo(cpuinfo("amd-epyc-4564p-zen4"))
    assert cpus.by_id(cpu) is None and cpus.by_name(cpu) is cpus.EPYC_GENOA
    assert "model name 'AMD EPYC 4564P 16-Core Processor'" in cpus.match_cpu(cpu).evidence


def test_no_cpuinfo_is_the_default() -> None:
    model = detect_model("")
    assert (model.match, model.architecture, model.watts, model.lower_watts) == ("default", "unknown CPU", 3.5, 2.76)


def test_estimate_is_max_watts_with_max_minus_min_as_lower_bound() -> None:
    model = detect_model(cpuinfo("amd-epyc-7763-milan"))
    assert (model.watts, model.lower_watts) == (2.02, pytest.approx(1.57))
    assert model.label() == (
        "CPU time x 2.02 W per vCPU (AMD EPYC Milan (Zen 3) from cpuinfo, Cloud Carbon Footprint coefficients; "
        "lower bound 1.57 W)"
    )
    genoa = detect_model(cpuinfo("amd-epyc-vm-genoa"))
    assert genoa.label() == (
        "CPU time x 2.02 W per vCPU (AMD EPYC Genoa (Zen 4), proxy: Cloud Carbon Footprint's AMD EPYC 3rd Gen "
        "coefficients; lower bound 1.57 W)"
    )
    described = genoa.describe()
    assert described["evidence"] == "AuthenticAMD family 25 model 17 stepping 1 (cpuinfo)"
    assert described["coefficients_source"].startswith("Cloud Carbon Footprint b7a049c7 (2024-03-25), Apache-2.0")


def test_meter_uses_the_model_and_a_number_overrides_it() -> None:
    model = detect_model(cpuinfo("intel-xeon-platinum-8259cl-cascade-lake"))
    samples = iter([1.0, 3.0])
    meter = EstimateMeter(model=model, cpu_seconds=lambda: next(samples))
    assert meter.end(meter.begin()).joules == {"cpu": 2.0 * 3.97}
    assert meter.info()["estimate"]["architecture"] == "Intel Cascade Lake"
    assert EstimateMeter(5.0).model.match == "user"


def test_model_from_spec() -> None:
    assert model_from_spec("milan").label().startswith("CPU time x 2.02 W per vCPU (AMD EPYC Milan (Zen 3) as chosen")
    assert model_from_spec("zen4").match == "proxy"
    assert model_from_spec("default").watts == 3.5
    assert model_from_spec("4.5").match == "user"
    for bad, message in (("intel", "several architectures"), ("sparc", "no architectures"), ("-2", "positive")):
        with pytest.raises(ValueError, match=message):
            model_from_spec(bad)


def test_vendored_table_says_where_it_comes_from() -> None:
    source = cpus.coefficients()["_source"]
    assert source["license"].startswith("Apache-2.0") and len(source["commit"]) == 40 and source["date"]
    assert (FIXTURES.parent.parent.parent / "energy_bench/meters/data/LICENSE-cloud-carbon-footprint.txt").exists()
    assert model_for(cpus.match_architecture(cpus.CASCADE_LAKE, "test")).lower_watts == pytest.approx(3.33)
