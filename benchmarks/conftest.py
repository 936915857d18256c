"""Run the study model by model (each model's training benchmarks, the baseline's first, then its inference ones),
and keep the field benchmarks (``benchmarks/field/``: the gate on real reruns, minutes to hours) out of
``pytest benchmarks/`` unless ``--energy-field`` asks for them.

The study caches one model's pretrained and compressed copies at a time, so this order lets both groups share
them without keeping all nine models in memory. The baseline's training benchmark defines the model's target
accuracy; running it first spares the other compressors an unmeasured fine-tuning of the baseline to find it.
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
        "--energy-scale-runs",
        type=int,
        default=2000,
        help="test_publish_scale: saved runs in the published history (default 2000).",
    )
    group.addoption(
        "--energy-scale-benchmarks",
        type=int,
        default=50,
        help="test_publish_scale: benchmarks per run (default 50: 100,000 records).",
    )
    group.addoption(
        "--energy-field-fail",
        default=None,
        help="field: thresholds of the gate (default: the recommendation for the meter in use, see docs/gate.md).",
    )


def pytest_collection_modifyitems(config, items):
    def params(item):
        callspec = getattr(item, "callspec", None)
        return callspec.params if callspec else {}

    def model_of(item):
        return params(item).get("study_model", "")

    def baseline_training_first(item):
        compressor = params(item).get("study_compressor")
        return not (item.originalname == "test_train" and getattr(compressor, "name", None) == "baseline")

    order = {}
    for item in items:
        order.setdefault(model_of(item), len(order))
    kinds = {}
    for item in items:
        kinds.setdefault((model_of(item), item.originalname), len(kinds))
    # stable: within a model, training before inference as collected, the baseline's training benchmark first
    items.sort(
        key=lambda item: (
            order[model_of(item)],
            kinds[(model_of(item), item.originalname)],
            baseline_training_first(item),
        )
    )

    if not config.getoption("energy_field", False):
        skip = pytest.mark.skip(reason="field benchmark: pass --energy-field to run it (long; an idle machine)")
        for item in items:
            if FIELD in Path(item.path).parents:
                item.add_marker(skip)
