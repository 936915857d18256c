"""``energy-bench ab``'s helper plugin for the pytest processes it starts in each tree.

``energy-bench ab`` copies this file into a temporary folder as ``_energy_bench_ab.py`` and loads it with
``-p _energy_bench_ab``, so it works whatever version of energy-bench (if any) a tree carries: it imports nothing
from energy_bench. Two jobs, each switched on by an environment variable:

* ``ENERGY_BENCH_AB_COLLECT=FILE``: write the node ids of the collected benchmarks (tests that use pytest-benchmark's
  ``benchmark`` fixture, directly or through energy-bench's ``energy``) to FILE as a JSON list;
* ``ENERGY_BENCH_AB_SELECT=NODEID``: run only that test; every other collected test is deselected. Last, after
  every other plugin has ordered or filtered the items, so the user's pytest arguments select as usual.
"""

from __future__ import annotations

import json
import os

import pytest

COLLECT = "ENERGY_BENCH_AB_COLLECT"
SELECT = "ENERGY_BENCH_AB_SELECT"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    wanted = os.environ.get(SELECT)
    if wanted is None:
        return
    dropped = [item for item in items if item.nodeid != wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = [item for item in items if item.nodeid == wanted]


def pytest_collection_finish(session):
    path = os.environ.get(COLLECT)
    if not path:
        return
    benchmarks = [item.nodeid for item in session.items if "benchmark" in getattr(item, "fixturenames", ())]
    with open(path, "w", encoding="utf-8") as out:
        json.dump(benchmarks, out)
