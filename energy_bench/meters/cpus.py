"""Which CPU this is, and the watts per vCPU that published coefficients give its microarchitecture.

The estimate meter multiplies CPU seconds by watts; this module picks the watts. The CPU is read from
``/proc/cpuinfo`` (:func:`parse_cpuinfo`) and matched, in this order (:func:`match_cpu`):

1. **cpuinfo**: vendor, family and model (Intel, AMD; the stepping where one model number covers two
   architectures), or ARM's implementer and part, against :data:`ID_RULES` and :data:`ARM_PARTS`;
2. **name**: the ``model name`` string against :data:`NAME_RULES` (e.g. ``AMD EPYC 7763`` is Milan), for model
   numbers the table lacks;
3. **cpuinfo** again, by family alone: an AMD family 25 part with AVX-512 is Zen 4, without it Zen 3 (VMs often
   say only "AMD EPYC");
4. **default**: the source's average for an unknown CPU.

The coefficients are Cloud Carbon Footprint's (``data/cpu_coefficients.json``, with its origin and license):
per-vCPU wall watts at 0 % and 100 % utilisation from SPECpower results. An architecture newer than the source
knows (Zen 4, Sapphire Rapids, Neoverse V1, ...) takes the coefficients of the nearest older one it has, and the
match says ``proxy``. No pytest, no torch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

COEFFICIENTS_FILE = "cpu_coefficients.json"
#: what a match says about how the architecture was found
MATCHES = ("cpuinfo", "name", "proxy", "default", "user")


@dataclass(frozen=True)
class Architecture:
    """A microarchitecture as energy-bench names it, and the row of the coefficients table it uses."""

    name: str
    coefficients: str
    #: True when the table has no row of its own for it (the row is the nearest older architecture's)
    proxy: bool = False


SANDY_BRIDGE = Architecture("Intel Sandy Bridge", "Sandy Bridge")
IVY_BRIDGE = Architecture("Intel Ivy Bridge", "Ivy Bridge")
HASWELL = Architecture("Intel Haswell", "Haswell")
BROADWELL = Architecture("Intel Broadwell", "Broadwell")
SKYLAKE = Architecture("Intel Skylake", "Skylake")
CASCADE_LAKE = Architecture("Intel Cascade Lake", "Cascade Lake")
COFFEE_LAKE = Architecture("Intel Coffee Lake", "Coffee Lake")
# The source names Ice Lake but gives it no coefficients: it and everything newer use Cascade Lake's.
COOPER_LAKE = Architecture("Intel Cooper Lake", "Cascade Lake", proxy=True)
ICE_LAKE = Architecture("Intel Ice Lake", "Cascade Lake", proxy=True)
SAPPHIRE_RAPIDS = Architecture("Intel Sapphire Rapids", "Cascade Lake", proxy=True)
EMERALD_RAPIDS = Architecture("Intel Emerald Rapids", "Cascade Lake", proxy=True)
GRANITE_RAPIDS = Architecture("Intel Granite Rapids", "Cascade Lake", proxy=True)
# Client parts after Coffee Lake (laptops, desktops) take the newest client row the source has.
COMET_LAKE = Architecture("Intel Comet Lake", "Coffee Lake", proxy=True)
ALDER_LAKE = Architecture("Intel Alder Lake / Raptor Lake", "Coffee Lake", proxy=True)
EPYC_NAPLES = Architecture("AMD EPYC Naples (Zen)", "AMD EPYC 1st Gen")
EPYC_ROME = Architecture("AMD EPYC Rome (Zen 2)", "AMD EPYC 2nd Gen")
EPYC_MILAN = Architecture("AMD EPYC Milan (Zen 3)", "AMD EPYC 3rd Gen")
EPYC_GENOA = Architecture("AMD EPYC Genoa (Zen 4)", "AMD EPYC 3rd Gen", proxy=True)
EPYC_TURIN = Architecture("AMD EPYC Turin (Zen 5)", "AMD EPYC 3rd Gen", proxy=True)
NEOVERSE_N1 = Architecture("Arm Neoverse N1 (AWS Graviton2, Ampere Altra)", "AWS Graviton2")
NEOVERSE_V1 = Architecture("Arm Neoverse V1 (AWS Graviton3)", "AWS Graviton2", proxy=True)
NEOVERSE_N2 = Architecture("Arm Neoverse N2", "AWS Graviton2", proxy=True)
NEOVERSE_V2 = Architecture("Arm Neoverse V2 (AWS Graviton4, NVIDIA Grace)", "AWS Graviton2", proxy=True)

#: every architecture the rules know, for choosing one by name (``energy-bench report --estimate-model``)
ARCHITECTURES = (
    SANDY_BRIDGE, IVY_BRIDGE, HASWELL, BROADWELL, SKYLAKE, CASCADE_LAKE, COFFEE_LAKE, COOPER_LAKE, ICE_LAKE,
    SAPPHIRE_RAPIDS, EMERALD_RAPIDS, GRANITE_RAPIDS, COMET_LAKE, ALDER_LAKE, EPYC_NAPLES, EPYC_ROME, EPYC_MILAN,
    EPYC_GENOA, EPYC_TURIN, NEOVERSE_N1, NEOVERSE_V1, NEOVERSE_N2, NEOVERSE_V2,
)  # fmt: skip

#: (vendor_id, cpu family, model numbers, steppings or None for any) -> architecture; the first that fits wins
ID_RULES: tuple[tuple[str, int, frozenset[int], range | None, Architecture], ...] = (
    ("GenuineIntel", 6, frozenset({42, 45}), None, SANDY_BRIDGE),
    ("GenuineIntel", 6, frozenset({58, 62}), None, IVY_BRIDGE),
    ("GenuineIntel", 6, frozenset({60, 63, 69, 70}), None, HASWELL),
    ("GenuineIntel", 6, frozenset({61, 71, 79, 86}), None, BROADWELL),
    ("GenuineIntel", 6, frozenset({78, 94}), None, SKYLAKE),
    # model 85 (0x55) is three server generations, told apart by stepping
    ("GenuineIntel", 6, frozenset({85}), range(0, 5), SKYLAKE),
    ("GenuineIntel", 6, frozenset({85}), range(5, 10), CASCADE_LAKE),
    ("GenuineIntel", 6, frozenset({85}), range(10, 16), COOPER_LAKE),
    ("GenuineIntel", 6, frozenset({142, 158}), None, COFFEE_LAKE),  # Kaby Lake, Coffee Lake, Whiskey Lake
    ("GenuineIntel", 6, frozenset({165, 166}), None, COMET_LAKE),
    ("GenuineIntel", 6, frozenset({106, 108, 125, 126}), None, ICE_LAKE),
    ("GenuineIntel", 6, frozenset({143}), None, SAPPHIRE_RAPIDS),
    ("GenuineIntel", 6, frozenset({207}), None, EMERALD_RAPIDS),
    ("GenuineIntel", 6, frozenset({173, 174}), None, GRANITE_RAPIDS),
    ("GenuineIntel", 6, frozenset({151, 154, 183, 186, 191}), None, ALDER_LAKE),
    ("AuthenticAMD", 23, frozenset({1}), None, EPYC_NAPLES),
    ("AuthenticAMD", 23, frozenset({49}), None, EPYC_ROME),
    ("AuthenticAMD", 25, frozenset({1}), None, EPYC_MILAN),
    ("AuthenticAMD", 25, frozenset({17, 160}), None, EPYC_GENOA),  # Genoa, Bergamo
    ("AuthenticAMD", 26, frozenset({2, 17}), None, EPYC_TURIN),  # Turin, Turin dense
)

#: ARM (CPU implementer, CPU part) -> architecture
ARM_PARTS: dict[tuple[int, int], Architecture] = {
    (0x41, 0xD0C): NEOVERSE_N1,
    (0x41, 0xD40): NEOVERSE_V1,
    (0x41, 0xD49): NEOVERSE_N2,
    (0x41, 0xD4F): NEOVERSE_V2,
}

#: ``model name`` patterns -> architecture, for model numbers the id rules lack
NAME_RULES: tuple[tuple[re.Pattern[str], Architecture], ...] = (
    (re.compile(r"\bEPYC[- ]Naples|\bEPYC\s+7[0-9A-Z]{2}1\b"), EPYC_NAPLES),
    (re.compile(r"\bEPYC[- ]Rome|\bEPYC\s+7[0-9A-Z]{2}2\b"), EPYC_ROME),
    (re.compile(r"\bEPYC[- ]Milan|\bEPYC\s+7[0-9A-Z]{2}3\b"), EPYC_MILAN),
    (re.compile(r"\bEPYC[- ](Genoa|Bergamo)|\bEPYC\s+[489][0-9A-Z]{2}4"), EPYC_GENOA),
    (re.compile(r"\bEPYC[- ]Turin|\bEPYC\s+9[0-9A-Z]{2}5"), EPYC_TURIN),
    (re.compile(r"\b(Platinum|Gold|Silver|Bronze)\s+\d1\d\d"), SKYLAKE),
    (re.compile(r"\b(Platinum|Gold|Silver|Bronze)\s+\d2\d\d"), CASCADE_LAKE),
    (re.compile(r"\b(Platinum|Gold)\s+\d3\d\dH"), COOPER_LAKE),
    (re.compile(r"\b(Platinum|Gold|Silver|Bronze)\s+\d3\d\d"), ICE_LAKE),
    (re.compile(r"\b(Platinum|Gold|Silver|Bronze)\s+\d4\d\d"), SAPPHIRE_RAPIDS),
    (re.compile(r"\b(Platinum|Gold|Silver|Bronze)\s+\d5\d\d"), EMERALD_RAPIDS),
    (re.compile(r"\bE[357]-\d{4}[A-Z]?L?\s+v2\b"), IVY_BRIDGE),
    (re.compile(r"\bE[357]-\d{4}[A-Z]?L?\s+v3\b"), HASWELL),
    (re.compile(r"\bE[357]-\d{4}[A-Z]?L?\s+v4\b"), BROADWELL),
    (re.compile(r"\bE5-\d{4}[A-Z]?L?(?!\s+v\d)\b"), SANDY_BRIDGE),
)


@dataclass(frozen=True)
class CpuId:
    """What ``/proc/cpuinfo`` says about the first processor."""

    vendor: str | None = None
    family: int | None = None
    model: int | None = None
    stepping: int | None = None
    name: str | None = None
    implementer: int | None = None
    part: int | None = None
    flags: frozenset[str] = field(default_factory=frozenset)

    def describe(self) -> str:
        """The identity in words, as the record keeps it (e.g. ``AuthenticAMD family 25 model 17``)."""
        if self.implementer is not None and self.part is not None:
            return f"ARM implementer {self.implementer:#x} part {self.part:#x}"
        if self.vendor and self.family is not None and self.model is not None:
            stepping = f" stepping {self.stepping}" if self.stepping is not None else ""
            return f"{self.vendor} family {self.family} model {self.model}{stepping}"
        return "unidentified CPU"


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 0)  # ARM writes hexadecimal (0x41), x86 decimal
    except ValueError:
        return None


def parse_cpuinfo(text: str) -> CpuId:
    """The first processor's identity in a ``/proc/cpuinfo`` text (empty fields when absent)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep:
            if fields.get("processor") is not None and not line.strip() and "vendor_id" in fields:
                break  # the end of the first x86 block; ARM lists its identity once per core too
            continue
        fields.setdefault(key, value.strip())
    name = fields.get("model name") or fields.get("Model") or fields.get("Hardware") or None
    return CpuId(
        vendor=fields.get("vendor_id") or None,
        family=_int(fields.get("cpu family")),
        model=_int(fields.get("model")),
        stepping=_int(fields.get("stepping")),
        name=name,
        implementer=_int(fields.get("CPU implementer")),
        part=_int(fields.get("CPU part")),
        flags=frozenset((fields.get("flags") or fields.get("Features") or "").split()),
    )


@dataclass(frozen=True)
class CpuMatch:
    """The architecture found, how, and the coefficients it gets (watts per vCPU at 0 % and 100 % load)."""

    architecture: str
    #: the row of the coefficients table used (``default`` for an unknown CPU)
    coefficients: str
    #: cpuinfo, name, proxy or default (see :data:`MATCHES`)
    match: str
    #: what identified it: the cpuinfo fields or the model name
    evidence: str
    min_watts: float
    max_watts: float


def by_id(cpu: CpuId) -> Architecture | None:
    if cpu.implementer is not None and cpu.part is not None:
        return ARM_PARTS.get((cpu.implementer, cpu.part))
    for vendor, family, models, steppings, arch in ID_RULES:
        same = (cpu.vendor, cpu.family) == (vendor, family) and cpu.model in models
        if same and (steppings is None or (cpu.stepping is not None and cpu.stepping in steppings)):
            return arch
    return None


def by_name(cpu: CpuId) -> Architecture | None:
    for pattern, arch in NAME_RULES:
        if cpu.name and pattern.search(cpu.name):
            return arch
    return None


def by_family(cpu: CpuId) -> Architecture | None:
    """AMD parts whose model number the rules lack: the family (and AVX-512 for Zen 4) says the generation."""
    if cpu.vendor != "AuthenticAMD":
        return None
    if cpu.family == 23:
        return EPYC_ROME if (cpu.model or 0) >= 0x30 else EPYC_NAPLES
    if cpu.family == 25:
        return EPYC_GENOA if "avx512f" in cpu.flags else EPYC_MILAN
    if cpu.family == 26:
        return EPYC_TURIN
    return None


def match_cpu(cpu: CpuId) -> CpuMatch:
    """The coefficients for ``cpu``: by cpuinfo id, then model name, then AMD family, else the default."""
    table = coefficients()
    for how, find, evidence in (
        ("cpuinfo", by_id, cpu.describe()),
        ("name", by_name, f"model name {cpu.name!r}"),
        ("cpuinfo", by_family, f"{cpu.describe()}{' with AVX-512' if 'avx512f' in cpu.flags else ''}"),
    ):
        arch = find(cpu)
        if arch is not None:
            row = table["architectures"][arch.coefficients]
            return CpuMatch(
                arch.name,
                arch.coefficients,
                "proxy" if arch.proxy else how,
                f"{evidence} ({how})" if arch.proxy else evidence,
                float(row["min_watts"]),
                float(row["max_watts"]),
            )
    default = table["default"]
    evidence = cpu.describe() + (f", model name {cpu.name!r}" if cpu.name else "")
    return CpuMatch(
        "unknown CPU", "default", "default", evidence, float(default["min_watts"]), float(default["max_watts"])
    )


@cache
def coefficients() -> dict[str, Any]:
    """The vendored coefficients table (architectures, default, and ``_source``: origin, commit, license)."""
    text = resources.files("energy_bench.meters").joinpath("data", COEFFICIENTS_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def source_line() -> str:
    """Where the coefficients come from, in one line."""
    source = coefficients()["_source"]
    return f"{source['name']} {source['commit'][:8]} ({source['date']}), {source['license'].split(' ')[0]}"


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def find_architecture(text: str) -> Architecture:
    """The architecture whose name contains ``text`` (letters and digits only, any case: ``milan``, ``zen4``,
    ``cascade-lake``); LookupError saying which exist when none or several do."""
    wanted = _key(text)
    found = [a for a in ARCHITECTURES if wanted and wanted in _key(a.name)]
    exact = [a for a in found if wanted in {_key(part) for part in re.split(r"[()/,]", a.name)}]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0]
    names = ", ".join(a.name for a in (found or ARCHITECTURES))
    raise LookupError(f"{'several' if found else 'no'} architectures match {text!r}: {names}")


def match_architecture(arch: Architecture, evidence: str) -> CpuMatch:
    """The coefficients of an architecture a person chose by name (match ``user``, or ``proxy``)."""
    row = coefficients()["architectures"][arch.coefficients]
    how = "proxy" if arch.proxy else "user"
    return CpuMatch(arch.name, arch.coefficients, how, evidence, float(row["min_watts"]), float(row["max_watts"]))
