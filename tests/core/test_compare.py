"""Threshold expressions, the significance test and verdicts, on hand-made records."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from energy_bench.runs.compare import (
    METRICS,
    THRESHOLD_ONLY,
    Threshold,
    ThresholdError,
    can_test,
    change_percent,
    compare_benchmark,
    compare_records,
    compatibility_problems,
    judge_rounds,
    min_pvalue,
    parse_threshold,
    parse_thresholds,
    regression_lines,
)
from energy_bench.runs.parse import BenchRecord, Samples

# ---------------------------------------------------------------------------- parser


@pytest.mark.parametrize(
    "text, expected",
    [
        ("joules:5%", [Threshold("joules", 5.0, "%")]),
        ("net_joules:2.5%", [Threshold("net_joules", 2.5, "%")]),
        ("time:10%", [Threshold("time", 10.0, "%")]),
        ("accuracy:0.5pt", [Threshold("accuracy", 0.5, "pt")]),
        ("accuracy:1%", [Threshold("accuracy", 1.0, "%")]),
        (" joules : .5% , accuracy:1pt ", [Threshold("joules", 0.5, "%"), Threshold("accuracy", 1.0, "pt")]),
    ],
)
def test_parse_valid(text, expected):
    assert list(parse_thresholds(text)) == expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "no threshold"),
        ("joules", "cannot parse"),
        ("joules:5", "cannot parse"),
        ("joules:-5%", "cannot parse"),
        ("joules:abc%", "cannot parse"),
        ("watts:5%", "unknown metric 'watts'"),
        ("joules:5pt", "only apply to accuracy"),
        ("joules:5%,,time:1%", "empty expression"),
        ("joules:5%,joules:6%", "given twice"),
        ("joules:1e3%", "cannot parse"),
    ],
)
def test_parse_invalid(text, fragment):
    with pytest.raises(ThresholdError, match=fragment) as info:
        parse_thresholds(text)
    assert "\n" not in str(info.value)


amounts = st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False, allow_infinity=False)
units = st.sampled_from(sorted((m, u) for m, metric in METRICS.items() for u in metric.units))


@given(st.lists(st.tuples(units, amounts), min_size=1, max_size=4, unique_by=lambda t: t[0][0]))
def test_parse_round_trip(items):
    text = ",".join(f"{metric}:{amount}{unit}" for (metric, unit), amount in items)
    parsed = parse_thresholds(text)
    assert [(t.metric, t.unit) for t in parsed] == [mu for mu, _ in items]
    assert [t.amount for t in parsed] == [pytest.approx(float(a)) for _, a in items]
    assert parse_thresholds(",".join(str(t) for t in parsed)) == parsed


@given(st.text(max_size=30))
def test_parse_garbage_fails_cleanly(text):
    try:
        parsed = parse_thresholds(text)
    except ThresholdError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert parsed and all(t.metric in METRICS and math.isfinite(t.amount) for t in parsed)


# ---------------------------------------------------------------------------- direction and test


def test_worse_by_direction():
    joules, accuracy_pt, accuracy_pct = (parse_threshold(e) for e in ("joules:5%", "accuracy:1pt", "accuracy:1%"))
    assert joules.worse_by(100, 110) == pytest.approx(10)
    assert joules.worse_by(100, 90) == pytest.approx(-10)
    assert accuracy_pt.worse_by(0.90, 0.88) == pytest.approx(2)
    assert accuracy_pct.worse_by(0.80, 0.72) == pytest.approx(10)
    assert joules.worse_by(0, 0) == 0 and joules.worse_by(0, 1) == math.inf


def test_judge_rounds_needs_threshold_and_significance():
    joules = parse_threshold("joules:5%")
    base = [100, 101, 99, 100.5, 99.5]
    clear = judge_rounds(base, [130, 131, 129, 130.5, 129.5], joules)
    assert clear.regression and clear.p_worse == pytest.approx(1 / 252)
    small = judge_rounds(base, [103, 104, 102, 103.5, 102.5], joules)  # significant but within 5%
    assert not small.regression and small.p_worse < 0.05
    noisy = judge_rounds(base, [60, 200, 80, 150, 90], joules)  # +16% mean but rounds overlap
    assert noisy.worse_by > 5 and not noisy.regression
    better = judge_rounds(base, [70, 71, 69, 70.5, 69.5], joules)
    assert better.improvement and not better.regression


def test_judge_rounds_batches():
    rng = np.random.default_rng(0)
    base = rng.normal(100, 3, (50, 5))
    judged = judge_rounds(base, base * 1.3, parse_threshold("joules:5%"))
    assert judged.regression.shape == (50,) and judged.regression.all()


def test_can_test():
    assert can_test(5, 5) and can_test(3, 3)
    assert not can_test(2, 2) and not can_test(1, 10)


# ---------------------------------------------------------------------------- verdicts


def record(name="b", joules=100.0, rounds=5, accuracy=None, spread=0.5, data=True, **kw):
    values = tuple(joules + spread * (i - rounds // 2) for i in range(rounds))
    samples = Samples(mean=sum(values) / rounds, stddev=spread, rounds=rounds, data=values if data else None)
    time = Samples(
        mean=1.0, stddev=0.01, rounds=rounds, data=tuple(1.0 + 0.01 * i for i in range(rounds)) if data else None
    )
    return BenchRecord(
        name,
        joules=samples,
        time=time,
        accuracy=accuracy,
        source=kw.get("source", "measured"),
        meter=kw.get("meter", "nvml-counter"),
    )


JOULES_ACC = parse_thresholds("joules:5%,accuracy:1pt")


def test_verdicts():
    base = record(accuracy=0.90)
    assert compare_benchmark("b", base, record(accuracy=0.90), JOULES_ACC).verdict == "ok"
    heavy = compare_benchmark("b", base, record(joules=130, accuracy=0.90), JOULES_ACC)
    assert heavy.verdict == "REGRESSION"
    assert heavy.metrics["joules"].change_percent == pytest.approx(30)
    assert compare_benchmark("b", base, record(joules=70, accuracy=0.90), JOULES_ACC).verdict == "improved"
    drop = compare_benchmark("b", base, record(accuracy=0.88), JOULES_ACC)
    assert drop.verdict == "REGRESSION" and drop.metrics["accuracy"].p_worse is None
    assert compare_benchmark("b", None, record(), JOULES_ACC).verdict == "new"
    assert compare_benchmark("b", base, None, JOULES_ACC).verdict == "missing"


def test_threshold_only_without_rounds():
    result = compare_benchmark("b", record(data=False), record(joules=106, data=False), parse_thresholds("joules:5%"))
    assert result.verdict == "REGRESSION"
    assert result.metrics["joules"].p_worse is None
    assert f"joules: {THRESHOLD_ONLY}" in result.notes


def test_too_few_rounds_says_so():
    result = compare_benchmark("b", record(rounds=2), record(joules=120, rounds=2), parse_thresholds("joules:5%"))
    assert result.verdict == "REGRESSION"
    assert "2+2 rounds cannot reach" in result.metrics["joules"].note


def test_no_data_when_current_meter_failed():
    current = BenchRecord("b", time=record().time, error="NVML lost the GPU")
    result = compare_benchmark("b", record(), current, parse_thresholds("joules:5%"))
    assert result.verdict == "no data"
    assert any("NVML lost the GPU" in n for n in result.notes)
    assert any("joules: not recorded in the current run" in n for n in result.notes)


def test_compare_records_matches_by_fullname_and_names_regressions():
    base = {"a": record("a"), "b": record("b", joules=50), "gone": record("gone")}
    cur = {"b": record("b", joules=65), "a": record("a"), "fresh": record("fresh")}
    results = compare_records(base, cur, parse_thresholds("joules:5%"))
    assert [(r.fullname, r.verdict) for r in results] == [
        ("b", "REGRESSION"),
        ("a", "ok"),
        ("fresh", "new"),
        ("gone", "missing"),
    ]
    (line,) = regression_lines(results)
    assert line.startswith("b: joules 50 J -> 65 J (+30.0%), limit joules:5%, p=0.00397")


def test_compatibility_problems():
    base = {"a": record("a")}
    assert compatibility_problems(base, {"a": record("a")}) == []
    estimated = {"a": record("a", source="estimated", meter="estimate")}
    (problem,) = compatibility_problems(base, estimated)
    assert "measured (nvml-counter)" in problem and "estimated (estimate)" in problem
    assert "different meters" in compatibility_problems(base, {"a": record("a", meter="rapl")})[0]
    devices = compatibility_problems(base, base, {"devices": [{"name": "H100"}]}, {"devices": ["A100"]})
    assert devices == ["different devices: baseline H100, current A100"]
    nvml = {"meter": "nvml-counter", "gpus": [{"index": 0, "name": "NVIDIA H100"}]}
    composite = {"meter": "nvml-counter+rapl", "parts": [{"gpus": [{"name": "NVIDIA A100"}]}, {"zones": []}]}
    (problem,) = compatibility_problems(base, base, nvml, composite)
    assert problem == "different devices: baseline gpu NVIDIA H100, current gpu NVIDIA A100"
    assert compatibility_problems(base, base, nvml, {"gpus": [{"index": 1, "name": "NVIDIA H100"}]}) == []
    assert compatibility_problems(base, base, nvml, {"meter": "rapl", "zones": []}) == []  # nothing to compare


def test_metric_neither_run_records_is_not_noted():
    # inference benchmarks record no accuracy: gating on accuracy must not add a note to each of them
    result = compare_benchmark("b", record(), record(), JOULES_ACC)
    assert result.verdict == "ok"
    assert not any("accuracy" in n for n in result.notes)
    one_sided = compare_benchmark("b", record(), record(accuracy=0.9), JOULES_ACC)
    assert "accuracy: not recorded in the baseline" in one_sided.notes


# ---------------------------------------------------------------------------- numerics at the edges


@pytest.mark.parametrize("n", [514, 515, 600, 5_000, 1_000_000])
def test_min_pvalue_never_overflows(n):
    assert 0.0 <= min_pvalue(n, n) < 1e-100
    assert can_test(n, n) and can_test(2, n)


def test_min_pvalue_exact_where_small():
    assert min_pvalue(5, 5) == 1 / 252 and min_pvalue(3, 3) == 1 / 20
    assert min_pvalue(500, 501) == pytest.approx(1 / math.comb(1001, 501), rel=1e-9)  # log space: same value


def test_many_rounds_compare():
    rng = np.random.default_rng(1)
    base = Samples(mean=100.0, data=tuple(rng.normal(100, 3, 600)))
    heavier = Samples(mean=110.0, data=tuple(rng.normal(110, 3, 600)))
    result = compare_benchmark("b", BenchRecord("b", joules=base), BenchRecord("b", joules=heavier), JOULES_ACC)
    assert result.verdict == "REGRESSION" and result.metrics["joules"].p_worse < 1e-10


def test_change_percent_is_relative_to_the_baseline_magnitude():
    assert change_percent(100, 110) == pytest.approx(10)
    assert change_percent(-10, -5) == pytest.approx(50)  # net joules rose from -10 J to -5 J: +50%
    assert change_percent(-10, -15) == pytest.approx(-50)
    assert change_percent(0, 0) == 0.0 and change_percent(0, 5) is None and change_percent(None, 5) is None
    assert change_percent(5e-324, 1e15) is None  # beyond a float: no percentage rather than inf


def test_negative_baseline_regression_line_has_the_right_sign():
    net = parse_thresholds("net_joules:5%")
    base = BenchRecord("b", net_joules=Samples(-10.0, data=(-10.2, -10.1, -10.0, -9.9, -9.8)))
    worse = BenchRecord("b", net_joules=Samples(-5.0, data=(-5.2, -5.1, -5.0, -4.9, -4.8)))
    result = compare_benchmark("b", base, worse, net)
    assert result.verdict == "REGRESSION" and result.metrics["net_joules"].ratio is None
    assert regression_lines([result]) == ["b: net_joules -10 J -> -5 J (+50.0%), limit net_joules:5%, p=0.00397"]
    assert compare_benchmark("b", worse, base, net).verdict == "improved"


def test_zero_baseline_shows_the_absolute_change():
    base, cur = record(joules=0.0, spread=0.0), record(joules=5.0, spread=0.5)
    result = compare_benchmark("b", base, cur, parse_thresholds("joules:5%"))
    joules = result.metrics["joules"]
    assert result.verdict == "REGRESSION" and joules.change_percent is None and joules.ratio is None
    (line,) = regression_lines([result])
    assert "0 J -> 5 J (+5 J, n/a%)" in line
    assert "inf" not in line and "nan" not in line


def test_unusable_metric_gives_no_data_with_a_note():
    bad = BenchRecord("b", time=record().time, invalid={"joules": "'mean' is not a finite number"})
    result = compare_benchmark("b", bad, record(), parse_thresholds("joules:5%,time:5%"))
    assert result.verdict == "no data"
    assert "joules: no data in the baseline ('mean' is not a finite number)" in result.notes
    assert not any("not recorded" in n for n in result.notes)
    regressed = compare_benchmark(
        "b",
        record(),
        BenchRecord("b", joules=record(joules=200).joules, invalid={"time": "x"}),
        parse_thresholds("joules:5%,time:5%"),
    )
    assert regressed.verdict == "REGRESSION" and "time: no data in the current run (x)" in regressed.notes
    with_accuracy = compare_benchmark("b", bad, record(accuracy=0.9), parse_thresholds("joules:5%,accuracy:1pt"))
    assert "accuracy: not recorded in the baseline" in with_accuracy.notes  # said of the other metric still
    ungated = compare_benchmark("b", bad, record(), parse_thresholds("time:5%"))
    assert ungated.verdict == "ok" and ungated.notes == []  # the run's notes name it; this verdict is not about it


@pytest.mark.parametrize(
    "machine",
    [
        {"gpus": 5},
        {"gpus": "H100"},
        {"gpus": [None, 3, {"name": ["x"]}, {"name": math.inf}]},
        {"devices": {"name": "H100"}},
        {"devices": [None, {"name": {"a": 1}}, 1.5]},
        {"cpu_model": ["EPYC"]},
        {"parts": 7},
        {"parts": [[1], "x", None]},
    ],
)
def test_machine_info_of_any_shape(machine):
    base = {"a": record("a")}
    nvml = {"gpus": [{"name": "H100"}]}
    problems = compatibility_problems(base, base, machine, nvml)
    assert all("\n" not in p and "inf" not in p for p in problems)
    assert compatibility_problems(base, base, machine, machine) == []


def test_deeply_nested_parts():
    machine: dict = {"gpus": [{"name": "H100"}]}
    for _ in range(5000):
        machine = {"parts": [machine]}
    base = {"a": record("a")}
    (problem,) = compatibility_problems(base, base, machine, {"gpus": [{"name": "A100"}]})
    assert problem == "different devices: baseline unreadable parts (nested too deeply), current gpu A100"
