"""The gate's warnings that a pooled baseline cannot tell a threshold-size change: speed drift between sessions
(``machine_info.energy.speed``) and baseline runs that spread beyond the threshold. Figures from the saved runs
only; nothing here depends on how fast this machine is."""

from __future__ import annotations

import json

import hypothesis  # noqa: F401  loaded once: pytester's in-process runs would re-import it every run
import pytest
import scipy.stats  # noqa: F401  its C extensions cannot be imported twice in one process

from energy_bench.meters import speed
from energy_bench.runs import drift
from tests.core import test_gate_pool as gate_pool


def machine(seconds):
    return {"speed": {"method": speed.METHOD, "seconds": seconds, "start": None, "end": None}}


def test_a_probe_times_the_reference_loop_with_the_clock_given():
    ticks = iter(range(100))
    probe = speed.probe_speed(repeats=5, clock=lambda: next(ticks) * 0.5)
    assert probe.seconds == 0.5 and probe.spread == 0.0
    described = speed.describe_session(probe, speed.SpeedProbe(1.5, 0.1))
    assert described["seconds"] == 1.0 and described["end"] == {"seconds": 1.5, "spread": 0.1}
    assert speed.describe_session(probe, None)["end"] is None


def test_no_note_when_sessions_ran_alike():
    baselines = [machine(s) for s in (1.00, 1.01, 0.99, 1.02)]
    assert drift.speed_drift_note(baselines, machine(1.02), 10.0) is None


@pytest.mark.parametrize("current, word", [(1.08, "longer"), (0.93, "less")])
def test_a_session_slower_or_faster_by_half_the_threshold_is_said(current, word):
    note = drift.speed_drift_note([machine(s) for s in (1.0, 1.0, 1.01)], machine(current), 10.0)
    assert note is not None
    assert f"% {word} than the median of 3 baseline session(s)" in note
    assert "energy-bench ab" in note


def test_baselines_that_spread_among_themselves_are_said():
    note = drift.speed_drift_note([machine(s) for s in (1.0, 1.0, 1.12)], machine(1.0), 10.0)
    assert note is not None and "they spread 12.0 %" in note


@pytest.mark.parametrize(
    "baselines, current, percent",
    [
        ([{}], machine(1.5), 10.0),  # runs saved before the probe existed
        ([machine(1.0)], None, 10.0),  # nothing measured this session
        ([machine(1.0)], machine(1.5), None),  # no relative joules threshold
        ([machine("fast")], machine(1.5), 10.0),  # a hand-edited file
        ([machine(float("nan"))], machine(1.5), 10.0),
        ([machine(0)], machine(1.5), 10.0),
    ],
)
def test_no_note_without_comparable_figures(baselines, current, percent):
    assert drift.speed_drift_note(baselines, current, percent) is None


#: the fixture of the pooled gate's tests: a project with a fake meter whose sessions differ by SPEED
pool_project = gate_pool.project


def run(pytester, monkeypatch, *args, **env):
    return gate_pool.run(pytester, monkeypatch, "-k", "test_train", *args, **env)


def saved_runs(pytester):
    return sorted(pytester.path.glob(".benchmarks/*/*.json"))


def test_each_saved_run_carries_its_session_speed(pool_project, monkeypatch):
    assert run(pool_project, monkeypatch, "--benchmark-autosave").ret == 0
    (path,) = saved_runs(pool_project)
    saved = json.loads(path.read_text())["machine_info"]["energy"]["speed"]
    assert saved["method"] == speed.METHOD
    assert saved["seconds"] > 0


def test_the_pooled_gate_says_when_this_session_ran_at_another_speed(pool_project, monkeypatch):
    for seed in range(3):
        assert run(pool_project, monkeypatch, "--benchmark-autosave", SEED=seed).ret == 0
    for path in saved_runs(pool_project):  # baselines whose reference loop took far longer than any session does
        data = json.loads(path.read_text())
        data["machine_info"]["energy"]["speed"]["seconds"] = 1000.0
        path.write_text(json.dumps(data))
    result = run(pool_project, monkeypatch, "--energy-compare=last:3", "--energy-compare-fail=joules:10%", SEED=7)
    assert result.ret == 0  # a note, not a verdict
    result.stdout.fnmatch_lines(
        ["  note: speed drift: this session's reference loop took * % less than the median of 3 baseline session(s)*"]
    )


def test_the_pooled_gate_says_when_the_baselines_spread_beyond_the_threshold(pool_project, monkeypatch):
    for seed, session_speed in enumerate((1.0, 1.3, 0.8, 1.2)):
        assert run(pool_project, monkeypatch, "--benchmark-autosave", SEED=seed, SPEED=session_speed).ret == 0
    result = run(pool_project, monkeypatch, "--energy-compare=last:4", "--energy-compare-fail=joules:5%", SEED=7)
    result.stdout.fnmatch_lines(
        [
            "  note: test_work.py::test_train: the baseline runs' joules spread so much between runs that only a "
            "change above * % can fail (threshold 5 %)"
        ]
    )
    steady = run(pool_project, monkeypatch, "--energy-compare=last:1", "--energy-compare-fail=joules:5%", SEED=7)
    assert "spread so much" not in steady.stdout.str()
