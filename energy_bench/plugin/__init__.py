"""The pytest integration (entry point ``pytest11: energy_bench``): options, fixtures, the energy table, the gate.

This module only registers options, hooks (:mod:`energy_bench.plugin.hookspecs`) and builds the session; the work
lives in the modules it names: among them :mod:`energy_bench.plugin.shard` (``--energy-shard``) and
:mod:`energy_bench.distributed.plugin` (torchrun). The study is not part of it: it registers only where asked
(``-p energy_bench.study``, or a conftest's ``pytest_plugins``).
"""

from __future__ import annotations

import pytest

from energy_bench.plugin import hookspecs, openmp, options, settings
from energy_bench.plugin.session import SESSION_KEY, EnergySession

# Order matters: pytest calls plain hooks of later plugins first, and the torchrun plugin's configure must build the
# session meter before the fixtures plugin's configure would build a one-process one.
pytest_plugins = [
    "energy_bench.plugin.fixtures",
    "energy_bench.plugin.gate",
    "energy_bench.plugin.journal",
    "energy_bench.plugin.history",
    "energy_bench.plugin.shard",
    "energy_bench.distributed.plugin",
]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser, options.OPTIONS)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Before the first conftest is imported (and with it, often, torch and its OpenMP runtime).
    openmp.apply_for(early_config)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.stash[SESSION_KEY] = EnergySession(settings=settings.from_config(config))
