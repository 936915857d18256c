"""Comparing runs: thresholds, the significance tests and a verdict per benchmark.

A change is a regression when it goes the worse way (more joules or time, less accuracy, more joules to a
target), is beyond its threshold, **and** a test says it is more than noise. Which test depends on what the
baseline can show:

* **Several baseline runs** (``last:N``, or each side's repetitions in ``energy-bench ab``): each run is reduced to
  its mean (per call), and the current run's mean must lie beyond a one-sided Student-t bound built from the
  baseline runs' mean and their between-run standard deviation (a prediction bound for one new run; with several
  current runs, the two-sample t test with pooled variance, of which the prediction bound is the one-run case),
  **and** not resting on one outlying run: the current mean lies outside the range of the baseline runs' means,
  or (with several current runs) a one-sided Mann-Whitney U test on the run means ranks the current runs worse at
  ``alpha``. So it sees how much whole runs differ (a session that is all slower), and a current run inside the
  spread of the baseline runs never fails. See :func:`judge_runs`.
* **One baseline run**: between-run noise is unknown. The per-round samples of the two runs go through a
  one-sided Mann-Whitney U test (exact for small samples) at ``ALPHA``: rank-based, so one throttled round does
  not decide, and with 5 rounds per run it reaches p = 1/252. It treats rounds as independent, so a shift of a
  whole session reads as significant: the report says so. Where a run has no per-round data (old files;
  accuracy and joules to a target are one number per run), or too few rounds for the test to ever reach
  ``ALPHA``, the threshold alone decides and the comparison says so.

Energy to a target: a current run that did not reach a target every baseline run reached is a regression by
itself. Improvements never fail.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from energy_bench.errors import EnergyBenchError
from energy_bench.runs.estimate_model import recorded_model
from energy_bench.runs.parse import BenchRecord, Samples, TargetResult
from energy_bench.runs.text import format_change, printable

#: significance level of the one-sided test
ALPHA = 0.05
#: thresholds that decide the verdict column when none are given (the gate only fails with --energy-compare-fail)
DEFAULT_THRESHOLDS = "joules:5%,accuracy:1pt"
#: samples this large use the normal approximation instead of the exact U distribution
_EXACT_MAX = 20
#: above this many rounds in all, the smallest exact p-value is computed in log space (the binomial coefficient
#: no longer fits in a float)
_COMB_MAX = 1000


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    higher_is_worse: bool
    units: tuple[str, ...] = ("%",)


METRICS: dict[str, Metric] = {
    "joules": Metric("joules", "J", True),
    "net_joules": Metric("net_joules", "J", True),
    "time": Metric("time", "s", True),
    "accuracy": Metric("accuracy", "", False, ("%", "pt")),
    # one value per run: cumulative joules until energy(..., until=...) met its target
    "joules_to_target": Metric("joules_to_target", "J", True),
}


class ThresholdError(EnergyBenchError, ValueError):
    """A malformed threshold expression; the message is one line fit for a usage error."""


@dataclass(frozen=True)
class Threshold:
    """``metric:amount%`` (relative to the baseline) or ``accuracy:amount pt`` (points of accuracy)."""

    metric: str
    amount: float
    unit: str

    def __str__(self) -> str:
        return f"{self.metric}:{self.amount:g}{self.unit}"

    def worse_by(self, baseline, current):
        """How far ``current`` is on the worse side of ``baseline``, in this threshold's unit (numpy-friendly).

        Positive is worse. Percent: relative to the baseline; points: accuracy difference x 100.
        """
        baseline = np.asarray(baseline, dtype=float)
        current = np.asarray(current, dtype=float)
        sign = 1.0 if METRICS[self.metric].higher_is_worse else -1.0
        if self.unit == "pt":
            return sign * (current - baseline) * 100.0
        difference = current - baseline
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            relative = difference / np.abs(baseline)
            # A zero baseline: no change is 0%, any change is infinitely far (never NaN).
            relative = np.where(baseline == 0, np.sign(difference) * np.inf, relative)
        relative = np.where(difference == 0, 0.0, relative)
        return sign * relative * 100.0


_EXPR = re.compile(r"^\s*(?P<metric>[a-z_]+)\s*:\s*(?P<amount>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>%|pt)\s*$")


def parse_threshold(expr: str) -> Threshold:
    match = _EXPR.match(expr)
    if not match:
        raise ThresholdError(
            f"cannot parse {expr.strip()!r}: expected METRIC:NUMBER% or accuracy:NUMBERpt, e.g. joules:5%"
        )
    metric, unit = match["metric"], match["unit"]
    if metric not in METRICS:
        raise ThresholdError(f"unknown metric {metric!r} in {expr.strip()!r}; expected one of {', '.join(METRICS)}")
    if unit not in METRICS[metric].units:
        raise ThresholdError(
            f"{expr.strip()!r}: points (pt) only apply to accuracy; use a percentage, e.g. {metric}:5%"
        )
    amount = float(match["amount"])
    if not math.isfinite(amount):
        raise ThresholdError(f"{expr.strip()!r}: the amount must be a finite number")
    return Threshold(metric, amount, unit)


def parse_thresholds(text: str | Iterable[str]) -> tuple[Threshold, ...]:
    """Parse ``EXPR[,EXPR...]`` (or several such strings); :class:`ThresholdError` on any bad part."""
    parts = [text] if isinstance(text, str) else list(text)
    exprs = [e for part in parts for e in part.split(",")]
    if not any(e.strip() for e in exprs):
        raise ThresholdError("no threshold given; expected e.g. joules:5%,accuracy:1pt")
    thresholds: dict[str, Threshold] = {}
    for expr in exprs:
        if not expr.strip():
            raise ThresholdError(f"empty expression in {','.join(exprs)!r}")
        threshold = parse_threshold(expr)
        if threshold.metric in thresholds:
            raise ThresholdError(f"metric {threshold.metric!r} given twice")
        thresholds[threshold.metric] = threshold
    return tuple(thresholds.values())


# ---------------------------------------------------------------------------- the test


def min_pvalue(n_baseline: int, n_current: int) -> float:
    """Smallest p-value the exact one-sided test can give for these sample sizes: 1 / C(n + m, m).

    Exact for small samples; in log space beyond :data:`_COMB_MAX` rounds, where it is far below any alpha anyway
    (and may underflow to 0.0, never overflow).
    """
    if n_baseline + n_current <= _COMB_MAX:
        return 1.0 / math.comb(n_baseline + n_current, n_current)
    log_comb = math.lgamma(n_baseline + n_current + 1) - math.lgamma(n_baseline + 1) - math.lgamma(n_current + 1)
    return math.exp(-log_comb)


def can_test(n_baseline: int, n_current: int, alpha: float = ALPHA) -> bool:
    return n_baseline >= 2 and n_current >= 2 and min_pvalue(n_baseline, n_current) <= alpha


def pvalue_worse(baseline_rounds, current_rounds, higher_is_worse: bool = True):
    """One-sided Mann-Whitney U p-value that the current rounds are worse than the baseline's.

    Works along the last axis, so it takes one pair of samples or a batch of pairs.
    """
    from scipy import stats  # lazy: importing scipy.stats costs seconds on every pytest start

    current = np.asarray(current_rounds, dtype=float)
    baseline = np.asarray(baseline_rounds, dtype=float)
    method = "exact" if max(current.shape[-1], baseline.shape[-1]) <= _EXACT_MAX else "asymptotic"
    result = stats.mannwhitneyu(
        current, baseline, alternative="greater" if higher_is_worse else "less", axis=-1, method=method
    )
    return np.nan_to_num(result.pvalue, nan=1.0)


@dataclass(frozen=True)
class RoundsJudgement:
    """Per pair of samples: signed change (threshold unit), p-values, and the decisions."""

    worse_by: np.ndarray
    p_worse: np.ndarray
    p_better: np.ndarray
    regression: np.ndarray
    improvement: np.ndarray


def judge_rounds(baseline_rounds, current_rounds, threshold: Threshold, alpha: float = ALPHA) -> RoundsJudgement:
    """Threshold AND one-sided test, on per-round samples along the last axis (one pair or a batch).

    This is the decision the gate and the CLI use; ``benchmarks/test_gate_quality.py`` measures it.
    """
    baseline = np.asarray(baseline_rounds, dtype=float)
    current = np.asarray(current_rounds, dtype=float)
    higher_is_worse = METRICS[threshold.metric].higher_is_worse
    worse_by = threshold.worse_by(baseline.mean(axis=-1), current.mean(axis=-1))
    p_worse = pvalue_worse(baseline, current, higher_is_worse)
    p_better = pvalue_worse(baseline, current, not higher_is_worse)
    regression = (worse_by > threshold.amount) & (p_worse <= alpha)
    improvement = (-worse_by > threshold.amount) & (p_better <= alpha)
    return RoundsJudgement(worse_by, p_worse, p_better, regression, improvement)


@dataclass(frozen=True)
class RunsJudgement:
    """Per pair of run samples: signed change (threshold unit), p-values, the t bound, and the decisions."""

    worse_by: np.ndarray
    p_worse: np.ndarray
    p_better: np.ndarray
    bound: np.ndarray
    regression: np.ndarray
    improvement: np.ndarray
    #: the change is shown to lie inside the threshold: the one-sided (1 - alpha) upper confidence bound of the
    #: worse-side change is below it (a non-inferiority test; what ``energy-bench bisect`` needs to call a step good)
    within: np.ndarray


def judge_runs(baseline_means, current_means, threshold: Threshold, alpha: float = ALPHA) -> RunsJudgement:
    """Threshold AND one-sided Student t AND outside the baseline runs' range, on run means along the last axis.

    ``baseline_means``: one value per baseline run (k >= 2); ``current_means``: one per current run (m >= 1; a
    scalar is one run). Both may carry leading batch axes (the simulation in ``benchmarks/test_gate_quality.py``).
    The t statistic is the two-sample one with pooled variance, ``(mean_c - mean_b) / (s_p * sqrt(1/k + 1/m))`` on
    ``k + m - 2`` degrees of freedom; for one current run it is exactly the one-sided prediction bound for one new
    run's mean, ``mean_b + t(1-alpha, k-1) * s_b * sqrt(1 + 1/k)``. ``bound`` is that bound (in the metric's units),
    on the worse side of the baseline mean.

    The outlier guard: the t test assumes roughly normal run means, and one run far off (a session caught in a
    slow phase of the host) can carry it. So a regression also needs the current mean beyond every baseline run's
    mean, **or**, with several current runs where sizes allow (``min_pvalue(k, m) <= alpha``), the current runs
    ranked worse than the baseline runs by a one-sided Mann-Whitney U test on the run means. The range alone caps
    what more runs can show: the largest of k runs moves out as k grows while the mean of m runs moves in, so with
    16 runs per side one slow baseline run kept a significant +17 % from failing. The rank test is as robust to that
    run, and its power grows with the runs.
    """
    from scipy import stats  # lazy, as in pvalue_worse

    base = np.asarray(baseline_means, dtype=float)
    cur = np.asarray(current_means, dtype=float)
    if cur.ndim < base.ndim:
        cur = cur[..., None]  # one value per batch element: one current run
    k, m = base.shape[-1], cur.shape[-1]
    if k < 2 or m < 1:
        raise ValueError(f"the between-run test needs at least two baseline runs and one current run, got {k}+{m}")
    sign = 1.0 if METRICS[threshold.metric].higher_is_worse else -1.0
    mean_b, mean_c = base.mean(axis=-1), cur.mean(axis=-1)
    squares = ((base - mean_b[..., None]) ** 2).sum(axis=-1) + ((cur - mean_c[..., None]) ** 2).sum(axis=-1)
    df = k + m - 2
    scale = np.sqrt(squares / df) * math.sqrt(1.0 / k + 1.0 / m)
    worse = sign * (mean_c - mean_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        # no spread at all (e.g. the same accuracy every run): any change is infinitely many scales away
        t_worse = np.where(scale > 0, worse / scale, np.sign(worse) * np.inf)
    p_worse = np.nan_to_num(stats.t.sf(t_worse, df), nan=1.0)
    p_better = np.nan_to_num(stats.t.sf(-t_worse, df), nan=1.0)
    quantile = stats.t.isf(alpha, df)  # not ppf(1 - alpha): exact for a tiny alpha too
    bound = mean_b + sign * quantile * scale
    worst = base.max(axis=-1) if sign > 0 else base.min(axis=-1)
    best = base.min(axis=-1) if sign > 0 else base.max(axis=-1)
    worse_by = threshold.worse_by(mean_b, mean_c)
    beyond_worst, beyond_best = sign * (mean_c - worst) > 0, sign * (best - mean_c) > 0
    if m >= 2 and min_pvalue(k, m) <= alpha:
        beyond_worst = beyond_worst | (pvalue_worse(base, cur, sign > 0) <= alpha)
        beyond_best = beyond_best | (pvalue_worse(base, cur, sign < 0) <= alpha)
    regression = (worse_by > threshold.amount) & (p_worse <= alpha) & beyond_worst
    improvement = (-worse_by > threshold.amount) & (p_better <= alpha) & beyond_best
    upper = mean_b + sign * (worse + quantile * scale)
    within = threshold.worse_by(mean_b, upper) < threshold.amount
    return RunsJudgement(worse_by, p_worse, p_better, bound, regression, improvement, within)


def describe_test(baseline_runs: int, current_runs: int = 1, alpha: float = ALPHA) -> str:
    """The test a comparison of this many runs uses, for headers and verdict lines."""
    if baseline_runs >= 2 and current_runs >= 2:
        return f"two-sample Student t on run means, {baseline_runs}+{current_runs} runs, alpha {alpha:g}"
    if baseline_runs >= 2:
        return f"between-run Student t bound over {baseline_runs} baseline runs, alpha {alpha:g}"
    return f"one-sided Mann-Whitney U, alpha {alpha:g}; {ONE_BASELINE_RUN}"


# ---------------------------------------------------------------------------- per benchmark


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def change_percent(baseline: float | None, current: float | None) -> float | None:
    """The change from ``baseline`` to ``current`` in percent of the baseline's magnitude: positive means current
    is higher, also for a negative baseline (net joules: -10 J -> -5 J is +50%). None when either is missing, or
    the baseline is zero and the values differ (no percentage of zero: show the absolute change)."""
    if baseline is None or current is None:
        return None
    if current == baseline:
        return 0.0
    if baseline == 0:
        return None
    return _finite((current - baseline) / abs(baseline) * 100.0)


THRESHOLD_ONLY = "threshold only: no per-round data"
#: said wherever a single baseline run decides: its rounds cannot show how much whole runs differ
ONE_BASELINE_RUN = "between-run noise unknown (one baseline run)"
#: metrics with one value per run (no rounds): the threshold alone decides against one baseline run
ONE_VALUE_METRICS = ("accuracy", "joules_to_target")


@dataclass
class MetricComparison:
    metric: str
    baseline: float
    current: float
    threshold: Threshold | None = None
    p_worse: float | None = None
    regression: bool = False
    improvement: bool = False
    note: str | None = None
    #: runs behind ``baseline`` and ``current`` (each the mean of its runs' means when more than one)
    baseline_runs: int = 1
    current_runs: int = 1
    #: the between-run test's bound: a regression's current mean lies beyond it (None: no between-run test)
    bound: float | None = None
    #: a run-level outcome that decided instead of the numbers, e.g. "target not reached in 10 rounds"
    reason: str | None = None
    #: the between-run test showed the change inside the threshold (see ``RunsJudgement.within``; None: no such test)
    within: bool | None = None

    @property
    def ratio(self) -> float | None:
        """current / baseline; None unless the baseline is positive (a ratio to zero or a negative is no ratio)."""
        return _finite(self.current / self.baseline) if self.baseline > 0 else None

    @property
    def change_percent(self) -> float | None:
        return change_percent(self.baseline, self.current)

    @property
    def change_points(self) -> float:
        return (self.current - self.baseline) * 100.0


@dataclass
class BenchmarkComparison:
    fullname: str
    baseline: BenchRecord | None
    current: BenchRecord | None
    metrics: dict[str, MetricComparison] = field(default_factory=dict)
    verdict: str = "ok"
    notes: list[str] = field(default_factory=list)
    #: every run's record behind ``baseline`` and ``current`` (those two are the newest of each)
    baseline_runs: list[BenchRecord] = field(default_factory=list)
    current_runs: list[BenchRecord] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricComparison]:
        return [m for m in self.metrics.values() if m.regression]


def _as_list(value):
    """One item or a sequence of them (one per run) as a list; None as an empty list."""
    if value is None:
        return []
    if isinstance(value, (Samples, BenchRecord, TargetResult, Mapping)):
        return [value]
    return list(value)


def compare_metric(
    metric: str,
    baseline: Samples | Sequence[Samples],
    current: Samples | Sequence[Samples],
    threshold: Threshold | None,
    alpha: float = ALPHA,
) -> MetricComparison:
    """One metric, given one :class:`Samples` per run on each side (or one ``Samples`` for a single run)."""
    base, cur = _as_list(baseline), _as_list(current)
    result = MetricComparison(
        metric,
        statistics.fmean(s.mean for s in base),
        statistics.fmean(s.mean for s in cur),
        threshold,
        baseline_runs=len(base),
        current_runs=len(cur),
    )
    if threshold is None:
        return result
    if len(base) >= 2:
        judged = judge_runs([s.mean for s in base], [s.mean for s in cur], threshold, alpha)
        result.p_worse = float(judged.p_worse)
        result.bound = float(judged.bound)
        result.regression = bool(judged.regression)
        result.improvement = bool(judged.improvement)
        result.within = bool(judged.within)
        return result
    return _compare_rounds(result, base[0], cur, threshold, alpha)


def _compare_rounds(
    result: MetricComparison, base: Samples, cur: list[Samples], threshold: Threshold, alpha: float
) -> MetricComparison:
    """One baseline run: the rounds test on per-round samples (the current runs' rounds together), else threshold."""
    base_rounds = base.data
    cur_rounds = tuple(v for s in cur for v in s.data) if all(s.data for s in cur) else None
    if base_rounds and cur_rounds and can_test(len(base_rounds), len(cur_rounds), alpha):
        judged = judge_rounds(base_rounds, cur_rounds, threshold, alpha)
        result.p_worse = float(judged.p_worse)
        result.regression = bool(judged.regression)
        result.improvement = bool(judged.improvement)
        return result
    metric = result.metric
    if base_rounds and cur_rounds:
        result.note = f"{metric}: threshold only: {len(base_rounds)}+{len(cur_rounds)} rounds cannot reach p<={alpha:g}"
    elif metric not in ONE_VALUE_METRICS:  # one number per run by nature: said once in the report's legend
        result.note = f"{metric}: {THRESHOLD_ONLY}"
    worse_by = float(threshold.worse_by(result.baseline, result.current))
    result.regression = worse_by > threshold.amount
    result.improvement = -worse_by > threshold.amount
    return result


def compare_targets(
    baseline: Sequence[TargetResult], current: Sequence[TargetResult], threshold: Threshold | None, alpha: float = ALPHA
) -> tuple[MetricComparison | None, str | None]:
    """Energy to a target over runs: (the comparison, a note), either may be None.

    A current run that missed a target every baseline run reached is a regression by itself (under a
    ``joules_to_target`` threshold); a current side that reached a target no baseline run reached is an
    improvement. Otherwise the joules of the runs that reached it are compared like any metric.
    """
    base_joules = [Samples(mean=t.joules) for t in baseline if t.reached and t.joules is not None]
    cur_joules = [Samples(mean=t.joules) for t in current if t.reached and t.joules is not None]
    missed = [t for t in current if not t.reached]
    name = "joules_to_target"
    if not base_joules and not cur_joules:
        return None, f"{name}: target reached in neither run"
    if missed and len(base_joules) == len(baseline):
        all_joules = [t.joules for t in current if t.joules is not None]
        result = MetricComparison(
            name,
            statistics.fmean(s.mean for s in base_joules),
            statistics.fmean(all_joules) if all_joules else math.nan,
            threshold,
            baseline_runs=len(baseline),
            current_runs=len(current),
        )
        rounds = missed[0].rounds if missed[0].rounds is not None else missed[0].max_rounds
        share = f" ({len(missed)} of {len(current)} runs)" if len(current) > 1 else ""
        result.reason = f"target not reached in {rounds} rounds{share}"
        result.regression = threshold is not None
        return result, None
    if not base_joules:
        result = MetricComparison(
            name,
            math.nan,
            statistics.fmean(s.mean for s in cur_joules),
            threshold,
            baseline_runs=len(baseline),
            current_runs=len(current),
        )
        result.reason = "target reached; no baseline run reached it"
        result.improvement = threshold is not None
        return result, None
    note = None
    if len(base_joules) < len(baseline):
        note = f"{name}: target reached in {len(base_joules)} of {len(baseline)} baseline runs"
    if not cur_joules:
        return None, f"{name}: target not reached in the current run(s), nor in every baseline run"
    return compare_metric(name, base_joules, cur_joules, threshold, alpha), note


def _records(value: BenchRecord | Sequence[BenchRecord] | None) -> list[BenchRecord]:
    return [r for r in _as_list(value) if r is not None]


def compare_benchmark(
    fullname: str,
    baseline: BenchRecord | Sequence[BenchRecord] | None,
    current: BenchRecord | Sequence[BenchRecord] | None,
    thresholds: Iterable[Threshold] = (),
    alpha: float = ALPHA,
) -> BenchmarkComparison:
    """One benchmark: ``baseline`` and ``current`` are its record in one run, or its records in several runs."""
    base_runs, cur_runs = _records(baseline), _records(current)
    result = BenchmarkComparison(
        fullname,
        base_runs[-1] if base_runs else None,
        cur_runs[-1] if cur_runs else None,
        baseline_runs=base_runs,
        current_runs=cur_runs,
    )
    if not base_runs:
        result.verdict = "new"
        return result
    if not cur_runs:
        result.verdict = "missing"
        return result
    by_metric = {t.metric: t for t in thresholds}
    for records, which, where in ((base_runs, "baseline", "baseline"), (cur_runs, "current", "current run")):
        for error in dict.fromkeys(r.error for r in records if r.error):
            result.notes.append(f"{which} meter failed: {printable(error)}")
        # a value the file holds but that cannot be used: no data for its metric, said once here
        invalid = {m: why for r in records for m, why in r.invalid.items() if m in by_metric}
        result.notes.extend(f"{m}: no data in the {where} ({printable(why)})" for m, why in invalid.items())
    unusable = {m for r in (*base_runs, *cur_runs) for m in r.invalid if m in by_metric}
    for metric in METRICS:
        if metric == "joules_to_target":
            _compare_target_metric(result, by_metric.get(metric), alpha)
            continue
        base = [s for s in (r.samples(metric) for r in base_runs) if s is not None]
        cur = [s for s in (r.samples(metric) for r in cur_runs) if s is not None]
        if base and cur:
            result.metrics[metric] = compare_metric(metric, base, cur, by_metric.get(metric), alpha)
            if len(base) == 1 and len(base_runs) > 1 and metric in by_metric:
                result.notes.append(f"{metric}: only one baseline run has it: {ONE_BASELINE_RUN}")
        elif metric in by_metric and (base or cur) and metric not in unusable:
            # one side lacks it (e.g. an old baseline); a metric neither run records (inference has no accuracy) is
            # simply not compared
            missing = "baseline" if not base else "current run"
            result.notes.append(f"{metric}: not recorded in the {missing}")
    result.notes.extend(sorted({m.note for m in result.metrics.values() if m.note}))
    judged = [m for m in result.metrics.values() if m.threshold is not None]
    if any(m.regression for m in judged):
        result.verdict = "REGRESSION"
    elif not judged or unusable or (all(r.error for r in cur_runs) and "joules" in by_metric):
        result.verdict = "no data"
    elif any(m.improvement for m in judged):
        result.verdict = "improved"
    return result


def _compare_target_metric(result: BenchmarkComparison, threshold: Threshold | None, alpha: float) -> None:
    base = [r.to_target for r in result.baseline_runs if r.to_target is not None]
    cur = [r.to_target for r in result.current_runs if r.to_target is not None]
    if base and cur:
        comparison, note = compare_targets(base, cur, threshold, alpha)
        if comparison is not None:
            result.metrics["joules_to_target"] = comparison
        if note:
            result.notes.append(note)
    elif threshold is not None and (base or cur):
        result.notes.append(f"joules_to_target: not recorded in the {'baseline' if not base else 'current run'}")


def compare_records(
    baseline: Mapping[str, BenchRecord] | Sequence[Mapping[str, BenchRecord]],
    current: Mapping[str, BenchRecord] | Sequence[Mapping[str, BenchRecord]],
    thresholds: Iterable[Threshold] = (),
    alpha: float = ALPHA,
) -> list[BenchmarkComparison]:
    """Match benchmarks by full name; current order first, then those only in the baseline.

    Each side is one run's records, or a sequence of runs' records (oldest first) to be pooled.
    """
    thresholds = tuple(thresholds)
    base_runs, cur_runs = _as_list(baseline), _as_list(current)
    names: dict[str, None] = {}
    for run in [*cur_runs, *base_runs]:
        names.update(dict.fromkeys(run))
    results = []
    for name in names:
        base = [run[name] for run in base_runs if name in run]
        result = compare_benchmark(name, base, [run[name] for run in cur_runs if name in run], thresholds, alpha)
        if len(base) == 1 and len(base_runs) > 1 and result.current is not None:
            result.notes.append(f"only one of the {len(base_runs)} baseline runs has it: {ONE_BASELINE_RUN}")
        results.append(result)
    return results


def compatibility_problems(
    baseline: Mapping[str, BenchRecord],
    current: Mapping[str, BenchRecord],
    baseline_machine: Mapping | None = None,
    current_machine: Mapping | None = None,
) -> list[str]:
    """Why the energy of these runs is not comparable (measured vs estimated, other meters, estimate models or
    devices)."""
    problems: list[str] = []
    for name, cur in current.items():
        base = baseline.get(name)
        if base is None or base.joules is None or cur.joules is None:
            continue
        if base.source and cur.source and base.source != cur.source:
            problems.append(f"baseline energy is {base.source} ({base.meter}), current is {cur.source} ({cur.meter})")
        elif base.meter and cur.meter and base.meter != cur.meter:
            problems.append(f"different meters: baseline {base.meter}, current {cur.meter}")
    problems += _model_problems(baseline, current, baseline_machine, current_machine)
    base_devices = _devices(baseline_machine)
    cur_devices = _devices(current_machine)
    if base_devices is not None and cur_devices is not None and base_devices != cur_devices:
        problems.append(
            f"different devices: baseline {', '.join(base_devices) or 'none'}, "
            f"current {', '.join(cur_devices) or 'none'}"
        )
    return [printable(p) for p in dict.fromkeys(problems)]


def _model_problems(
    baseline: Mapping[str, BenchRecord],
    current: Mapping[str, BenchRecord],
    baseline_machine: Mapping | None,
    current_machine: Mapping | None,
) -> list[str]:
    """Estimated joules computed with other watts per CPU second: their ratio is the models', not the code's."""
    base, cur = recorded_model(baseline_machine), recorded_model(current_machine)
    if base is None or cur is None or base.watts == cur.watts:
        return []
    # Only where the runs compare estimated joules (an empty mapping: whole runs, e.g. shards being merged).
    estimated = [
        name
        for name, record in current.items()
        if record.source == "estimated" and getattr(baseline.get(name), "source", None) == "estimated"
    ]
    if (baseline or current) and not estimated:
        return []
    return [
        f"different estimate models: baseline {base.label}, current {cur.label} "
        "(recompute one with energy-bench report RUN --estimate-model ... --save-json FILE)"
    ]


#: how deep composite meters' ``parts`` are followed (a real one nests once)
_PARTS_DEPTH = 8


def _devices(machine_energy: Mapping | None, depth: int = 0) -> list[str] | None:
    """Device names in ``machine_info.energy`` (a meter's ``info()``): GPU names, CPU model, ``devices``.

    Looks inside composite meters' ``parts``; None when the description names no device. A field of the wrong
    type is named as unreadable, so that it differs from a readable one rather than passing unseen.
    """
    if not isinstance(machine_energy, Mapping):
        return None
    names: list[str] = []
    for gpu in _listed(machine_energy, "gpus", names):
        name = gpu.get("name") if isinstance(gpu, Mapping) else None
        if name:
            names.append(f"gpu {_text(name)}")
    for device in _listed(machine_energy, "devices", names):
        names.append(_text(device.get("name") if isinstance(device, Mapping) else device))
    if machine_energy.get("cpu_model"):
        names.append(f"cpu {_text(machine_energy['cpu_model'])}")
    for part in _listed(machine_energy, "parts", names):
        if depth == _PARTS_DEPTH:
            names.append("unreadable parts (nested too deeply)")
            break
        names.extend(_devices(part, depth + 1) or ())
    return sorted(names) or None


def evidence(m: MetricComparison) -> str:
    """What decided a regression, beside its threshold: the test and its p-value, or the threshold alone."""
    if m.p_worse is None:
        return "threshold only"
    if m.bound is None:
        return f"p={m.p_worse:.3g}"
    if m.current_runs > 1:
        return f"p={m.p_worse:.3g} (two-sample t, {m.baseline_runs}+{m.current_runs} runs)"
    return f"p={m.p_worse:.3g} (between-run t, {m.baseline_runs} baseline runs, bound {m.bound:.4g})"


def _listed(machine_energy: Mapping, key: str, names: list[str]) -> list:
    """The list under ``key`` (empty when absent); anything else is named as unreadable in ``names``."""
    value = machine_energy.get(key)
    if isinstance(value, list):
        return value
    if value:
        names.append(f"unreadable {key} ({type(value).__name__})")
    return []


def _text(value: object) -> str:
    """A device name as text: strings and whole numbers as they are, anything else by its type (no deep repr)."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    return f"unreadable name ({type(value).__name__})"


def regression_lines(comparisons: Iterable[BenchmarkComparison]) -> list[str]:
    """One line per regressed metric: benchmark, metric, baseline, current, change, threshold, evidence."""
    lines = []
    for comparison in comparisons:
        for m in comparison.regressions:
            unit = METRICS[m.metric].unit
            if m.reason:
                baseline = f"baseline reached it with {m.baseline:.4g} {unit}"
                lines.append(
                    f"{printable(comparison.fullname)}: {m.metric}: {m.reason} ({baseline}), limit {m.threshold}"
                )
                continue
            if m.metric == "accuracy":
                values = f"{m.baseline:.4f} -> {m.current:.4f} ({m.change_points:+.2f}pt)"
            else:
                change = format_change(m.baseline, m.current, m.change_percent, unit)
                values = f"{m.baseline:.4g} {unit} -> {m.current:.4g} {unit} ({change})"
            lines.append(f"{printable(comparison.fullname)}: {m.metric} {values}, limit {m.threshold}, {evidence(m)}")
    return lines
