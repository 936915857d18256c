"""The gate thresholds the documentation recommends, per meter: one table that the docs page and ``doctor`` share.

``docs/gate.md`` ("Recommended thresholds per meter") renders :data:`RECOMMENDED` through ``docs/hooks.py``, and
``energy-bench doctor`` prints the row of the meter ``auto`` would pick, so the two cannot disagree. A row's
``thresholds`` is None where this project has not measured the meter: the rule of thumb then applies.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recommendation:
    """What to gate with for the meters named in ``meters`` (record names: ``estimate``, ``nvml-counter``, ...)."""

    meters: tuple[str, ...]
    label: str
    #: ``--energy-compare-fail`` value, or None: not measured by this project yet
    thresholds: str | None
    baseline_runs: int
    ab_repeat: str
    basis: str


RULE_OF_THUMB = (
    "with k baseline runs, a threshold of about 2.5 * c * sqrt(1 + 1/k) (2.75 c for k = 5), where c is the "
    "between-run coefficient of variation of a benchmark's mean from five unchanged runs"
)

RECOMMENDED: tuple[Recommendation, ...] = (
    Recommendation(
        meters=("estimate",),
        label="CPU time x watts per core",
        thresholds="joules:10%,accuracy:1pt",
        baseline_runs=5,
        ab_repeat="default",
        basis="measured: the field benchmarks, on a 2-core VM",
    ),
    Recommendation(
        meters=("nvml-counter", "nvml-power", "rapl", "zeus"),
        label="hardware counters",
        thresholds=None,
        baseline_runs=5,
        ab_repeat="default",
        basis="the rule of thumb, with c from five unchanged runs on your machine",
    ),
)


def recommendation_for(meter: str) -> Recommendation | None:
    """The row for a record's meter name; a combined meter (``nvml-counter+rapl``) takes its first part's row."""
    for part in meter.split("+"):
        for row in RECOMMENDED:
            if part in row.meters:
                return row
    return None


def format_gate_options(row: Recommendation) -> str:
    """The pytest options that apply ``row`` with a pooled baseline."""
    fail = row.thresholds or "joules:X%,accuracy:1pt"
    return f"--energy-compare=last:{row.baseline_runs} --energy-compare-fail={fail}"
