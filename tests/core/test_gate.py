"""The pytest gate end to end (pytester): workloads whose joules are controlled by the test.

The test project's conftest writes the energy record the way the harness does (inside
pytest-benchmark's ``extra_info``), with joules per round = workload x constant and seeded 3%
noise, so these tests exercise loading, matching, the test and the exit status without a meter.
"""

from __future__ import annotations

import json

import hypothesis  # noqa: F401  loaded once here: pytester's in-process runs would re-import (and
import pytest  # assert-rewrite) it every run, and can't re-import scipy's C extensions at all
import scipy.stats  # noqa: F401

CONFTEST = r"""
import os, random, statistics
import pytest

from energy_bench.plugin.session import get_session


def _stats(values):
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "min": min(values),
            "max": max(values), "stddev": statistics.stdev(values) if len(values) > 1 else 0.0,
            "rounds": len(values), "data": values}


@pytest.fixture
def fake_energy(benchmark, request):
    def run(size, rounds=5):
        work = float(os.environ.get("WORK", "1.0"))
        rng = random.Random(f"{os.environ.get('SEED', '0')}-{request.node.nodeid}")
        joules = []
        benchmark.pedantic(lambda: joules.append(size * work * 100.0 * rng.gauss(1.0, 0.03)),
                           rounds=rounds, iterations=1)
        benchmark.extra_info["energy"] = {
            "joules": _stats(joules), "seconds": _stats([j / 100.0 for j in joules]),
            "mean_watts": 100.0, "source": os.environ.get("SOURCE", "measured"),
            "meter": os.environ.get("METER", "nvml-counter"), "domains": {"gpu0": sum(joules)},
        }
        benchmark.extra_info["accuracy"] = float(os.environ.get("ACC", "0.9"))
    return run


def pytest_benchmark_generate_machine_info(config):
    return {"node": "fake"}  # py-cpuinfo takes seconds; these tests don't need it


def pytest_terminal_summary(terminalreporter, config):
    session = get_session(config)
    terminalreporter.write_line("COLUMNS " + json.dumps(session.comparison, sort_keys=True))
    terminalreporter.write_line("REGRESSIONS " + json.dumps(session.regressions))

import json
"""

WORKLOAD = """
import pytest

@pytest.mark.parametrize("size", [1, 3])
def test_train(fake_energy, size):
    fake_energy(size)
"""

GATE = ["--energy-compare", "--energy-compare-fail=joules:5%,accuracy:1pt"]


@pytest.fixture
def project(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_work=WORKLOAD)
    for name in ("WORK", "SEED", "ACC", "SOURCE", "METER"):
        monkeypatch.delenv(name, raising=False)
    return pytester


def run(pytester, monkeypatch, *args, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return pytester.runpytest("-p", "no:cacheprovider", "-q", *args)


def saved(pytester):
    return sorted(p.name for p in pytester.path.joinpath(".benchmarks").rglob("*.json"))


def printed(result, tag):
    """The JSON the test project's conftest printed after ``tag`` (comparison columns, regression lines)."""
    line = next(line for line in result.outlines if line.startswith(tag + " "))
    return json.loads(line[len(tag) + 1 :])


def columns(result):
    return printed(result, "COLUMNS")


def test_unchanged_workload_never_fails(project, monkeypatch):
    assert run(project, monkeypatch, "--benchmark-autosave").ret == 0
    for seed in range(1, 6):
        result = run(project, monkeypatch, "--benchmark-autosave", *GATE, SEED=seed)
        assert result.ret == 0, result.stdout.str()
        result.stdout.fnmatch_lines([f"energy-bench: compared with 000{seed}_*: no regressions"])
    assert len(saved(project)) == 6
    verdicts = {name: cols["verdict"] for name, cols in columns(result).items()}
    assert verdicts == {"test_work.py::test_train[1]": "ok", "test_work.py::test_train[3]": "ok"}


def test_heavier_workload_fails_naming_it(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave")
    result = run(project, monkeypatch, "--benchmark-autosave", *GATE, WORK=1.3, SEED=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "energy-bench: compared with 0001_*: 2 regression(s)",
            "  REGRESSION test_work.py::test_train[[]1]: joules 9?.* J -> 1??.* J (+3?.?%), limit joules:5%, p=0.00397",
            "  REGRESSION test_work.py::test_train[[]3]: joules 3??.* J -> 3??.* J (+29.?%), limit joules:5%,"
            " p=0.00397",
        ]
    )
    cols = columns(result)["test_work.py::test_train[3]"]
    assert cols["verdict"] == "REGRESSION"
    assert 20 < float(cols["change"].rstrip("%")) < 40
    assert 270 < float(cols["baseline J"]) < 330
    regressions = printed(result, "REGRESSIONS")
    assert len(regressions) == 2 and regressions[1].startswith("test_work.py::test_train[3]: joules 3")


def test_never_compared_with_itself(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave")
    result = run(project, monkeypatch, "--benchmark-autosave", *GATE, WORK=1.3, SEED=1)
    assert result.ret == 1 and len(saved(project)) == 2
    result.stdout.fnmatch_lines(["energy-bench: compared with 0001_*"])


def test_accuracy_drop_fails(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave", ACC=0.90)
    result = run(project, monkeypatch, *GATE, ACC=0.885, SEED=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "  REGRESSION test_work.py::test_train[[]1]: accuracy 0.9000 -> 0.8850 (-1.50pt), limit accuracy:1pt, "
            "threshold only",
        ]
    )
    assert columns(result)["test_work.py::test_train[1]"]["accuracy change"] == "-1.50pt"


def test_improvement_passes(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave")
    result = run(project, monkeypatch, *GATE, WORK=0.7, ACC=0.95, SEED=1)
    assert result.ret == 0
    assert {c["verdict"] for c in columns(result).values()} == {"improved"}


def test_no_summary_still_fails(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave")
    result = run(project, monkeypatch, "--no-summary", *GATE, WORK=1.3, SEED=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*REGRESSION test_work.py::test_train[[]3]: joules*"])


def test_alongside_pytest_benchmark_flags(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave")
    result = run(
        project,
        monkeypatch,
        "--benchmark-autosave",
        "--benchmark-compare",
        "--benchmark-compare-fail=mean:100000%",
        *GATE,
        WORK=1.3,
        SEED=1,
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*REGRESSION test_work.py::test_train[[]1]: joules*"])


def test_compare_by_number_and_path(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave", WORK=1.3)
    run(project, monkeypatch, "--benchmark-autosave", WORK=1.0)
    result = run(project, monkeypatch, "--energy-compare=1", "--energy-compare-fail=joules:5%", SEED=2)
    assert result.ret == 0 and "compared with 0001_" in result.stdout.str()
    first = project.path.joinpath(".benchmarks").rglob("0001_*.json").__next__()
    result = run(project, monkeypatch, f"--energy-compare={first}", "--energy-compare-fail=joules:5%", WORK=1.5)
    assert result.ret == 1


def test_old_baseline_without_energy_loads_with_note(project, monkeypatch):
    old = {
        "machine_info": {},
        "commit_info": {"id": "old"},
        "datetime": "2020-01-01T00:00:00",
        "benchmarks": [
            {"name": "test_train[1]", "fullname": "test_work.py::test_train[1]", "stats": {"mean": 1.0, "rounds": 5}},
        ],
    }
    path = project.path / "old.json"
    path.write_text(json.dumps(old))
    result = run(project, monkeypatch, f"--energy-compare={path}", "--energy-compare-fail=time:50%,joules:5%")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "  note: old: no energy records (saved without energy-bench): time only",
            "  note: test_work.py::test_train[[]1]: joules: not recorded in the baseline",
            "  note: test_work.py::test_train[[]1]: time: threshold only: no per-round data",
        ]
    )
    assert columns(result)["test_work.py::test_train[3]"]["verdict"] == "new"


def test_measured_vs_estimated_refused_unless_forced(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave")
    result = run(project, monkeypatch, *GATE, SOURCE="estimated", METER="estimate")
    assert result.ret == 4
    result.stdout.fnmatch_lines(
        [
            "energy-bench: refusing to compare with 0001_*: baseline energy is measured "
            "(nvml-counter), current is estimated (estimate) (pass --energy-compare-force*"
        ]
    )
    assert {c["verdict"] for c in columns(result).values()} == {"refused"}
    result = run(project, monkeypatch, *GATE, "--energy-compare-force", SOURCE="estimated", METER="estimate")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["  note: forced despite: baseline energy is measured*"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--energy-compare", "--energy-compare-fail=joules:5"], "--energy-compare-fail: cannot parse 'joules:5'*"),
        (["--energy-compare", "--energy-compare-fail=watts:5%"], "--energy-compare-fail: unknown metric 'watts'*"),
        (["--energy-compare-fail=joules:5%"], "--energy-compare-fail needs --energy-compare*"),
        (["--energy-compare=7"], "--energy-compare: no run number 0007 in *"),
        (["--energy-compare=missing.json"], "--energy-compare: no such file: missing.json"),
    ],
)
def test_usage_errors_exit_4(project, monkeypatch, args, message):
    run(project, monkeypatch, "--benchmark-autosave")
    result = run(project, monkeypatch, *args)
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()


def test_no_saved_run_is_a_usage_error(project, monkeypatch):
    result = run(project, monkeypatch, "--energy-compare")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: --energy-compare: no saved run in * (save one with --benchmark-autosave)"])


def test_nothing_ran(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave")
    result = run(project, monkeypatch, *GATE, "-k", "no_such_test")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["energy-bench: nothing compared with 0001_*: no benchmark ran"])


def test_ini_threshold(project, monkeypatch):
    project.makeini("[pytest]\nenergy_compare_fail = joules:5%\n")
    run(project, monkeypatch, "--benchmark-autosave")
    assert run(project, monkeypatch, WORK=1.3).ret == 0  # ini alone does not compare
    assert run(project, monkeypatch, "--energy-compare", WORK=1.3).ret == 1


# ---------------------------------------------------------------------------- where the gate cannot work


@pytest.mark.parametrize(
    "args, message",
    [
        (["-n", "2"], "--energy-compare cannot work under pytest-xdist (-n/--dist)*"),
        (["--benchmark-disable"], "--energy-compare cannot work with --benchmark-disable*"),
        (["--benchmark-skip"], "--energy-compare cannot work with --benchmark-skip*"),
        (["-p", "no:benchmark"], "--energy-compare needs pytest-benchmark*"),
    ],
)
def test_gate_that_cannot_see_benchmarks_is_a_usage_error(project, monkeypatch, args, message):
    if "-n" in args:
        pytest.importorskip("xdist")
    run(project, monkeypatch, "--benchmark-autosave")
    result = run(project, monkeypatch, *args, *GATE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str() and "passed" not in result.stdout.str()


# ---------------------------------------------------------------------------- baselines a file must not be trusted with


def rewrite_baseline(pytester, change):
    (path,) = pytester.path.joinpath(".benchmarks").rglob("0001_*.json")
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def test_many_rounds_compare(project, monkeypatch):
    project.makepyfile(
        test_many="def test_many(fake_energy):\n    fake_energy(1, rounds=520)\n\n"
        "def test_plain(benchmark):\n    benchmark.pedantic(sum, args=([1, 2],), rounds=600)\n"
    )
    run(project, monkeypatch, "--benchmark-autosave", "--benchmark-save-data", "test_many.py")
    result = run(project, monkeypatch, "--energy-compare", "--energy-compare-fail=joules:5%,time:1000%", "test_many.py")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["energy-bench: compared with 0001_*: no regressions"])
    result = run(project, monkeypatch, "--energy-compare", "--energy-compare-fail=joules:5%", "test_many.py", WORK=1.3)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["  REGRESSION test_many.py::test_many: joules * (+3?.?%), limit joules:5%, p=*"])


@pytest.mark.parametrize("content", ["[" * 100_000 + "]" * 100_000, '{"benchmarks": [', "\x00\x01"])
def test_unreadable_baseline_is_a_usage_error_naming_it(project, monkeypatch, content):
    path = project.path / "hostile.json"
    path.write_text(content)
    result = run(project, monkeypatch, f"--energy-compare={path}", "--energy-compare-fail=joules:5%")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --energy-compare: {path}: *"])
    assert "Traceback" not in result.stderr.str() and "INTERNALERROR" not in result.stdout.str()


def test_unusable_baseline_values_give_no_data(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave")

    def spoil(data):
        first, second = data["benchmarks"]
        first["extra_info"]["energy"]["joules"]["data"][0] = float("nan")
        second["extra_info"]["accuracy"] = 5.0

    rewrite_baseline(project, spoil)
    result = run(project, monkeypatch, *GATE, WORK=1.3, SEED=1)
    assert result.ret == 1  # test_train[3] still regresses on joules: its joules are fine
    verdicts = {name: cols["verdict"] for name, cols in columns(result).items()}
    assert verdicts == {"test_work.py::test_train[1]": "no data", "test_work.py::test_train[3]": "REGRESSION"}
    out = result.stdout.str()
    assert "no joules data ('joules': a per-round value is not a finite number)" in out
    assert "accuracy: no data in the baseline (accuracy 5 is outside 0..1)" in out
    assert "saved without energy-bench" not in out


def test_zero_baseline_change_is_absolute(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave")

    def zero(data):
        for bench in data["benchmarks"]:
            joules = bench["extra_info"]["energy"]["joules"]
            joules.update(mean=0.0, stddev=0.0, data=[0.0] * len(joules["data"]))

    rewrite_baseline(project, zero)
    result = run(project, monkeypatch, *GATE, SEED=1)
    assert result.ret == 1
    assert columns(result)["test_work.py::test_train[1]"]["change"].endswith(" J, n/a%")
    result.stdout.fnmatch_lines(["  REGRESSION test_work.py::test_train[[]1]: joules 0 J -> * J (+* J, n/a%), *"])


def test_machine_info_of_the_wrong_type(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave")
    rewrite_baseline(project, lambda data: data["machine_info"].update(energy={"gpus": 5, "parts": "x", "devices": 1}))
    for force in ([], ["--energy-compare-force"]):
        result = run(project, monkeypatch, *GATE, *force)
        assert result.ret == 0, result.stdout.str()  # this project's fake meter describes no device: nothing to compare
        result.stdout.fnmatch_lines(["energy-bench: compared with 0001_*: no regressions"])
