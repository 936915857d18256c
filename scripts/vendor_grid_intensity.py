"""Regenerate energy_bench/runs/data/grid_intensity.json: grid carbon intensity by country and by cloud region.

* countries: CodeCarbon's ``data/private_infra/global_energy_mix.json`` (the installed ``codecarbon`` package; its
  ``carbon_intensity`` per ISO 3166-1 alpha-3 code, with the year, from Our World in Data's energy dataset, whose
  electricity figures come from Ember and the Energy Institute); alpha-2 codes added from ISO 3166-1 (through the
  ``pycountry`` package, only here: energy-bench does not need it);
* GCP regions: CodeCarbon's ``data/cloud/impact.csv`` (Google's published grid intensity per region);
* AWS and Azure regions: Cloud Carbon Footprint's ``AWS_EMISSIONS_FACTORS_METRIC_TON_PER_KWH`` and
  ``AZURE_EMISSIONS_FACTORS_METRIC_TON_PER_KWH`` (metric tons per kWh, converted to grams), at one commit.

    python scripts/vendor_grid_intensity.py /path/to/cloud-carbon-footprint [--commit HEAD]

Run it in an environment with ``codecarbon`` and ``pycountry`` installed; the repository may be bare.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import re
import subprocess
from importlib import resources
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "energy_bench" / "runs" / "data" / "grid_intensity.json"
CCF_FILES = {
    "aws": ("packages/aws/src/domain/AwsFootprintEstimationConstants.ts", "packages/aws/src/lib/AWSRegions.ts"),
    "azure": (
        "packages/azure/src/domain/AzureFootprintEstimationConstants.ts",
        "packages/azure/src/lib/AzureRegions.ts",
    ),
}
NERC_FILE = "packages/core/src/FootprintEstimationConstants.ts"
OWID = (
    "Our World in Data, energy dataset (electricity carbon intensity; based on Ember and the Energy Institute "
    "Statistical Review of World Energy)"
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def countries() -> dict[str, dict]:
    import pycountry

    data = resources.files("codecarbon").joinpath("data/private_infra/global_energy_mix.json").read_text()
    rows = {}
    for alpha3, row in sorted(json.loads(data).items()):
        if row.get("carbon_intensity") is None:
            continue
        country = pycountry.countries.get(alpha_3=alpha3)
        rows[alpha3] = {
            "name": row["country_name"],
            "alpha2": country.alpha_2 if country else None,
            "g_per_kwh": round(float(row["carbon_intensity"]), 3),
            "year": int(row["year"]),
        }
    return rows


def gcp_regions() -> dict[str, dict]:
    text = resources.files("codecarbon").joinpath("data/cloud/impact.csv").read_text(encoding="utf-8-sig")
    return {
        row["region"]: {"g_per_kwh": float(row["impact"]), "country": row["countryIsoCode"], "origin": row["source"]}
        for row in csv.DictReader(text.splitlines())
        if row["provider"] == "gcp"
    }


def ccf_regions(repo: Path, commit: str, provider: str) -> dict[str, dict]:
    constants, regions_file = (git(repo, "show", f"{commit}:{path}") for path in CCF_FILES[provider])
    nerc = {k: float(v) for k, v in re.findall(r"([A-Z]+): ([0-9.]+)", git(repo, "show", f"{commit}:{NERC_FILE}"))}
    if provider == "aws":
        names = dict(re.findall(r"([A-Z0-9_]+) = '([a-z0-9-]+)'", regions_file))
        pattern = r"\[AWS_REGIONS\.([A-Z0-9_]+)\]:\s*([^,]+),"
    else:
        # the region as the Azure CLI and ARM name it: the name in lower case (EastUS: eastus)
        names = {m: n.lower() for m, n in re.findall(r"([A-Z0-9_]+): \{\s*name: '([A-Za-z0-9]+)'", regions_file)}
        pattern = r"\[AZURE_REGIONS\.([A-Z0-9_]+)\.name\]:\s*([^,]+),"
    start = constants.index(f"{provider.upper()}_EMISSIONS_FACTORS_METRIC_TON_PER_KWH")
    rows = {}
    for member, value in re.findall(pattern, constants[start:]):
        value = value.strip()
        if member == "UNKNOWN":
            continue
        if value.startswith("US_NERC_REGIONS_EMISSIONS_FACTORS."):
            region = value.rsplit(".", 1)[1]
            tons, origin = nerc[region], f"US EPA eGRID, NERC region {region}"
        else:
            tons, origin = float(value), None
        rows[names[member]] = {"g_per_kwh": round(tons * 1e6, 3)} | ({"origin": origin} if origin else {})
    return dict(sorted(rows.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", type=Path, help="a Cloud Carbon Footprint git repository (bare is fine)")
    parser.add_argument("--commit", default="HEAD")
    args = parser.parse_args()
    commit = git(args.repo, "rev-parse", args.commit).strip()
    date = git(args.repo, "show", "-s", "--format=%cs", commit).strip()
    codecarbon = f"CodeCarbon {importlib.metadata.version('codecarbon')}"
    ccf = f"Cloud Carbon Footprint {commit[:8]} ({date})"
    ccf_cites = "its methodology cites US EPA eGRID, the EEA and carbonfootprint.com's 2021 electricity factors"
    data = {
        "_source": {
            "unit": "gCO2e/kWh",
            "regenerate": "python scripts/vendor_grid_intensity.py <cloud-carbon-footprint repository>",
            "ccf_commit": commit,
        },
        "countries": {
            "source": f"Our World in Data (Ember, Energy Institute) via {codecarbon}",
            "about": f"{OWID}; CodeCarbon's packaging is MIT (copy: LICENSE-codecarbon.txt)",
            "license": "CC BY 4.0",
            "codes": "ISO 3166-1 alpha-3 (the table's keys) and alpha-2",
            "rows": countries(),
        },
        "clouds": {
            "gcp": {
                "source": f"Google Cloud's region figures via {codecarbon}",
                "about": "Google Cloud's published grid carbon intensity per region, as CodeCarbon ships it",
                "license": "MIT (CodeCarbon; copy: LICENSE-codecarbon.txt)",
                "year": None,
                "period": "year not stated",
                "rows": gcp_regions(),
            },
            "aws": {
                "source": f"{ccf} AWS grid factors",
                "about": f"{ccf} AWS_EMISSIONS_FACTORS_METRIC_TON_PER_KWH ({ccf_cites})",
                "license": "Apache-2.0 (copy: LICENSE-cloud-carbon-footprint.txt)",
                "year": None,
                "period": "year not stated (figures of about 2021)",
                "rows": ccf_regions(args.repo, commit, "aws"),
            },
            "azure": {
                "source": f"{ccf} Azure grid factors",
                "about": f"{ccf} Azure_EMISSIONS_FACTORS_METRIC_TON_PER_KWH ({ccf_cites})",
                "license": "Apache-2.0 (copy: LICENSE-cloud-carbon-footprint.txt)",
                "year": None,
                "period": "year not stated (figures of about 2021)",
                "rows": ccf_regions(args.repo, commit, "azure"),
            },
        },
    }
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    license_file = next(f for f in importlib.metadata.distribution("codecarbon").files if f.name == "LICENSE")
    (OUT.parent / "LICENSE-codecarbon.txt").write_text(license_file.read_text(), encoding="utf-8")
    (OUT.parent / "LICENSE-cloud-carbon-footprint.txt").write_text(git(args.repo, "show", f"{commit}:LICENSE"))
    sizes = {k: len(v["rows"]) for k, v in data["clouds"].items()}
    print(f"wrote {OUT}: {len(data['countries']['rows'])} countries, cloud regions {sizes}")


if __name__ == "__main__":
    main()
