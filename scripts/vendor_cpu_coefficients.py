"""Regenerate energy_bench/meters/data/cpu_coefficients.json from a Cloud Carbon Footprint git repository.

Reads the per-vCPU minimum and maximum watts per CPU microarchitecture (``MIN_WATTS_BY_COMPUTE_PROCESSOR`` and
``MAX_WATTS_BY_COMPUTE_PROCESSOR``) and the averages used for an unknown CPU (AWS's ``MIN_WATTS_AVG`` /
``MAX_WATTS_AVG``) from the AWS, GCP and Azure constants, at one commit, and writes them with their origin::

    python scripts/vendor_cpu_coefficients.py /path/to/cloud-carbon-footprint [--commit HEAD]

The repository may be bare (files are read with ``git show``). GPU rows are left out: the estimate counts CPU time.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "energy_bench" / "meters" / "data" / "cpu_coefficients.json"
PROCESSOR_TYPES = "packages/core/src/compute/ComputeProcessorTypes.ts"
CONSTANTS = {
    "aws": "packages/aws/src/domain/AwsFootprintEstimationConstants.ts",
    "gcp": "packages/gcp/src/domain/GcpFootprintEstimationConstants.ts",
    "azure": "packages/azure/src/domain/AzureFootprintEstimationConstants.ts",
}
#: the enum members that are CPUs (the rest of COMPUTE_PROCESSOR_TYPES are GPUs and accelerators)
CPU_MEMBERS = (
    "CASCADE_LAKE", "SKYLAKE", "HASWELL", "BROADWELL", "COFFEE_LAKE", "SANDY_BRIDGE", "IVY_BRIDGE", "ICELAKE",
    "AMD_EPYC_1ST_GEN", "AMD_EPYC_2ND_GEN", "AMD_EPYC_3RD_GEN", "AWS_GRAVITON", "AWS_GRAVITON_2",
)  # fmt: skip


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def block(text: str, name: str) -> str:
    """The ``{...}`` that follows ``name:`` in a TypeScript object literal."""
    start = text.index(f"{name}:")
    return text[text.index("{", start) : text.index("}", start)]


def watts_by_member(text: str, name: str) -> dict[str, float]:
    found = re.findall(r"\[COMPUTE_PROCESSOR_TYPES\.([A-Z0-9_]+)\]:\s*([0-9.]+)", block(text, name))
    return {member: float(value) for member, value in found if member in CPU_MEMBERS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", type=Path, help="a Cloud Carbon Footprint git repository (bare is fine)")
    parser.add_argument("--commit", default="HEAD")
    args = parser.parse_args()
    commit = git(args.repo, "rev-parse", args.commit).strip()
    date = git(args.repo, "show", "-s", "--format=%cs", commit).strip()
    names = dict(re.findall(r"([A-Z0-9_]+) = '([^']+)'", git(args.repo, "show", f"{commit}:{PROCESSOR_TYPES}")))
    architectures: dict[str, dict] = {}
    defaults = {}
    for provider, path in CONSTANTS.items():
        text = git(args.repo, "show", f"{commit}:{path}")
        low, high = (watts_by_member(text, f"{k}_WATTS_BY_COMPUTE_PROCESSOR") for k in ("MIN", "MAX"))
        for member in sorted(set(low) & set(high)):
            row = architectures.setdefault(names[member], {"min_watts": low[member], "max_watts": high[member]})
            if (row["min_watts"], row["max_watts"]) != (low[member], high[member]):
                raise SystemExit(f"{names[member]}: {provider} disagrees with an earlier provider")
            row.setdefault("providers", []).append(provider)
        averages = re.findall(r"(MIN|MAX)_WATTS_(AVG|MEDIAN):\s*([0-9.]+)", text)
        defaults[provider] = {f"{k.lower()}_watts": float(v) for k, _, v in averages}
    data = {
        "_source": {
            "name": "Cloud Carbon Footprint",
            "repository": "https://github.com/cloud-carbon-footprint/cloud-carbon-footprint",
            "commit": commit,
            "date": date,
            "license": "Apache-2.0 (copy: LICENSE-cloud-carbon-footprint.txt beside this file)",
            "files": [PROCESSOR_TYPES, *CONSTANTS.values()],
            "what": "watts per vCPU at 0% (min) and 100% (max) utilisation, per CPU microarchitecture, derived by "
            "Cloud Carbon Footprint from SPECpower_ssj2008 results",
            "regenerate": "python scripts/vendor_cpu_coefficients.py <cloud-carbon-footprint repository>",
        },
        "architectures": dict(sorted(architectures.items())),
        "default": defaults["aws"]
        | {"basis": "AWS MIN_WATTS_AVG / MAX_WATTS_AVG: the average over the microarchitectures of AWS's fleet"},
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    license_copy = OUT.parent / "LICENSE-cloud-carbon-footprint.txt"
    license_copy.write_text(git(args.repo, "show", f"{commit}:LICENSE"), encoding="utf-8")
    print(f"wrote {OUT} ({len(architectures)} architectures) and {license_copy.name}")


if __name__ == "__main__":
    main()
