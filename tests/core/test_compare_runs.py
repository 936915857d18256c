"""The between-run decision (pooled baselines), energy to a target, and their report lines.

Records are built the way the product builds them: meter readings -> ``energy_record`` / ``target_record`` ->
``record_from`` (what a saved file or the running session gives the comparison).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from energy_bench.meters.base import Reading, Source
from energy_bench.runs import record as records
from energy_bench.runs.compare import (
    ONE_BASELINE_RUN,
    compare_benchmark,
    compare_records,
    compare_targets,
    describe_test,
    judge_runs,
    parse_threshold,
    parse_thresholds,
    regression_lines,
)
from energy_bench.runs.parse import TargetResult, record_from

JOULES = parse_threshold("joules:2%")


def readings(values, seconds=0.1):
    return [Reading({"cpu": float(v)}, seconds, Source.ESTIMATED, "estimate") for v in values]


def run_record(mean, spread=0.005, rounds=5, accuracy=None, iterations=1, target=None, name="t.py::b"):
    """One benchmark of one run: ``rounds`` rounds around ``mean`` joules per call (relative spread ``spread``)."""
    per_round = [mean * iterations * (1 + spread * (i - rounds // 2)) for i in range(rounds)]
    energy = records.energy_record(readings(per_round), iterations=iterations)
    if target is not None:
        reached, used, cap = target
        energy["to_target"] = records.target_record(
            readings([mean] * used), reached, cap, {"metric": "accuracy", "target": 0.9, "direction": "at_least"}
        )
    extra = {"energy": energy}
    if accuracy is not None:
        extra["accuracy"] = accuracy
    return record_from(name, extra, None)


# ---------------------------------------------------------------------------- judge_runs


def test_prediction_bound_matches_the_textbook_formula():
    base = [100.0, 102.0, 98.0, 101.0, 99.0]
    k = len(base)
    bound = np.mean(base) + stats.t.ppf(0.95, k - 1) * np.std(base, ddof=1) * math.sqrt(1 + 1 / k)
    judged = judge_runs(base, 104.0, JOULES)
    assert float(judged.bound) == pytest.approx(bound)
    assert judged.regression  # +4% > 2%, beyond the bound (103.7) and above every baseline run
    assert not judge_runs(base, 103.5, JOULES).regression  # beyond 2% and the range, inside the bound
    for current in (bound - 1e-9, bound + 1e-9):
        assert (float(judge_runs(base, current, JOULES).p_worse) <= 0.05) == (current > bound)


def test_several_current_runs_are_the_two_sample_t_test():
    base, cur = [100.0, 103.0, 98.0, 101.0], [104.0, 107.0, 105.0]
    judged = judge_runs(base, cur, JOULES)
    expected = stats.ttest_ind(cur, base, equal_var=True, alternative="greater").pvalue
    assert float(judged.p_worse) == pytest.approx(expected)
    accuracy = parse_threshold("accuracy:1pt")
    judged = judge_runs([0.90, 0.91, 0.92], [0.85, 0.86], accuracy)
    expected = stats.ttest_ind([0.85, 0.86], [0.90, 0.91, 0.92], equal_var=True, alternative="less").pvalue
    assert float(judged.p_worse) == pytest.approx(expected) and judged.regression


def test_direction_and_improvement():
    base = [100.0, 101.0, 99.0]
    assert judge_runs(base, 80.0, JOULES).improvement and not judge_runs(base, 80.0, JOULES).regression
    accuracy = parse_threshold("accuracy:1pt")
    assert judge_runs([0.90, 0.90, 0.90], 0.85, accuracy).regression  # no spread: any drop beyond 1pt is real
    assert judge_runs([0.90, 0.90, 0.90], 0.95, accuracy).improvement
    assert not judge_runs([0.90, 0.90, 0.90], 0.90, accuracy).regression


def test_a_session_shift_inside_the_runs_spread_passes_where_the_rounds_test_fails():
    # five baseline sessions whose speeds differ by up to 15%, each with tight rounds (CV 1%)
    sessions = [1.00, 1.15, 0.99, 1.08, 1.03]
    pool = [run_record(100 * s, spread=0.01) for s in sessions]
    current = run_record(112.0, spread=0.01)  # a slow session, inside the spread of the baseline sessions
    thresholds = parse_thresholds("joules:10%")
    assert compare_benchmark("b", pool, current, thresholds).verdict == "ok"
    single = compare_benchmark("b", pool[0], current, thresholds)  # against one saved run: rounds test
    assert single.verdict == "REGRESSION"


def test_one_slow_baseline_run_does_not_cap_what_many_runs_show():
    ten = parse_threshold("joules:10%")
    base = [0.95 + 0.1 * i / 14 for i in range(15)] + [1.6]  # one session caught in a slow phase of the host
    cur = [1.15 + 0.15 * i / 15 for i in range(16)]  # +18 %, every run above the other 15
    assert np.mean(cur) < max(base)  # the range alone would keep this from failing
    judged = judge_runs(base, cur, ten)
    assert float(judged.p_worse) <= 0.05 and judged.regression
    assert float(stats.mannwhitneyu(cur, base, alternative="greater").pvalue) <= 0.05
    # where the rank test cannot reach alpha (2 + 2 runs: p >= 1/6), the range still decides
    assert not judge_runs([1.0, 1.3], [1.2, 1.25], ten).regression
    assert judge_runs([1.0, 1.02], [1.2, 1.25], ten).regression


def test_one_outlying_current_run_among_several_does_not_fail():
    base = [1.00, 1.01, 0.99, 1.00, 1.02, 0.98, 1.01, 0.99]
    cur = [1.00, 0.99, 1.01, 1.00, 0.98, 1.02, 1.00, 3.00]  # +25 % in the mean, from one run
    judged = judge_runs(base, cur, parse_threshold("joules:10%"))
    assert float(judged.worse_by) > 10 and np.mean(cur) > max(base)
    assert not judged.regression


def test_within_is_the_upper_confidence_bound_of_the_change():
    ten = parse_threshold("joules:10%")
    for base, cur in (
        ([1.00, 1.01, 0.99, 1.00], [1.01, 1.02, 1.00, 1.01]),
        ([1.0, 1.2, 0.8, 1.1], [1.0, 1.3, 0.9, 1.1]),
    ):
        k, m = len(base), len(cur)
        pooled = ((k - 1) * np.var(base, ddof=1) + (m - 1) * np.var(cur, ddof=1)) / (k + m - 2)
        upper = np.mean(cur) - np.mean(base) + stats.t.ppf(0.95, k + m - 2) * math.sqrt(pooled * (1 / k + 1 / m))
        expected = upper / np.mean(base) * 100 < 10
        assert bool(judge_runs(base, cur, ten).within) == expected
    assert judge_runs(*([[1.00, 1.01, 0.99, 1.00]] * 2), ten).within
    assert not judge_runs([1.0, 1.2, 0.8, 1.1], [1.0, 1.3, 0.9, 1.1], ten).within  # the same means, too noisy


def test_judge_runs_batches_and_needs_two_baseline_runs():
    rng = np.random.default_rng(0)
    base = rng.normal(100, 1, (50, 5))
    assert judge_runs(base, base.mean(axis=-1) * 1.3, JOULES).regression.all()
    assert judge_runs(base, rng.normal(100, 1, (50, 2)), JOULES).regression.shape == (50,)
    with pytest.raises(ValueError, match="at least two baseline runs"):
        judge_runs([100.0], 120.0, JOULES)


def test_describe_test():
    assert describe_test(1) == f"one-sided Mann-Whitney U, alpha 0.05; {ONE_BASELINE_RUN}"
    assert "over 5 baseline runs" in describe_test(5)
    assert "2+2 runs" in describe_test(2, 2)


# ---------------------------------------------------------------------------- the property


finite = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
fractions = st.floats(min_value=0.0, max_value=1.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(finite, min_size=2, max_size=10), fractions, st.sampled_from(["joules:0%", "joules:5%", "time:0.1%"]))
def test_a_run_inside_the_baseline_runs_spread_never_fails(means, where, expr):
    low, high = min(means), max(means)
    current = min(max(low + where * (high - low), low), high)
    threshold = parse_threshold(expr)
    assert not judge_runs(means, current, threshold).regression
    pool = [run_record(m) for m in means]
    assert compare_benchmark("b", pool, run_record(current), [threshold]).verdict != "REGRESSION"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=10), fractions)
def test_an_accuracy_inside_the_baseline_runs_spread_never_fails(accuracies, where):
    low, high = min(accuracies), max(accuracies)
    current = min(max(low + where * (high - low), low), high)
    pool = [run_record(100.0, accuracy=a) for a in accuracies]
    result = compare_benchmark("b", pool, run_record(100.0, accuracy=current), parse_thresholds("accuracy:0pt"))
    assert result.verdict != "REGRESSION"


# ---------------------------------------------------------------------------- pooled comparisons


def test_pooled_compare_records_and_lines():
    pool = [
        {"t.py::b": run_record(100 * s, name="t.py::b"), "t.py::c": run_record(50 * s, name="t.py::c")}
        for s in (1.0, 1.02, 0.98, 1.01, 0.99)
    ]
    current = {"t.py::b": run_record(130, name="t.py::b"), "t.py::c": run_record(50.5, name="t.py::c")}
    results = compare_records(pool, current, parse_thresholds("joules:10%"))
    assert [(r.fullname, r.verdict) for r in results] == [("t.py::b", "REGRESSION"), ("t.py::c", "ok")]
    joules = results[0].metrics["joules"]
    assert joules.baseline_runs == 5 and joules.baseline == pytest.approx(100)
    (line,) = regression_lines(results)
    assert line.startswith("t.py::b: joules 100 J -> 130 J (+30.0%), limit joules:10%, p=")
    assert "(between-run t, 5 baseline runs, bound 10" in line


def test_per_call_run_means_with_other_calls_per_round():
    pool = [run_record(1.0, iterations=n) for n in (3, 5, 8)]
    assert compare_benchmark("b", pool, run_record(1.0, iterations=13), parse_thresholds("joules:5%")).verdict == "ok"


def test_a_benchmark_in_one_baseline_run_only_says_so():
    pool = [{"t.py::b": run_record(100)}, {}]
    (result,) = compare_records(pool, {"t.py::b": run_record(101)}, parse_thresholds("joules:5%"))
    assert result.verdict == "ok"
    assert f"only one of the 2 baseline runs has it: {ONE_BASELINE_RUN}" in result.notes
    no_time = [run_record(100), run_record(100)]
    no_time[1].time = None
    result = compare_benchmark("b", no_time, run_record(100), parse_thresholds("time:5%"))
    assert f"time: only one baseline run has it: {ONE_BASELINE_RUN}" in result.notes


# ---------------------------------------------------------------------------- energy to a target


TARGET = parse_thresholds("joules_to_target:10%")


def test_target_record_reaches_the_comparison():
    record = run_record(100, target=(True, 7, 10))
    assert record.to_target == TargetResult(
        reached=True,
        rounds=7,
        max_rounds=10,
        joules=pytest.approx(700),
        seconds=pytest.approx(0.7),
        metric="accuracy",
        target=0.9,
        direction="at_least",
    )
    assert record.samples("joules_to_target").mean == pytest.approx(700)
    assert run_record(100, target=(False, 10, 10)).samples("joules_to_target") is None


def test_missing_a_target_the_baseline_reached_is_a_regression():
    result = compare_benchmark(
        "t.py::b", run_record(100, target=(True, 7, 10)), run_record(100, target=(False, 10, 10)), TARGET
    )
    assert result.verdict == "REGRESSION"
    (line,) = regression_lines([result])
    assert line == (
        "t.py::b: joules_to_target: target not reached in 10 rounds (baseline reached it with 700 J), "
        "limit joules_to_target:10%"
    )
    not_gated = compare_benchmark(
        "b",
        run_record(100, target=(True, 7, 10)),
        run_record(100, target=(False, 10, 10)),
        parse_thresholds("joules:5%"),
    )
    assert not_gated.verdict == "ok"


def test_target_one_value_per_run():
    base = run_record(100, target=(True, 7, 20))
    assert compare_benchmark("b", base, run_record(100, target=(True, 8, 20)), TARGET).verdict == "REGRESSION"  # +14%
    same = compare_benchmark("b", base, run_record(100, target=(True, 7, 20)), TARGET)
    assert same.verdict == "ok" and not any("threshold only" in n for n in same.notes)
    assert compare_benchmark("b", base, run_record(100, target=(True, 5, 20)), TARGET).verdict == "improved"


def test_target_pooled_across_baseline_runs():
    pool = [run_record(100, target=(True, n, 20)) for n in (6, 7, 8, 7)]
    assert compare_benchmark("b", pool, run_record(100, target=(True, 8, 20)), TARGET).verdict == "ok"  # in range
    heavy = compare_benchmark("b", pool, run_record(100, target=(True, 12, 20)), TARGET)
    assert heavy.verdict == "REGRESSION" and heavy.metrics["joules_to_target"].bound is not None


def test_target_missed_by_some_baseline_runs_is_not_a_regression():
    pool = [run_record(100, target=(True, 7, 10)), run_record(100, target=(False, 10, 10))]
    result = compare_benchmark("b", pool, run_record(100, target=(False, 10, 10)), TARGET)
    assert result.verdict != "REGRESSION"
    assert "joules_to_target: target not reached in the current run(s), nor in every baseline run" in result.notes


def test_target_reached_where_no_baseline_run_did_is_an_improvement():
    result = compare_benchmark(
        "b", run_record(100, target=(False, 10, 10)), run_record(100, target=(True, 9, 10)), TARGET
    )
    assert result.verdict == "improved"
    neither, note = compare_targets([TargetResult(False, 10, 10, 1.0)], [TargetResult(False, 10, 10, 1.0)], None)
    assert neither is None and note == "joules_to_target: target reached in neither run"


def test_target_not_recorded_in_the_baseline():
    result = compare_benchmark("b", run_record(100), run_record(100, target=(True, 7, 10)), TARGET)
    assert "joules_to_target: not recorded in the baseline" in result.notes


@pytest.mark.parametrize(
    "to_target, reason",
    [
        ("reached", "it is a str, not an object"),
        ({"reached": "yes", "joules": 1.0}, "'reached' is a str, not true or false"),
        ({"reached": True, "joules": float("nan")}, "'joules' is not a finite number"),
        ({"reached": True, "joules": -1.0}, "'joules' -1 is outside 0.."),
        ({"reached": True, "joules": 5.0, "rounds": 0}, "'rounds' is 0, not a whole number"),
    ],
)
def test_unusable_target_records_are_named_not_compared(to_target, reason):
    energy = records.energy_record(readings([100.0] * 3))
    energy["to_target"] = to_target
    record = record_from("t.py::b", {"energy": energy}, None)
    assert record.to_target is None and reason in record.invalid["joules_to_target"]
    result = compare_benchmark("t.py::b", run_record(100, target=(True, 7, 10)), record, TARGET)
    assert result.verdict == "no data"
    assert any(n.startswith("joules_to_target: no data in the current run ('to_target': ") for n in result.notes)
