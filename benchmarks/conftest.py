"""Run the study model by model: each model's training benchmarks, then its inference ones.

The study caches one model's pretrained and compressed copies at a time, so this order lets both groups share
them without keeping all nine models in memory.
"""

from __future__ import annotations


def pytest_collection_modifyitems(config, items):
    def model_of(item):
        callspec = getattr(item, "callspec", None)
        return callspec.params.get("study_model", "") if callspec else ""

    order = {}
    for item in items:
        order.setdefault(model_of(item), len(order))
    items.sort(key=lambda item: order[model_of(item)])  # stable: train before inference within a model
