"""Where a benchmark's series changed: segments of the commit-ordered run means, each boundary kept only when the
means differ by at least an effect size and a significance test passes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    """One change point of a :class:`~energy_bench.history.series.Series`.

    ``index`` is the first point of the new segment: the change happened between commit ``points[index - 1]`` (the
    last before) and ``points[index]`` (the first after), the commit range a person reads.
    """

    index: int
    before_commit: str | None
    after_commit: str | None
    direction: str  # "regression" | "improvement"
    mean_before: float
    mean_after: float
    change: float  # relative: mean_after / mean_before - 1
    low: float  # the change's confidence interval, relative, like ``change``
    high: float
    p_value: float
    accepted: bool = False  # marked as accepted by a person: shown, not reported as open
