"""Where a benchmark's series changed: segments of the commit-ordered run means, each boundary kept only when the
means differ by at least an effect size and a significance test passes.

The method, in four steps (``docs/changes.md`` explains it for users):

1. **Search.** ruptures' penalized kernel search with the linear kernel (``KernelCPD(kernel="linear")``) finds the
   segmentation of the run means that minimizes the squared residuals plus a penalty per boundary: with the linear
   kernel its cost is exactly the least-squares (``l2``) cost of ``Pelt(model="l2")``, and the search is exact for
   that criterion (Binseg is greedy), but it runs in ruptures' C code, where ``Pelt`` evaluates the cost in Python
   (minutes for a series of 1,000 runs). A mean shift is what a code change does to a benchmark; the rbf kernel
   would also react to a change of spread and needs a bandwidth. The penalty is ``3 * sigma**2 * ln(n)`` with
   ``sigma`` the series' own noise, estimated robustly from the differences of consecutive runs (a step moves one
   difference only), so the search behaves the same on a noisy meter as on a quiet one. Boundaries fall only
   between commits.
2. **Test.** Each boundary is judged on the run means of its two adjacent segments (at least two runs each): the
   relative change of the means must reach ``min_change``, Welch's two-sample t test
   (``scipy.stats.ttest_ind(equal_var=False)``) must give ``p <= alpha``, and a step must fit the two segments
   better than a straight line does (otherwise it is a slice of a drift, not a step). Run means, not rounds: the
   rounds of one session share its state (clock, cache, placement), so sessions differ by more than rounds do, and
   a test on rounds would take that session-to-session noise for a change. Welch's test, not the pooled-variance
   one: each segment keeps its own spread, so one outlying session beside a normal one makes a noisy segment, not a
   level (a variance pooled with a long quiet history would call it one); the price is that a change is confirmed a
   few runs after it rather than at the second.
3. **Prune.** The weakest failing boundary (largest p-value) is removed, its segments merged, and the rest judged
   again, until every boundary left passes. A drift cut into slices by the search thus ends as one segment.
4. **Place.** Each boundary left is moved to the commit between its neighbouring boundaries where the two sides
   fit their own medians best (the least sum of absolute deviations), and the boundaries are judged and pruned once
   more. The search's squared residuals let one outlying session (a busy neighbour on a shared runner, 50 % slow)
   pull a boundary a commit or two off the step; absolute deviations weigh it linearly. Resampling the field
   check's recorded session noise offline, this placed a +10 % step at its commit more often with three or more
   runs per commit, as often on quiet series, and reported no more changes on unchanged ones; a field run has not
   confirmed the gain yet (``docs/changes.md``).

The change's interval is Fieller's for the ratio of the two means (after / before), at ``confidence``, with each
segment's own variance and Welch's degrees of freedom; unbounded when the mean before is not clearly away from 0.
"""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from energy_bench.history.series import Series
from energy_bench.runs.compare import METRICS

#: the fewest runs on each side of a change: one run is not a level, it may be one noisy session
MIN_SEGMENT = 2
#: penalty per boundary of the search, in units of sigma**2 * ln(n) (between BIC's 2 and stricter criteria)
PENALTY = 3.0
#: how many commits either way the placement step may move a boundary: the search is off by a few at most, and a
#: bounded window keeps the step linear in the series' length
PLACE_COMMITS = 8
#: defaults of :func:`detect`
MIN_CHANGE = 0.05
ALPHA = 0.001
CONFIDENCE = 0.95
#: sigma of a normal sample from the median absolute difference of consecutive values: MAD / (0.6745 * sqrt 2)
_MAD_TO_SIGMA = 1.0 / (0.6744897501960817 * math.sqrt(2.0))


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
    confidence: float = CONFIDENCE  # of the interval low..high
    runs_before: int = 0  # runs in the segment before the change, and after it: what the test compared
    runs_after: int = 0


@dataclass(frozen=True)
class Judgement:
    """A candidate boundary at ``index`` between the segments ``[start, index)`` and ``[index, end)``."""

    index: int
    start: int
    end: int
    mean_before: float
    mean_after: float
    change: float
    low: float
    high: float
    p_value: float
    steplike: bool  # a step fits the two segments better than a line

    def passes(self, min_change: float, alpha: float) -> bool:
        return self.steplike and abs(self.change) >= min_change and self.p_value <= alpha


def detect(
    series: Series,
    *,
    min_change: float = MIN_CHANGE,
    alpha: float = ALPHA,
    accepted: Iterable = (),
    confidence: float = CONFIDENCE,
) -> list[Change]:
    """The change points of ``series``, oldest first, each marked ``accepted`` when a mark in ``accepted`` names it.

    ``min_change``: the smallest relative change of the mean reported (0.05: 5 %); ``alpha``: the significance level
    of the t test; ``accepted``: marks with a ``matches(series, change)`` method
    (:class:`energy_bench.history.accepted.Accepted`). A series too short to hold two segments of
    :data:`MIN_SEGMENT` runs has no change points.
    """
    if min_change < 0 or not 0 < alpha < 1 or not 0 < confidence < 1:
        raise ValueError("min_change must be >= 0, alpha and confidence between 0 and 1")
    values = np.array([point.value for point in series.points], dtype=float)
    if len(values) < 2 * MIN_SEGMENT or not np.all(np.isfinite(values)):
        return []
    allowed = commit_boundaries(series)
    bounds = sorted({snap(b, allowed) for b in search(values)} - {None})
    kept = prune(values, bounds, min_change, alpha, confidence)
    if kept:
        kept = prune(values, place(values, [j.index for j in kept], allowed), min_change, alpha, confidence)
    marks = list(accepted)
    higher_is_worse = METRICS[series.metric].higher_is_worse if series.metric in METRICS else True
    changes = []
    for judged in kept:
        change = Change(
            index=judged.index,
            before_commit=series.points[judged.index - 1].commit,
            after_commit=series.points[judged.index].commit,
            direction="regression" if (judged.mean_after > judged.mean_before) == higher_is_worse else "improvement",
            mean_before=judged.mean_before,
            mean_after=judged.mean_after,
            change=judged.change,
            low=judged.low,
            high=judged.high,
            p_value=judged.p_value,
            confidence=confidence,
            runs_before=judged.index - judged.start,
            runs_after=judged.end - judged.index,
        )
        if any(mark.matches(series, change) for mark in marks):
            change = replace(change, accepted=True)
        changes.append(change)
    return changes


def noise(values: np.ndarray) -> float:
    """The series' noise (a standard deviation), from the median absolute difference of consecutive values."""
    return float(np.median(np.abs(np.diff(values)))) * _MAD_TO_SIGMA


def search(values: np.ndarray) -> list[int]:
    """Candidate boundaries (first index of each new segment): the least-squares segmentation with a penalty per
    boundary scaled to the noise."""
    import ruptures  # lazy: the search is only needed by the history commands

    sigma = noise(values)
    # a floor so that a constant series (identical accuracies) is not split where no split gains anything
    floor = 1e-12 * max(float(np.mean(values**2)), 1e-300)
    penalty = max(PENALTY * sigma**2 * math.log(len(values)), floor)
    algo = ruptures.KernelCPD(kernel="linear", min_size=MIN_SEGMENT, jump=1).fit(values.reshape(-1, 1))
    return [int(b) for b in algo.predict(pen=penalty)[:-1]]  # the last "boundary" is the series' end


def place(values: np.ndarray, bounds: list[int], allowed: Sequence[int]) -> list[int]:
    """Each boundary moved to the allowed index between its neighbours (``MIN_SEGMENT`` runs from each), and within
    :data:`PLACE_COMMITS` commits of where the search put it, where the runs on either side deviate least from their
    side's median (summed absolute deviations)."""
    placed = list(bounds)
    for i in range(len(placed)):
        start = placed[i - 1] if i else 0
        end = bounds[i + 1] if i + 1 < len(bounds) else len(values)
        at = bisect.bisect_left(allowed, placed[i])
        best, best_cost = placed[i], math.inf
        for index in allowed[max(0, at - PLACE_COMMITS) : at + PLACE_COMMITS + 1]:
            if index - start < MIN_SEGMENT or end - index < MIN_SEGMENT:
                continue
            before, after = values[start:index], values[index:end]
            cost = float(np.abs(before - np.median(before)).sum() + np.abs(after - np.median(after)).sum())
            if cost < best_cost:
                best, best_cost = index, cost
        placed[i] = best
    return sorted(set(placed))


def commit_boundaries(series: Series) -> list[int]:
    """Indices where a new commit starts: a change cannot fall between two runs of the same commit."""
    points = series.points
    return [
        i
        for i in range(MIN_SEGMENT, len(points) - MIN_SEGMENT + 1)
        if points[i].commit is None or points[i].commit != points[i - 1].commit
    ]


def snap(index: int, allowed: Sequence[int]) -> int | None:
    """The allowed boundary nearest ``index`` (the earlier one on a tie), None when none is allowed."""
    if not allowed:
        return None
    return min(allowed, key=lambda b: (abs(b - index), b))


def prune(values: np.ndarray, bounds: list[int], min_change: float, alpha: float, confidence: float) -> list[Judgement]:
    """Remove the weakest failing boundary and judge again, until every boundary left passes."""
    bounds = list(bounds)
    while True:
        edges = [0, *bounds, len(values)]
        judged = [judge(values, edges[i - 1], edges[i], edges[i + 1], confidence) for i in range(1, len(edges) - 1)]
        failing = [j for j in judged if not j.passes(min_change, alpha)]
        if not failing:
            return judged
        weakest = max(failing, key=lambda j: (j.p_value, -abs(j.change)))
        bounds.remove(weakest.index)


def judge(values: np.ndarray, start: int, index: int, end: int, confidence: float) -> Judgement:
    """The test of one boundary on the run means of its adjacent segments."""
    from scipy import stats  # lazy, as in runs.compare

    before, after = values[start:index], values[index:end]
    mean_before, mean_after = float(before.mean()), float(after.mean())
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # identical values: scipy warns, then answers
        result = stats.ttest_ind(after, before, equal_var=False)
    p_value = float(result.pvalue)
    var_before, var_after = float(before.var(ddof=1)), float(after.var(ddof=1))
    if math.isnan(p_value):  # no spread at all: the same value on both sides is no change, any other a certain one
        p_value = 1.0 if mean_after == mean_before else 0.0
    df = float(result.df) if math.isfinite(result.df) else float(len(before) + len(after) - 2)
    low, high = ratio_interval(
        mean_before, mean_after, var_before / len(before), var_after / len(after), df, confidence
    )
    squares = float(((before - mean_before) ** 2).sum() + ((after - mean_after) ** 2).sum())
    return Judgement(
        index=index,
        start=start,
        end=end,
        mean_before=mean_before,
        mean_after=mean_after,
        change=relative_change(mean_before, mean_after),
        low=low,
        high=high,
        p_value=p_value,
        steplike=squares < line_residuals(values[start:end]),
    )


def relative_change(before: float, after: float) -> float:
    """``after / before - 1``; from a zero mean, no change is 0 and any other infinitely large."""
    if before == 0:
        return 0.0 if after == 0 else math.copysign(math.inf, after)
    return (after - before) / abs(before)


def line_residuals(values: np.ndarray) -> float:
    """Squared residuals of the least-squares line through ``values`` (against their index)."""
    x = np.arange(len(values), dtype=float)
    slope, intercept = np.polyfit(x, values, 1)
    return float(((values - (slope * x + intercept)) ** 2).sum())


def ratio_interval(
    before: float, after: float, var_before: float, var_after: float, df: float, confidence: float
) -> tuple[float, float]:
    """Fieller's interval for ``after / before - 1`` from two independent means and their variances (of the means,
    ``s**2 / n``), with a t quantile on ``df`` degrees of freedom.

    Solves ``(after - r * before)**2 = t**2 * (var_after + r**2 * var_before)`` for r. When the mean before is within
    its own uncertainty of zero the set of r is unbounded: ``(-inf, inf)``.
    """
    from scipy import stats

    t2 = float(stats.t.ppf(0.5 + confidence / 2, df)) ** 2
    a = before**2 - t2 * var_before
    if a <= 0:
        return -math.inf, math.inf
    half = math.sqrt(t2 * (after**2 * var_before + a * var_after))
    low, high = (after * before - half) / a, (after * before + half) / a
    if before < 0:  # the change is taken relative to |before|: mirror the ratio
        low, high = 2 - high, 2 - low
    return low - 1, high - 1
