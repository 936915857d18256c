"""Hooks that plugins of energy-bench may implement (registered by :mod:`energy_bench.plugin`)."""

from __future__ import annotations

import pytest


@pytest.hookspec(firstresult=True)
def pytest_energy_shard_key(item: pytest.Item) -> str | None:
    """The shard key of ``item`` under ``--energy-shard=K/N``: items with the same key run in the same shard.

    Return a string, or None to leave the item to other plugins (the first string wins). Without an answer the key
    is the test's module and function name, so a function's parametrizations stay together. The study plugin keys
    its benchmarks by model, so that a shard keeps a model's cached weights and compressed copies.
    """
