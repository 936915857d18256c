"""Harness settings parsed from options, with usage errors for bad input."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import pytest

from energy_bench.meters import DEFAULT_POWERCAP_ROOT, Meter, meter_names
from energy_bench.meters.cooldown import DEFAULT_COOLDOWN_TIMEOUT_S
from energy_bench.plugin import openmp, options
from energy_bench.runs import grid
from energy_bench.runs.footprint import Footprint

# Upper bounds of the numeric options: beyond them a value is a typo (1e9 idle seconds is 30 years of waiting before
# the first test), not a setting, and would hang or overflow the session instead of measuring.
#: longest idle-power measurement, seconds
MAX_IDLE_SECONDS = 600.0
#: most watts per CPU second the estimate accepts (published per-vCPU figures are 0.5 to 9 W)
MAX_CPU_WATTS = 1000.0
#: longest minimum round, seconds
MAX_MIN_ROUND_SECONDS = 60.0
#: widest cooldown margin, °C (a GPU's whole operating range)
MAX_COOLDOWN_C = 100.0
#: longest cooldown wait before one round, seconds
MAX_COOLDOWN_TIMEOUT_S = 3600.0
#: highest grid intensity accepted, gCO2e/kWh (coal-fired supply is about 1000)
MAX_CARBON_INTENSITY = 5000.0
#: highest energy price per kWh accepted (in any currency: some price a kWh in thousands of their unit)
MAX_PRICE_PER_KWH = 1e6
#: the longest currency text accepted (a code such as EUR, or a symbol)
MAX_CURRENCY_CHARS = 8


@dataclass(frozen=True)
class Settings:
    device: str = "auto"
    meter: str = "auto"
    gpus: tuple[int, ...] | None = None
    idle_seconds: float = 0.0
    #: --energy-cpu-watts; None: the estimate takes the detected CPU's coefficients
    cpu_watts: float | None = None
    powercap_root: str = DEFAULT_POWERCAP_ROOT
    #: --energy-min-round-seconds; None: the meter's own minimum window
    min_round_seconds: float | None = None
    #: --energy-cooldown: °C above the first round's start temperature a GPU may be at a round's start; None: off
    cooldown_c: float | None = None
    cooldown_timeout_s: float = DEFAULT_COOLDOWN_TIMEOUT_S
    #: --energy-omp-wait-policy (None: the default); applied before conftests load, see plugin.openmp
    omp_wait_policy: str | None = None
    #: --energy-carbon-intensity/-source, --energy-price/--energy-currency; empty: no carbon or cost anywhere
    footprint: Footprint = field(default_factory=Footprint)

    def min_round_s(self, meter: Meter) -> float:
        """How long a measured round must last at least: the option, else what the meter needs."""
        return meter.min_round_s if self.min_round_seconds is None else self.min_round_seconds


def _parse_device(value: str) -> str:
    value = value.strip().lower()
    if value in ("auto", "cpu", "cuda"):
        return value
    if value.startswith("cuda:") and value[5:].isdigit():
        return value
    raise pytest.UsageError(f"--energy-device: unknown device {value!r}; expected auto, cpu, cuda or cuda:N")


def _parse_gpus(value: str) -> tuple[int, ...]:
    parts = [p.strip() for p in value.split(",")]
    if not parts or any(not p.isdigit() for p in parts):
        raise pytest.UsageError(f"--energy-gpus: {value!r} is not a comma-separated list of GPU indices, e.g. 0,1")
    return tuple(int(p) for p in parts)


def _parse_float(flag: str, value: str, *, minimum: float, maximum: float, strict: bool = False) -> float:
    """``value`` as a finite number in ``minimum..maximum`` (``strict``: above ``minimum``), else a usage error."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{flag}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise pytest.UsageError(f"{flag}: {value!r} must be a finite number")
    if number < minimum or (strict and number == minimum) or number > maximum:
        low = f"greater than {minimum:g}" if strict else f"at least {minimum:g}"
        raise pytest.UsageError(f"{flag}: {value!r} must be {low} and at most {maximum:g}")
    return number


def _parse_meter(value: str) -> str:
    meter = value.strip().lower()
    names = meter_names()  # the built-ins and the installed energy_bench.meters entry points
    if meter not in names:
        raise pytest.UsageError(f"--energy-meter: unknown meter {meter!r}; expected one of {', '.join(names)}")
    return meter


def _parse_optional_float(config: pytest.Config, name: str, flag: str, **bounds) -> float | None:
    value = options.get(config, name)
    return None if value in (None, "") else _parse_float(flag, value, **bounds)


def from_config(config: pytest.Config) -> Settings:
    device = _parse_device(options.get(config, "energy_device") or "auto")
    meter = _parse_meter(options.get(config, "energy_meter") or "auto")
    gpus_value = options.get(config, "energy_gpus")
    gpus = _parse_gpus(gpus_value) if gpus_value else None
    idle_value = options.get(config, "energy_idle_seconds") or 0
    idle = _parse_float("--energy-idle-seconds", idle_value, minimum=0.0, maximum=MAX_IDLE_SECONDS)
    watts_value = options.get(config, "energy_cpu_watts")
    cpu_watts = (
        None
        if watts_value in (None, "")
        else _parse_float("--energy-cpu-watts", watts_value, minimum=0.0, maximum=MAX_CPU_WATTS, strict=True)
    )
    root_value = options.get(config, "energy_powercap_root")
    root = root_value or DEFAULT_POWERCAP_ROOT
    if root_value and not os.path.isdir(root):
        raise pytest.UsageError(f"--energy-powercap-root: {root} is not a directory")
    min_round_seconds = _parse_optional_float(
        config, "energy_min_round_seconds", "--energy-min-round-seconds", minimum=0.0, maximum=MAX_MIN_ROUND_SECONDS
    )
    cooldown_c = _parse_optional_float(
        config, "energy_cooldown", "--energy-cooldown", minimum=0.0, maximum=MAX_COOLDOWN_C, strict=True
    )
    timeout = _parse_optional_float(
        config, "energy_cooldown_timeout", "--energy-cooldown-timeout", minimum=0.0, maximum=MAX_COOLDOWN_TIMEOUT_S
    )
    omp = openmp.parse_choice(options.get(config, "energy_omp_wait_policy"))
    return Settings(
        device,
        meter,
        gpus,
        idle,
        cpu_watts,
        root,
        min_round_seconds,
        cooldown_c,
        DEFAULT_COOLDOWN_TIMEOUT_S if timeout is None else timeout,
        omp,
        _parse_footprint(config),
    )


def _parse_footprint(config: pytest.Config) -> Footprint:
    """Carbon intensity and price with what they need: a source is optional, a currency is not."""
    intensity_value = options.get(config, "energy_carbon_intensity")
    source = (options.get(config, "energy_carbon_source") or "").strip() or None
    region = _parse_region(options.get(config, "energy_carbon_region"))
    price_value = options.get(config, "energy_price")
    currency = (options.get(config, "energy_currency") or "").strip() or None
    intensity = None
    if intensity_value is not None:
        intensity = _parse_float(
            "--energy-carbon-intensity", intensity_value, minimum=0.0, maximum=MAX_CARBON_INTENSITY
        )
    elif source and region is not None:
        raise pytest.UsageError(
            "--energy-carbon-source goes with --energy-carbon-intensity: --energy-carbon-region brings its own source"
        )
    elif source:
        raise pytest.UsageError("--energy-carbon-source needs --energy-carbon-intensity (gCO2e/kWh)")
    details = None
    if intensity is None and region is not None:  # a number typed by hand wins over the table
        intensity, source, details = region.g_per_kwh, region.source(), region.describe()
    price = None
    if price_value is not None:
        price = _parse_float("--energy-price", price_value, minimum=0.0, maximum=MAX_PRICE_PER_KWH)
        if not currency:
            raise pytest.UsageError("--energy-price needs --energy-currency (e.g. EUR): a price alone is ambiguous")
    elif currency:
        raise pytest.UsageError("--energy-currency needs --energy-price (price per kWh)")
    if currency and (len(currency) > MAX_CURRENCY_CHARS or any(c.isspace() for c in currency)):
        raise pytest.UsageError(f"--energy-currency: {currency!r} is not a currency code or symbol, e.g. EUR")
    return Footprint(intensity, source, price, currency, details)


def _parse_region(value: str | None) -> grid.GridIntensity | None:
    """The table's row for --energy-carbon-region; a usage error naming near matches for a code it lacks."""
    if value is None or not value.strip():
        return None
    try:
        return grid.lookup(value)
    except grid.UnknownRegion as exc:
        raise pytest.UsageError(f"--energy-carbon-region: {exc}") from None
