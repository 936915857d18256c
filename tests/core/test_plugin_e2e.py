"""The plugin end to end through pytester: options, the JSON record, the table, faults, usage errors.

Runs pytest in-process (the installed entry point loads energy-bench and pytest-benchmark) with
the CPU-time estimate, which works everywhere; workloads are a few milliseconds per round.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from energy_bench.meters import MeterUnavailable, select_meter

BASE = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--energy-meter=estimate", "--benchmark-max-time=0.05")

ENERGY_TEST = """
    def work(n):
        return sum(i * i for i in range(n))

    def test_measured(energy):
        result = energy(work, 20000, rounds=4, warmup_rounds=1)
        energy.record(accuracy=0.93, loss=0.25, epochs=2)
        assert result == work(20000)

    def test_plain(benchmark):
        assert benchmark(work, 100) == work(100)
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*BASE, *args)


def benchmarks_by_name(path) -> tuple[dict, dict]:
    data = json.loads(path.read_text())
    return {b["name"]: b for b in data["benchmarks"]}, data["machine_info"]


def assert_samples(samples: dict, rounds: int) -> None:
    assert set(samples) == {"mean", "median", "min", "max", "stddev", "rounds", "data"}
    assert samples["rounds"] == rounds and len(samples["data"]) == rounds
    assert all(type(v) is float for v in samples["data"])
    assert samples["min"] <= samples["median"] <= samples["max"]
    assert samples["min"] <= samples["mean"] <= samples["max"]


def test_options_are_in_help_under_energy_bench(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["energy-bench: joules and accuracy for pytest-benchmark:", "*--energy-meter=*"])
    for flag in (
        "--energy-device",
        "--energy-gpus",
        "--energy-idle-seconds",
        "--energy-cpu-watts",
        "--energy-powercap-root",
    ):
        assert flag in result.stdout.str()


def test_json_record_table_and_plain_benchmark(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ENERGY_TEST)
    result = run(pytester, "--benchmark-json=out.json", "--energy-idle-seconds=0.05")
    assert result.ret == 0, result.stdout.str()
    benches, machine = benchmarks_by_name(pytester.path / "out.json")

    extra = benches["test_measured"]["extra_info"]
    record = extra["energy"]
    assert_samples(record["joules"], 4)
    assert_samples(record["net_joules"], 4)
    assert_samples(record["seconds"], 4)
    assert benches["test_measured"]["stats"]["rounds"] == 4  # warmup readings are discarded too
    assert record["source"] == "estimated" and record["meter"] == "estimate"
    assert list(record["domains"]) == ["cpu"] and type(record["domains"]["cpu"]) is float
    assert record["domains"]["cpu"] == pytest.approx(record["joules"]["mean"])
    assert type(record["mean_watts"]) is float and record["mean_watts"] >= 0
    assert (extra["accuracy"], extra["loss"], extra["epochs"]) == (0.93, 0.25, 2)
    # whichever CPU runs this: the run says which model, and each record its watts and CPU seconds
    model = machine["energy"]["estimate"]
    assert machine["energy"]["meter"] == "estimate" and machine["energy"]["cpu_watts"] == model["watts_per_cpu_second"]
    assert record["estimate"]["watts_per_cpu_second"] == model["watts_per_cpu_second"]
    assert record["estimate"]["cpu_seconds_per_call"] * model["watts_per_cpu_second"] == pytest.approx(
        record["joules_per_call"]["mean"]
    )
    assert set(machine["energy"]["idle_watts"]) == {"cpu"}
    assert 0 < machine["energy"]["session_seconds"] < 600  # the session's wall time until the save

    assert benches["test_plain"]["extra_info"] == {}  # plain benchmark: untouched
    assert benches["test_plain"]["stats"]["rounds"] > 4
    result.stdout.fnmatch_lines(
        [
            "*energy-bench: energy per call*",
            "name*time (mean)*energy (J/call, mean +- stddev)*net energy (J/call)*power (W)*accuracy*source",
            "test_measured *s *~*+-*~*93.00%*estimated",  # any time unit: the machine sets it
            "~ estimated, not measured: CPU time x * W per vCPU (*)",
        ]
    )
    assert "test_plain " not in result.stdout.str().split("energy per call")[1]


def test_each_measured_round_gets_its_own_window_and_warmups_none(pytester: pytest.Pytester) -> None:
    # A fake meter whose n-th window reads n joules over n seconds: the data shows which windows were kept.
    pytester.makeconftest("""
        import pytest
        from energy_bench.meters import Meter, Reading, Source

        class CountingMeter(Meter):
            name = "counting"

            def __init__(self):
                self.opened = 0

            def begin(self):
                self.opened += 1
                return self.opened

            def end(self, mark):
                note = ("window too short",) if mark == 1 else ()
                return Reading({"gpu0": float(mark), "cpu": 0.5}, float(mark), Source.MEASURED, self.name, note)

        @pytest.fixture(scope="session")
        def energy_meter():
            return CountingMeter()
    """)
    pytester.makepyfile("""
        def test_rounds(energy, energy_meter):
            calls = []
            assert energy(calls.append, "x", rounds=3, warmup_rounds=2) is None
            assert len(calls) == 5 and energy_meter.opened == 3
    """)
    result = run(pytester, "--benchmark-json=out.json")
    assert result.ret == 0, result.stdout.str()
    benches, _ = benchmarks_by_name(pytester.path / "out.json")
    record = benches["test_rounds"]["extra_info"]["energy"]
    assert record["joules"]["data"] == [1.5, 2.5, 3.5]
    assert record["seconds"]["data"] == [1.0, 2.0, 3.0]
    assert record["domains"] == {"cpu": 0.5, "gpu0": 2.0}
    assert record["mean_watts"] == pytest.approx(7.5 / 6.0)
    assert (record["source"], record["meter"], record["warnings"]) == ("measured", "counting", ["window too short"])
    result.stdout.fnmatch_lines(["test_rounds * 2.5 +- 1 * 1.25 * measured"])
    assert "estimated from CPU time" not in result.stdout.str()


def test_autosave_and_pytest_benchmark_compare_cli(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ENERGY_TEST)
    result = run(pytester, "--benchmark-autosave", "--benchmark-storage=file://./store")
    assert result.ret == 0, result.stdout.str()
    (saved,) = (pytester.path / "store").rglob("0001_*.json")
    benches, machine = benchmarks_by_name(saved)
    assert "data" not in benches["test_measured"]["stats"]  # autosave without --benchmark-save-data
    assert benches["test_measured"]["extra_info"]["energy"]["joules"]["rounds"] == 4
    assert "net_joules" not in benches["test_measured"]["extra_info"]["energy"]  # no idle baseline
    assert machine["energy"]["meter"] == "estimate"

    compare = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", str(saved)], capture_output=True, text=True, timeout=60
    )
    assert compare.returncode == 0, compare.stderr
    assert "test_measured" in compare.stdout and "test_plain" in compare.stdout


def test_benchmark_disable_just_runs_the_code(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_once(energy):
            calls = []
            assert energy(calls.append, 7, rounds=5, warmup_rounds=2) is None
            energy.record(accuracy=0.5)
            assert calls == [7]
    """)
    result = run(pytester, "--benchmark-disable")
    assert result.ret == 0, result.stdout.str()
    assert "energy per call" not in result.stdout.str()


def test_cprofile_run_is_not_counted_as_a_round(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ENERGY_TEST)
    result = run(pytester, "--benchmark-json=out.json", "--benchmark-cprofile=tottime")
    assert result.ret == 0, result.stdout.str()
    benches, _ = benchmarks_by_name(pytester.path / "out.json")
    assert benches["test_measured"]["extra_info"]["energy"]["joules"]["rounds"] == 4


def test_meter_failure_mid_window_marks_only_that_benchmark(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import pytest
        from energy_bench.meters import MeterError

        @pytest.fixture
        def broken_meter(energy_meter, monkeypatch):
            def end(mark):
                raise MeterError("NVML read failed at window end: GPU is lost")
            monkeypatch.setattr(energy_meter, "end", end)
    """)
    pytester.makepyfile("""
        import time

        def test_a(energy):
            energy(time.sleep, 0.001, rounds=3)

        def test_b(broken_meter, energy):
            energy(time.sleep, 0.001, rounds=3)
            energy.record(accuracy=0.8)

        def test_c(energy):
            energy(time.sleep, 0.001, rounds=3)
    """)
    result = run(pytester, "--benchmark-json=out.json")
    assert result.ret == 0, result.stdout.str()
    # the warning count is not asserted: a fresh venv adds unrelated ones (assertion rewriting, meter fallback)
    result.assert_outcomes(passed=3)
    assert result.stdout.str().count("EnergyBenchWarning: energy of") == 1  # only test_b lost its energy
    benches, _ = benchmarks_by_name(pytester.path / "out.json")
    assert benches["test_b"]["extra_info"]["energy"] == {
        "error": "NVML read failed at window end: GPU is lost",
        "meter": "estimate",
        "source": "estimated",
    }
    assert benches["test_b"]["extra_info"]["accuracy"] == 0.8
    assert benches["test_b"]["stats"]["rounds"] == 3  # the time is still measured and saved
    for name in ("test_a", "test_c"):
        assert benches[name]["extra_info"]["energy"]["joules"]["rounds"] == 3
    result.stdout.fnmatch_lines(["*test_b*failed: NVML read failed at window end: GPU is lost*"])
    result.stdout.fnmatch_lines(["*EnergyBenchWarning: energy of test_*.py::test_b not measured*"])


def test_table_prints_when_benchmark_compare_fail_trips(pytester: pytest.Pytester) -> None:
    test_file = """
        import time

        def test_sleep(energy):
            energy(time.sleep, {seconds}, rounds=3)
    """
    pytester.makepyfile(test_file.format(seconds=0.001))
    assert run(pytester, "--benchmark-autosave").ret == 0
    pytester.makepyfile(test_file.format(seconds=0.03))
    # in a subprocess: pytest-benchmark raises PerformanceRegression out of pytest.main
    result = pytester.runpytest_subprocess(*BASE, "--benchmark-compare", "--benchmark-compare-fail=mean:50%")
    assert result.ret == 1
    text = result.stdout.str() + result.stderr.str()
    assert "Performance has regressed" in text
    result.stdout.fnmatch_lines(["*energy-bench: energy per call*", "test_sleep *s *~*estimated"])
    assert "net energy" not in result.stdout.str()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--energy-meter=bogus",), "ERROR: --energy-meter: unknown meter 'bogus'*"),
        (("--energy-device=tpu",), "ERROR: --energy-device: unknown device 'tpu'*"),
        (("--energy-gpus=0,x",), "ERROR: --energy-gpus: '0,x' is not a comma-separated list*"),
        (
            ("--energy-powercap-root=does-not-exist",),
            "ERROR: --energy-powercap-root: does-not-exist is not a directory",
        ),
        (("--energy-idle-seconds=-1",), "ERROR: --energy-idle-seconds: '-1' must be at least 0 and at most 600"),
        (("--energy-cpu-watts=0",), "ERROR: --energy-cpu-watts: '0' must be greater than 0 and at most 1000"),
        (("--energy-cpu-watts=inf",), "ERROR: --energy-cpu-watts: 'inf' must be a finite number"),
        (("--energy-cpu-watts=5000",), "ERROR: --energy-cpu-watts: '5000' must be greater than 0 and at most 1000"),
        (("--energy-idle-seconds=inf",), "ERROR: --energy-idle-seconds: 'inf' must be a finite number"),
        (("--energy-idle-seconds=nan",), "ERROR: --energy-idle-seconds: 'nan' must be a finite number"),
        (("--energy-idle-seconds=1e9",), "ERROR: --energy-idle-seconds: '1e9' must be at least 0 and at most 600"),
        (("--energy-min-round-seconds=-inf",), "ERROR: --energy-min-round-seconds: '-inf' must be a finite number"),
        (
            ("--energy-min-round-seconds=61",),
            "ERROR: --energy-min-round-seconds: '61' must be at least 0 and at most 60",
        ),
        (("--energy-min-round-seconds=x",), "ERROR: --energy-min-round-seconds: 'x' is not a number"),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, args, message) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_named_meter_that_cannot_work_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.mkdir("empty-powercap")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--energy-meter=rapl", "--energy-powercap-root=empty-powercap"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --energy-meter=rapl: *"])


def test_nvml_without_nvml_is_a_usage_error_that_says_why(pytester: pytest.Pytester) -> None:
    try:
        select_meter("nvml").close()
    except MeterUnavailable as exc:
        reason = str(exc)
    else:
        pytest.skip("NVML works on this machine")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-meter=nvml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == f"ERROR: --energy-meter=nvml: {reason}"


def test_energy_given_a_non_callable_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_bad(energy):
            energy("train_one_epoch", rounds=2)

        def test_bad_accuracy(energy):
            energy(len, [1], rounds=2)
            energy.record(accuracy=93.0)

        def test_good(energy):
            energy(len, [1], rounds=2)
    """)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "energy(): expected a callable to measure, got str 'train_one_epoch'",
            "energy.record(): accuracy must be in 0..1 (a fraction, not a percent), got 93.0",
        ],
        consecutive=False,
    )
    assert "Traceback" not in result.stdout.str()


def test_cuda_device_without_cuda_fails_with_one_line(pytester: pytest.Pytester) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    pytester.makepyfile("""
        def test_device(energy_device):
            pass
    """)
    result = run(pytester, "--energy-device=cuda:0")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*--energy-device=cuda:0: torch sees no CUDA device (use auto or cpu)"])
