"""Run the study model by model (each model's training benchmarks, then its inference ones), and keep the field
benchmarks (``benchmarks/field/``: the gate on real reruns, minutes to hours) out of ``pytest benchmarks/`` unless
``--energy-field`` asks for them.

The study caches one model's pretrained and compressed copies at a time, so this order lets both groups share
them without keeping all nine models in memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

FIELD = Path(__file__).parent / "field"


def pytest_addoption(parser):
    group = parser.getgroup("energy-bench-field", "energy-bench field benchmarks (benchmarks/field/)")
    group.addoption(
        "--energy-field",
        action="store_true",
        default=False,
        help="run the field benchmarks: the gate on real reruns of this machine (long; keep the machine idle).",
    )
    group.addoption(
        "--energy-field-reruns",
        type=int,
        default=20,
        help="field: unchanged and heavier reruns each (default 20; fewer for a quick check).",
    )
    group.addoption(
        "--energy-field-baselines",
        type=int,
        default=5,
        help="field: saved baseline runs pooled with last:N (default 5, as docs/gate.md recommends).",
    )
    group.addoption(
        "--energy-field-fail",
        default=None,
        help="field: thresholds of the gate (default: the recommendation for the meter in use, see docs/gate.md).",
    )


def pytest_collection_modifyitems(config, items):
    def model_of(item):
        callspec = getattr(item, "callspec", None)
        return callspec.params.get("study_model", "") if callspec else ""

    order = {}
    for item in items:
        order.setdefault(model_of(item), len(order))
    items.sort(key=lambda item: order[model_of(item)])  # stable: train before inference within a model

    if not config.getoption("energy_field", False):
        skip = pytest.mark.skip(reason="field benchmark: pass --energy-field to run it (long; an idle machine)")
        for item in items:
            if FIELD in Path(item.path).parents:
                item.add_marker(skip)
