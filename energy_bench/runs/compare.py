"""Comparing runs: thresholds, the significance test and a verdict per benchmark.

A change is a regression when it goes the worse way (more joules or time, less accuracy),
is beyond its threshold, **and** the per-round samples of the two runs say it is real: a
one-sided Mann-Whitney U test (exact for small samples) at ``ALPHA``. Rank-based, so one
throttled round does not decide, and with 5 rounds per run it reaches p = 1/252. Where a run
has no per-round data (old files; accuracy is one number), or too few rounds for the test to
ever reach ``ALPHA``, the threshold alone decides and the comparison says so.
Improvements never fail.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from energy_bench.errors import EnergyBenchError
from energy_bench.runs.storage import BenchRecord, Samples
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

    @property
    def regressions(self) -> list[MetricComparison]:
        return [m for m in self.metrics.values() if m.regression]


def compare_metric(
    metric: str, baseline: Samples, current: Samples, threshold: Threshold | None, alpha: float = ALPHA
) -> MetricComparison:
    result = MetricComparison(metric, baseline.mean, current.mean, threshold)
    if threshold is None:
        return result
    base_rounds, cur_rounds = baseline.data, current.data
    if base_rounds and cur_rounds and can_test(len(base_rounds), len(cur_rounds), alpha):
        judged = judge_rounds(base_rounds, cur_rounds, threshold, alpha)
        result.p_worse = float(judged.p_worse)
        result.regression = bool(judged.regression)
        result.improvement = bool(judged.improvement)
        return result
    if base_rounds and cur_rounds:
        result.note = f"{metric}: threshold only: {len(base_rounds)}+{len(cur_rounds)} rounds cannot reach p<={alpha:g}"
    elif metric != "accuracy":  # accuracy is one number per run by nature: said once in the report's legend
        result.note = f"{metric}: {THRESHOLD_ONLY}"
    worse_by = float(threshold.worse_by(baseline.mean, current.mean))
    result.regression = worse_by > threshold.amount
    result.improvement = -worse_by > threshold.amount
    return result


def compare_benchmark(
    fullname: str,
    baseline: BenchRecord | None,
    current: BenchRecord | None,
    thresholds: Iterable[Threshold] = (),
    alpha: float = ALPHA,
) -> BenchmarkComparison:
    result = BenchmarkComparison(fullname, baseline, current)
    if baseline is None:
        result.verdict = "new"
        return result
    if current is None:
        result.verdict = "missing"
        return result
    by_metric = {t.metric: t for t in thresholds}
    for record, which, where in ((baseline, "baseline", "baseline"), (current, "current", "current run")):
        if record.error:
            result.notes.append(f"{which} meter failed: {printable(record.error)}")
        # a value the file holds but that cannot be used: no data for its metric, said once here
        result.notes.extend(
            f"{m}: no data in the {where} ({printable(why)})" for m, why in record.invalid.items() if m in by_metric
        )
    unusable = {m for m in (*baseline.invalid, *current.invalid) if m in by_metric}
    for metric in METRICS:
        base, cur = baseline.samples(metric), current.samples(metric)
        if base is not None and cur is not None:
            result.metrics[metric] = compare_metric(metric, base, cur, by_metric.get(metric), alpha)
        elif metric in by_metric and (base is not None or cur is not None) and metric not in unusable:
            # one side lacks it (e.g. an old baseline); a metric neither run records (inference has no accuracy) is
            # simply not compared
            missing = "baseline" if base is None else "current run"
            result.notes.append(f"{metric}: not recorded in the {missing}")
    result.notes.extend(sorted({m.note for m in result.metrics.values() if m.note}))
    judged = [m for m in result.metrics.values() if m.threshold is not None]
    if any(m.regression for m in judged):
        result.verdict = "REGRESSION"
    elif not judged or unusable or (current.error and "joules" in by_metric):
        result.verdict = "no data"
    elif any(m.improvement for m in judged):
        result.verdict = "improved"
    return result


def compare_records(
    baseline: Mapping[str, BenchRecord],
    current: Mapping[str, BenchRecord],
    thresholds: Iterable[Threshold] = (),
    alpha: float = ALPHA,
) -> list[BenchmarkComparison]:
    """Match benchmarks by full name; current order first, then those only in the baseline."""
    thresholds = tuple(thresholds)
    names = list(current) + [name for name in baseline if name not in current]
    return [compare_benchmark(n, baseline.get(n), current.get(n), thresholds, alpha) for n in names]


def compatibility_problems(
    baseline: Mapping[str, BenchRecord],
    current: Mapping[str, BenchRecord],
    baseline_machine: Mapping | None = None,
    current_machine: Mapping | None = None,
) -> list[str]:
    """Why the energy of these runs is not comparable (measured vs estimated, other meters or devices)."""
    problems: list[str] = []
    for name, cur in current.items():
        base = baseline.get(name)
        if base is None or base.joules is None or cur.joules is None:
            continue
        if base.source and cur.source and base.source != cur.source:
            problems.append(f"baseline energy is {base.source} ({base.meter}), current is {cur.source} ({cur.meter})")
        elif base.meter and cur.meter and base.meter != cur.meter:
            problems.append(f"different meters: baseline {base.meter}, current {cur.meter}")
    base_devices = _devices(baseline_machine)
    cur_devices = _devices(current_machine)
    if base_devices is not None and cur_devices is not None and base_devices != cur_devices:
        problems.append(
            f"different devices: baseline {', '.join(base_devices) or 'none'}, "
            f"current {', '.join(cur_devices) or 'none'}"
        )
    return [printable(p) for p in dict.fromkeys(problems)]


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
    """One line per regressed metric: benchmark, metric, baseline, current, change, threshold."""
    lines = []
    for comparison in comparisons:
        for m in comparison.regressions:
            unit = METRICS[m.metric].unit
            if m.metric == "accuracy":
                values = f"{m.baseline:.4f} -> {m.current:.4f} ({m.change_points:+.2f}pt)"
            else:
                change = format_change(m.baseline, m.current, m.change_percent, unit)
                values = f"{m.baseline:.4g} {unit} -> {m.current:.4g} {unit} ({change})"
            evidence = f"p={m.p_worse:.3g}" if m.p_worse is not None else "threshold only"
            lines.append(f"{printable(comparison.fullname)}: {m.metric} {values}, limit {m.threshold}, {evidence}")
    return lines
