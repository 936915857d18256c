"""energy()'s rounds: calls per round sized to the meter, warm-up, explicit iterations, energy to a target."""

from __future__ import annotations

import json

import pytest

from energy_bench.plugin.rounds import MAX_ITERATIONS, Target, calibrate

BASE = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--energy-meter=estimate")


class FakeRunner:
    """``runner(range(n))`` as pytest-benchmark's: n calls of ``per_call`` seconds each (the first one ``first``)."""

    def __init__(self, per_call: float, first: float | None = None):
        self.per_call, self.first, self.batches = per_call, first, []

    def __call__(self, loops: range) -> float:
        self.batches.append(len(loops))
        cold = self.first if self.first is not None and len(self.batches) == 1 else self.per_call
        return cold + self.per_call * (len(loops) - 1)


@pytest.mark.parametrize(
    "per_call, min_round, expected",
    [(0.01, 0.1, 10), (0.5, 0.1, 1), (0.001, 1.0, 1000), (0.03, 0.1, 4), (0.01, 0.0, 1)],
)
def test_calibrate_sizes_rounds_to_the_minimum(per_call, min_round, expected):
    assert calibrate(FakeRunner(per_call), min_round) == expected


def test_calibrate_is_not_fooled_by_a_cold_first_call():
    # A 50 ms first call of a 1 ms function must not make one call a round.
    runner = FakeRunner(0.001, first=0.05)
    assert calibrate(runner, 0.1) == 100
    assert len(runner.batches) >= 2


def test_calibrate_of_free_code_is_bounded():
    assert calibrate(FakeRunner(0.0), 0.1) == MAX_ITERATIONS


def test_target_records_what_it_saw():
    values = iter([0.5, 0.8, 0.95])
    target = Target(lambda: next(values), 0.9)
    assert [target(), target(), target()] == [False, False, True]
    assert target.values == [0.5, 0.8, 0.95]
    assert Target(lambda: 0.2, 0.3, at_least=False)() is True


ROUNDS_TEST = """
import time

calls = []

def work():
    calls.append(1)
    time.sleep(0.01)
    return len(calls)

def test_sized(energy):
    energy(work, rounds=3)
    energy.record(calls_made=len(calls))

def test_explicit(energy):
    calls.clear()
    energy(work, rounds=2, warmup_rounds=0, iterations=4)
    energy.record(calls_made=len(calls))
"""


def test_rounds_sized_to_the_minimum_round(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ROUNDS_TEST)
    result = pytester.runpytest(*BASE, "--energy-min-round-seconds=0.2", "--benchmark-json=out.json")
    assert result.ret == 0, result.stdout.str()
    benches = {b["name"]: b for b in json.loads((pytester.path / "out.json").read_text())["benchmarks"]}

    sized = benches["test_sized"]
    energy = sized["extra_info"]["energy"]
    # A 10 ms call needs several calls to fill a 0.2 s round (how many depends on the machine's load: the sizing
    # itself is tested with a fake runner above).
    assert energy["iterations"] == sized["stats"]["iterations"] >= 2
    assert energy["joules"]["rounds"] == 3 and sized["stats"]["rounds"] == 3
    assert energy["joules_per_call"]["mean"] == pytest.approx(energy["joules"]["mean"] / energy["iterations"])
    assert 0.009 < sized["stats"]["mean"] < 0.2  # pytest-benchmark's time stays per call, not per round

    explicit = benches["test_explicit"]
    assert explicit["extra_info"]["energy"]["iterations"] == 4
    assert explicit["extra_info"]["calls_made"] == 2 * 4  # no calibration, no warm-up
    result.stdout.fnmatch_lines(["*energy-bench: energy per call*", "*calls/round*"])


def test_one_warmup_round_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ROUNDS_TEST)
    result = pytester.runpytest(*BASE, "--energy-min-round-seconds=0", "--benchmark-json=out.json", "-k", "sized")
    assert result.ret == 0, result.stdout.str()
    bench = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]
    assert bench["extra_info"]["energy"]["iterations"] == 1
    assert bench["extra_info"]["calls_made"] == 1 + 3  # one warm-up round, three measured


TARGET_TEST = """
state = {"round": 0}

def train():
    state["round"] += 1

def test_reaches(energy):
    state["round"] = 0
    energy(train, rounds=10, iterations=1, until=energy.target(lambda: state["round"] / 4, at_least=0.75))
    energy.record(accuracy=state["round"] / 4)

def test_misses(energy):
    state["round"] = 0
    energy(train, rounds=3, iterations=1, until=energy.target(lambda: 0.1, at_least=0.9))

def test_plain_callable(energy):
    state["round"] = 0
    energy(train, rounds=5, iterations=1, warmup_rounds=0, until=lambda: state["round"] >= 2)
"""


def test_energy_to_a_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TARGET_TEST)
    result = pytester.runpytest(*BASE, "--benchmark-json=out.json")
    assert result.ret == 0, result.stdout.str()
    benches = {b["name"]: b for b in json.loads((pytester.path / "out.json").read_text())["benchmarks"]}

    reached = benches["test_reaches"]["extra_info"]["energy"]
    to_target = reached["to_target"]
    # one warm-up round first, so the measured rounds see round counts 2, 3: the target (3/4) is met in round 2
    assert to_target["reached"] is True and to_target["rounds"] == 2 and to_target["max_rounds"] == 10
    assert (to_target["metric"], to_target["target"], to_target["direction"]) == ("accuracy", 0.75, "at_least")
    assert to_target["curve"]["value"] == [0.5, 0.75]
    assert to_target["joules"] == pytest.approx(sum(reached["joules"]["data"]))
    assert to_target["curve"]["joules"][-1] == to_target["joules"]
    assert benches["test_reaches"]["stats"]["rounds"] == 2  # pytest-benchmark's statistics stay per round

    missed = benches["test_misses"]["extra_info"]["energy"]["to_target"]
    assert missed["reached"] is False and missed["rounds"] == 3 and missed["curve"]["value"] == [0.1] * 3

    plain = benches["test_plain_callable"]["extra_info"]["energy"]["to_target"]
    assert plain["reached"] is True and plain["rounds"] == 2 and "value" not in plain["curve"]
    result.stdout.fnmatch_lines(["*to target (J)*", "test_misses *not reached (3 rounds)*"])


@pytest.mark.parametrize(
    "call, message",
    [
        ("energy(work, iterations=0)", "energy(): iterations must be an int >= 1, got 0"),
        ("energy(work, until=3)", "energy(): until must be a callable returning true to stop, got int"),
        ("energy.target(lambda: 1)", "energy.target(): give exactly one of at_least= or at_most="),
        ("energy(work); energy(work)", "energy(): the benchmark of this test was already used in energy(...) mode"),
    ],
)
def test_bad_arguments_are_usage_errors(pytester: pytest.Pytester, call: str, message: str) -> None:
    pytester.makepyfile(f"def work():\n    pass\n\ndef test_bad(energy):\n    {call}\n")
    result = pytester.runpytest(*BASE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"*{message}*"])


def test_disabled_benchmarks_run_once_without_a_spurious_warning(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ROUNDS_TEST)
    result = pytester.runpytest(*BASE, "--benchmark-disable", "-k", "sized", "-rw")
    assert result.ret == 0, result.stdout.str()
    assert "was not used at all" not in result.stdout.str()
