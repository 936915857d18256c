"""Command-line options with their ini-file twins, and how to read them.

Each plugin registers its own list with :func:`add_options` (the harness here, the study in
:mod:`energy_bench.study.plugin`), so ``pytest --help`` shows only what is loaded. Validation lives with the code
that uses each option: harness options in :mod:`energy_bench.plugin.settings`, comparison options in
:mod:`energy_bench.plugin.gate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from energy_bench.meters.cooldown import DEFAULT_COOLDOWN_TIMEOUT_S
from energy_bench.meters.select import meter_names

#: pytest --help group of the harness's options
GROUP = ("energy-bench", "energy-bench: joules and accuracy for pytest-benchmark")

# (flag, ini name or None, help (or a function making it when options are registered), extra argparse keywords)
Option = tuple[str, str | None, str | Callable[[], str], dict[str, Any]]


def meter_help() -> str:
    """--energy-meter's help: every meter name, plugged-in meters included (found when options are registered)."""
    return (
        f"energy source: {'|'.join(meter_names())}. auto = NVML if it sees a GPU (+RAPL when readable), "
        "else Zeus if installed and it sees a GPU or SoC, else RAPL, else plugged-in meters that opt in, "
        "else the CPU-time estimate (default auto)."
    )


OPTIONS: list[Option] = [
    (
        "--energy-device",
        "energy_device",
        "torch device of the energy_device fixture: auto|cpu|cuda|cuda:N (default auto).",
        {},
    ),
    ("--energy-meter", "energy_meter", meter_help, {}),
    (
        "--energy-gpus",
        "energy_gpus",
        "CUDA indices of the GPUs to measure, e.g. 0,1: positions in CUDA_VISIBLE_DEVICES when it is set "
        "(default: every GPU CUDA shows).",
        {},
    ),
    (
        "--energy-idle-seconds",
        "energy_idle_seconds",
        "measure idle power for S seconds once per session; the report then shows net joules "
        "(gross minus idle watts x time) beside gross (default 0: off).",
        {},
    ),
    (
        "--energy-cpu-watts",
        "energy_cpu_watts",
        "watts per CPU second (one busy vCPU) for the CPU-time estimate (default: the detected CPU's published "
        "per-vCPU coefficients).",
        {},
    ),
    (
        "--energy-powercap-root",
        "energy_powercap_root",
        "root of the RAPL powercap tree (default /sys/class/powercap).",
        {},
    ),
    (
        "--energy-min-round-seconds",
        "energy_min_round_seconds",
        "shortest measured round: energy() calls the code as often as it takes (default: the meter's minimum window, "
        "1 s for NVML, 0.1 s for RAPL and the estimate; 0 = one call per round).",
        {},
    ),
    (
        "--energy-cooldown",
        "energy_cooldown",
        "before each measured round after the first, wait until every measured GPU is back within MARGIN_C degrees "
        "Celsius of its temperature when the first round started (default: off).",
        {"metavar": "MARGIN_C"},
    ),
    (
        "--energy-cooldown-timeout",
        "energy_cooldown_timeout",
        f"longest --energy-cooldown wait before a round, in seconds (default {DEFAULT_COOLDOWN_TIMEOUT_S:g}).",
        {"metavar": "SECONDS"},
    ),
    (
        "--energy-omp-wait-policy",
        "energy_omp_wait_policy",
        "OMP_WAIT_POLICY set before conftests load torch: passive|active|keep (default passive, unless the "
        "environment sets OMP_WAIT_POLICY; keep = leave the environment alone).",
        {},
    ),
    (
        "--energy-carbon-intensity",
        "energy_carbon_intensity",
        "grid carbon intensity in gCO2e/kWh: records, table and report add grams CO2e beside joules (default: none).",
        {},
    ),
    (
        "--energy-carbon-region",
        "energy_carbon_region",
        "grid carbon intensity looked up offline in energy-bench's table: an ISO country code (FR, FRA) or a cloud "
        "region (aws:us-east-1, gcp:europe-west1, azure:westeurope); --energy-carbon-intensity wins over it.",
        {},
    ),
    (
        "--energy-carbon-source",
        "energy_carbon_source",
        "where the carbon intensity comes from (free text, recorded with it), e.g. 'grid operator, 2025 mean'.",
        {},
    ),
    (
        "--energy-price",
        "energy_price",
        "energy price per kWh: records, table and report add the cost beside joules (needs --energy-currency).",
        {},
    ),
    ("--energy-currency", "energy_currency", "currency of --energy-price, e.g. EUR.", {}),
    (
        "--energy-compare",
        None,
        "compare with saved runs: NUM or PATH (one run), last:N (the N newest runs of this machine, pooled: "
        "the decision then sees between-run noise); no value = latest saved run in --benchmark-storage.",
        {"nargs": "?", "const": "latest"},
    ),
    (
        "--energy-compare-branch",
        "energy_compare_branch",
        "with --energy-compare=history:...: take the baseline runs from this branch (default: this session's).",
        {},
    ),
    (
        "--energy-history",
        "energy_history",
        "where every saved run is also kept: a SQLite file or sqlite:///PATH, postgresql://user@host/db, or none "
        "(default: $ENERGY_BENCH_HISTORY, else history.sqlite in --benchmark-storage).",
        {},
    ),
    (
        "--energy-runner-label",
        "energy_runner_label",
        "a name for this machine saved with each run (default: $ENERGY_BENCH_RUNNER_LABEL); history:... baselines "
        "then match runs by this label instead of the machine's fingerprint (fleets of alike hosts).",
        {},
    ),
    (
        "--energy-compare-fail",
        "energy_compare_fail",
        "fail on regression, e.g. joules:5%%,accuracy:1pt,time:10%% (threshold AND significance).",
        {},
    ),
    (
        "--energy-compare-force",
        None,
        "compare even measured with estimated energy or different meters/devices.",
        {"action": "store_true"},
    ),
]


def add_options(parser: pytest.Parser, options: list[Option], group: tuple[str, str] = GROUP) -> None:
    """Register ``options`` (flag, ini twin, help, argparse keywords) in the ``group`` of ``pytest --help``."""
    section = parser.getgroup(*group)
    for flag, ini, help_spec, extra in options:
        help_text = help_spec() if callable(help_spec) else help_spec
        kwargs = {"default": None, **extra}
        if kwargs.get("action") == "store_true":
            kwargs["default"] = False
        section.addoption(flag, dest=flag[2:].replace("-", "_"), help=help_text, **kwargs)
        if ini:
            parser.addini(ini, help=help_text, default=None)


def get(config: pytest.Config, name: str) -> Any:
    """Value of option ``name`` (e.g. "energy_meter"): command line first, then the ini file, else None."""
    value = config.getoption(name)
    if value is None or value is False:
        try:
            ini_value = config.getini(name)
        except ValueError:  # no ini twin
            return value
        if ini_value not in (None, "", []):
            return ini_value
    return value
