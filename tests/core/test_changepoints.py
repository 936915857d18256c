"""history.changepoints.detect on synthetic series built with the product's own record and parse functions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from energy_bench.history import changepoints
from energy_bench.history.accepted import Accepted
from energy_bench.history.changepoints import commit_boundaries, detect, ratio_interval, snap
from energy_bench.history.series import Series, build_series
from energy_bench.meters.base import Reading, Source
from energy_bench.runs import record as records
from energy_bench.runs.parse import run_from_json

BENCH = "t.py::test_loop"
MACHINE = "Linux-CPython-3.11-64bit"


def saved_run(number: int, joules: float, accuracy: float | None = None, commit: str | None = None, rounds: int = 3):
    """One saved session: ``rounds`` rounds around ``joules`` (0.5 % apart), as pytest-benchmark saves it."""
    per_round = [joules * (1 + 0.005 * (i - rounds // 2)) for i in range(rounds)]
    readings = [Reading({"cpu": v}, 0.1, Source.ESTIMATED, "estimate") for v in per_round]
    extra = {"energy": records.energy_record(readings)}
    if accuracy is not None:
        extra["accuracy"] = accuracy
    commit = commit or f"{number:040x}"
    when = f"2026-01-01T00:{number // 60:02d}:{number % 60:02d}"
    data = {
        "benchmarks": [{"fullname": BENCH, "name": BENCH, "extra_info": extra, "stats": None}],
        "commit_info": {"id": commit, "time": when, "branch": "main"},
        "datetime": when,
    }
    run = run_from_json(data, f"{number:04d}_{commit[:8]}")
    run.machine = MACHINE
    return run


def series_of(values, metric="joules", **kwargs):
    if metric == "accuracy":
        runs = [saved_run(i, 1.0, accuracy=v, **kwargs) for i, v in enumerate(values)]
    else:
        runs = [saved_run(i, v, **kwargs) for i, v in enumerate(values)]
    (series,) = build_series(runs, metric)
    return series


def noisy(n, seed, level=1.0, spread=0.01):
    return level * (1 + spread * np.random.default_rng(seed).standard_normal(n))


def test_a_planted_step_is_found_at_its_commit():
    values = noisy(40, 1)
    values[23:] *= 1.10
    series = series_of(values)
    (change,) = detect(series)
    assert change.index == 23
    assert change.before_commit == series.points[22].commit and change.after_commit == series.points[23].commit
    assert change.direction == "regression" and not change.accepted
    assert change.low < change.change < change.high and change.low > 0.05
    assert change.p_value < 1e-6 and (change.runs_before, change.runs_after) == (23, 17)
    assert change.mean_after / change.mean_before - 1 == pytest.approx(change.change)


@pytest.mark.parametrize("seed", range(20))
def test_no_change_on_pure_noise(seed):
    assert detect(series_of(noisy(40, 100 + seed, spread=0.02))) == []


def test_a_drift_is_not_reported_as_steps():
    values = np.linspace(1.0, 1.4, 40) * (1 + 0.005 * np.random.default_rng(7).standard_normal(40))
    assert len(detect(series_of(values))) <= 1


def test_a_step_in_a_drift_is_still_found():
    values = np.linspace(1.0, 1.05, 40) * (1 + 0.005 * np.random.default_rng(8).standard_normal(40))
    values[20:] *= 1.15
    assert [c.index for c in detect(series_of(values))] == [20]


def test_lower_accuracy_is_a_regression_lower_joules_an_improvement():
    accuracy = np.clip(noisy(20, 3, level=0.9, spread=0.002), 0, 1)
    accuracy[10:] -= 0.1
    (drop,) = detect(series_of(accuracy, "accuracy"))
    assert drop.direction == "regression" and drop.index == 10
    joules = noisy(20, 4)
    joules[12:] *= 0.8
    (faster,) = detect(series_of(joules))
    assert faster.direction == "improvement" and faster.change < 0 and faster.high < 0


def test_min_change_and_alpha_decide():
    values = noisy(40, 5, spread=0.005)
    values[20:] *= 1.03
    assert detect(series_of(values)) == []  # significant, but under 5 %
    assert [c.index for c in detect(series_of(values), min_change=0.02)] == [20]
    assert detect(series_of(values), min_change=0.02, alpha=1e-300) == []


def test_an_accepted_change_is_shown_not_open():
    values = noisy(30, 6)
    values[15:] *= 1.2
    series = series_of(values)
    mark = Accepted(BENCH, "*", "joules", series.points[15].commit[:10], reason="bigger model")
    (change,) = detect(series, accepted=[mark])
    assert change.accepted and change.index == 15
    other = Accepted(BENCH, MACHINE, "time", series.points[15].commit)
    assert not detect(series, accepted=[other])[0].accepted  # another metric's mark


def test_two_changes_a_regression_and_its_fix():
    values = noisy(40, 9)
    values[15:25] *= 1.25
    changes = detect(series_of(values))
    assert [(c.index, c.direction) for c in changes] == [(15, "regression"), (25, "improvement")]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_too_short_to_say_anything(n):
    assert detect(series_of([1.0, 1.0, 2.0, 2.0][:n])) == []
    assert detect(Series(BENCH, MACHINE, "joules")) == []


def test_one_outlying_session_is_not_a_change():
    values = list(noisy(30, 10))
    assert detect(series_of([*values, 1.5])) == []  # at the end: beside the last normal run it is no level
    assert detect(series_of([*values[:15], 1.5, *values[15:]])) == []
    assert detect(series_of([*values[:15], 1.5, 1.0, 1.5, *values[15:]])) == []


def test_a_change_at_the_newest_commits_is_confirmed_by_a_few_runs():
    values = list(noisy(30, 12))
    found = [detect(series_of([*values, *noisy(k, 13, 1.1)])) for k in range(1, 7)]
    first = next(k for k, changes in enumerate(found, 1) if changes)
    assert 2 <= first <= 5
    assert all([c.index for c in changes] == [30] for changes in found[first - 1 :])


def test_identical_values_and_runs_of_one_commit():
    assert detect(series_of([0.9] * 12, "accuracy")) == []
    (step,) = detect(series_of([0.9] * 6 + [0.8] * 6, "accuracy"))
    assert step.index == 6 and step.p_value < 1e-20
    assert step.low == pytest.approx(-1 / 9) and step.high == pytest.approx(-1 / 9)
    # runs 0-5 at commit a, 6-11 at commit b: a boundary the search puts inside a commit moves to the commit's start
    runs = [saved_run(i, 1.0 if i < 6 else 1.3, commit=("a" if i < 6 else "b") * 40) for i in range(12)]
    (series,) = build_series(runs, "joules")
    assert commit_boundaries(series) == [6]
    assert snap(5, commit_boundaries(series)) == 6 and snap(7, commit_boundaries(series)) == 6
    assert [c.index for c in detect(series)] == [6]


def test_an_outlying_session_beside_the_step_does_not_move_it():
    # three runs per commit, a +10 % step at commit 7, and one run of commit 6 a fifth slow: least squares would
    # rather start the new level at commit 6 (its three runs cost less there than the one outlier costs before)
    rng = np.random.default_rng(5)
    values, commits = [], []
    for c in range(14):
        for r in range(3):
            slow = 1.2 if (c, r) == (6, 1) else 1.0
            values.append((1.1 if c >= 7 else 1.0) * slow * (1 + 0.002 * rng.standard_normal()))
            commits.append(f"{c:040x}")
    runs = [saved_run(i, v, commit=commit) for i, (v, commit) in enumerate(zip(values, commits))]
    (series,) = build_series(runs, "joules")
    allowed = commit_boundaries(series)
    assert [snap(b, allowed) for b in changepoints.search(np.array(values))] == [18]  # commit 6: off by one
    (change,) = detect(series)
    assert change.index == 21 and change.after_commit == f"{7:040x}" and change.before_commit == f"{6:040x}"
    assert change.direction == "regression" and change.change == pytest.approx(0.1, abs=0.02)


def test_the_interval_is_fieller_s_and_covers():
    # coverage of the ratio of two normal means at 95 %: the interval holds the true ratio about 95 % of the time
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(2000):
        before, after = rng.normal(10, 1, 8), rng.normal(12, 1, 6)
        result = stats.ttest_ind(after, before, equal_var=False)
        low, high = ratio_interval(before.mean(), after.mean(), before.var(ddof=1) / 8, after.var(ddof=1) / 6,
                                   result.df, 0.95)  # fmt: skip
        covered += low <= 0.2 <= high
    assert 0.93 <= covered / 2000 <= 0.97
    assert ratio_interval(0.0, 1.0, 0.2, 0.2, 8, 0.95) == (-math.inf, math.inf)
    # without spread in the mean before, it is the t interval of the difference divided by that mean
    low, high = ratio_interval(10.0, 12.0, 0.0, 1 / 6, 10, 0.95)
    half = stats.t.ppf(0.975, 10) * math.sqrt(1 / 6) / 10
    assert (low, high) == pytest.approx((0.2 - half, 0.2 + half))


def test_bad_options():
    with pytest.raises(ValueError):
        detect(series_of([1.0] * 5), alpha=0)
    with pytest.raises(ValueError):
        detect(series_of([1.0] * 5), min_change=-0.1)


@pytest.mark.parametrize("seed", range(6))
def test_the_search_is_ruptures_least_squares_segmentation(seed):
    """The C kernel search with the linear kernel answers what ruptures' Pelt with the l2 cost does."""
    import ruptures

    rng = np.random.default_rng(seed)
    values = rng.normal(1.0, 0.02, 60) * np.where(np.arange(60) >= 10 + 6 * seed, 1.0 + 0.03 * seed, 1.0)
    penalty = changepoints.PENALTY * changepoints.noise(values) ** 2 * math.log(len(values))
    pelt = ruptures.Pelt(model="l2", min_size=changepoints.MIN_SEGMENT, jump=1).fit(values.reshape(-1, 1))
    assert changepoints.search(values) == [int(b) for b in pelt.predict(pen=penalty)[:-1]]
