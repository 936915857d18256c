"""pytest entry point: options and session setup only; the work lives in the modules it names."""

from __future__ import annotations

import pytest

from energy_bench import options, settings
from energy_bench.session import SESSION_KEY, EnergySession

# Sub-plugins: fixtures and hooks of the harness, the comparison gate and the study's fixtures.
# The study's module imports torch/torchvision lazily, so users of `energy` alone don't pay for it.
pytest_plugins = ["energy_bench.fixtures", "energy_bench.gate", "energy_bench.study.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.stash[SESSION_KEY] = EnergySession(settings=settings.from_config(config))
