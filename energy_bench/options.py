"""Every energy-bench command-line option, with its ini-file twin.

Registered in one place so that ``pytest --help`` shows them together under
``energy-bench``. Validation lives with the code that uses each option:
harness options in :mod:`energy_bench.settings`, study options in
:mod:`energy_bench.study.fixtures`, comparison options in :mod:`energy_bench.gate`.
"""

from __future__ import annotations

from typing import Any

import pytest

# (flag, ini name or None, help, extra argparse keywords)
OPTIONS: list[tuple[str, str | None, str, dict[str, Any]]] = [
    ("--energy-device", "energy_device", "torch device for the study: auto|cpu|cuda|cuda:N (default auto).", {}),
    ("--energy-meter", "energy_meter",
     "energy source: auto|nvml|rapl|estimate. auto = NVML if it sees a GPU (+RAPL when readable), "
     "else RAPL, else the CPU-time estimate (default auto).", {}),
    ("--energy-gpus", "energy_gpus", "NVML GPU indices to measure, e.g. 0,1 (default: all NVML sees).", {}),
    ("--energy-idle-seconds", "energy_idle_seconds",
     "measure idle power for S seconds once per session; the report then shows net joules "
     "(gross minus idle watts x time) beside gross (default 0: off).", {}),
    ("--energy-cpu-watts", "energy_cpu_watts",
     "watts per busy core for the CPU-time estimate (default 10, see README).", {}),
    ("--energy-powercap-root", "energy_powercap_root",
     "root of the RAPL powercap tree (default /sys/class/powercap).", {}),
    ("--energy-profile", "energy_profile", "study profile: smoke (CPU-sized, default) or paper (GPU).", {}),
    ("--energy-models", "energy_models", "comma-separated study models (default: all nine).", {}),
    ("--energy-compressors", "energy_compressors",
     "comma-separated compressor specs, e.g. baseline,stego,prune:amount=0.5 (default: all five).", {}),
    ("--energy-data", "energy_data",
     "study data: digits (default), an ImageFolder path, or NAME:ROOT for a torchvision data set.", {}),
    ("--energy-weights", "energy_weights",
     "study weights: pretrained|self|random|PATH (default: the profile's).", {}),
    ("--energy-epochs", "energy_epochs", "training rounds (epochs) per benchmark, overriding the profile.", {}),
    ("--energy-batch-size", "energy_batch_size", "training batch size, overriding the profile.", {}),
    ("--energy-compare", None,
     "compare with a saved run: NUM or PATH; no value = latest saved run in --benchmark-storage.",
     {"nargs": "?", "const": "latest"}),
    ("--energy-compare-fail", "energy_compare_fail",
     "fail on regression, e.g. joules:5%%,accuracy:1pt,time:10%% (threshold AND significance).", {}),
    ("--energy-compare-force", None,
     "compare even measured with estimated energy or different meters/devices.", {"action": "store_true"}),
]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("energy-bench", "energy-bench: joules and accuracy for pytest-benchmark")
    for flag, ini, help_text, extra in OPTIONS:
        kwargs = {"default": None, **extra}
        if kwargs.get("action") == "store_true":
            kwargs["default"] = False
        group.addoption(flag, dest=flag[2:].replace("-", "_"), help=help_text, **kwargs)
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
