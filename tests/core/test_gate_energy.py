"""The gate with the harness's real ``energy`` fixture: a fake meter, then the CPU-time estimate.

The fake meter charges joules for the work units a round does (units x constant, seeded 3% noise),
so a heavier workload costs more exactly as on real hardware, only without the hardware.
"""

from __future__ import annotations

import hypothesis  # noqa: F401  loaded once: pytester's in-process runs would re-import it every run
import pytest
import scipy.stats  # noqa: F401  its C extensions cannot be imported twice in one process

from energy_bench.cli import main as cli_main

CONFTEST = r"""
import os, random

from energy_bench.meters.base import Meter, Reading, Source
from energy_bench.plugin.session import get_session

DONE = [0.0]  # work units done so far, counted by the workload


def work(units):
    DONE[0] += units * float(os.environ.get("WORK", "1.0"))


class FakeMeter(Meter):
    name = "fake-counter"
    source = Source.MEASURED

    def __init__(self):
        self.rng = random.Random(int(os.environ.get("SEED", "0")))

    def begin(self):
        return DONE[0]

    def end(self, mark):
        joules = (DONE[0] - mark) * 10.0 * self.rng.gauss(1.0, 0.03)
        return Reading({"fake0": joules}, seconds=0.01, source=self.source, meter=self.name)

    def info(self):
        return {"meter": self.name, "source": self.source.value, "devices": ["fake gpu"]}


def pytest_configure(config):
    get_session(config).meter = FakeMeter()


def pytest_benchmark_generate_machine_info(config):
    return {"node": "fake"}  # py-cpuinfo takes seconds; not needed here
"""

WORKLOAD = """
import os
import pytest
from conftest import work

@pytest.mark.parametrize("units", [10, 40])
def test_train(energy, units):
    energy(work, units, rounds=5)
    energy.record(accuracy=float(os.environ.get("ACC", "0.9")))
"""


@pytest.fixture
def project(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_work=WORKLOAD)
    pytester.syspathinsert()
    for name in ("WORK", "SEED", "ACC"):
        monkeypatch.delenv(name, raising=False)
    return pytester


def run(pytester, monkeypatch, *args, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_done_when_scenario(project, monkeypatch, capsys):
    """Save a run, rerun unchanged (passes), make it heavier (fails, naming it), markdown for the PR."""
    gate = ["--benchmark-autosave", "--energy-compare", "--energy-compare-fail=joules:10%"]
    assert run(project, monkeypatch, "--benchmark-autosave").ret == 0
    for seed in (1, 2, 3):
        result = run(project, monkeypatch, *gate, SEED=seed)
        assert result.ret == 0, result.stdout.str()
    result = run(project, monkeypatch, *gate, WORK=1.3, SEED=4)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*: 2 regression(s)",
            "  REGRESSION test_work.py::test_train[[]10]: joules 1* J -> 1* J (+*%), limit joules:10%, p=0.00397",
            "  REGRESSION test_work.py::test_train[[]40]: joules 4* J -> 5* J (+*%), limit joules:10%, p=0.00397",
        ]
    )
    result.stdout.fnmatch_lines(["*test_train[[]40]*REGRESSION*"])  # the energy table's verdict column

    capsys.readouterr()
    code = cli_main(
        ["compare", "--storage", str(project.path / ".benchmarks"), "--format", "markdown", "--fail", "joules:10%"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith("## Energy comparison\n\n**2 regression(s) in 0005_")
    assert "| `test_work.py::test_train[40]` | 0005_" in out


def test_accuracy_drop_and_improvement(project, monkeypatch):
    run(project, monkeypatch, "--benchmark-autosave", ACC=0.9)
    gate = ["--energy-compare", "--energy-compare-fail=joules:5%,accuracy:0.5pt"]
    result = run(project, monkeypatch, *gate, ACC=0.89, SEED=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*REGRESSION test_work.py::test_train[[]10]: accuracy 0.9000 -> 0.8900 (-1.00pt)*"])
    result = run(project, monkeypatch, *gate, WORK=0.7, ACC=0.95, SEED=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*test_train[[]10]*improved*"])


def test_estimate_meter_with_real_cpu_work(pytester, monkeypatch):
    """The one realistic run: CPU-time estimate, real busy loops, 60% more work must fail."""
    pytester.makepyfile(
        test_burn="""
        import os, time

        def burn(seconds):
            end = time.process_time() + seconds
            while time.process_time() < end:
                pass

        def test_burn(energy):
            energy(burn, 0.04 * float(os.environ.get("WORK", "1.0")), rounds=5)
    """
    )
    monkeypatch.delenv("WORK", raising=False)
    args = ["-p", "no:cacheprovider", "--energy-meter=estimate"]
    assert pytester.runpytest(*args, "--benchmark-autosave").ret == 0
    monkeypatch.setenv("WORK", "1.6")
    result = pytester.runpytest(*args, "--energy-compare", "--energy-compare-fail=joules:20%")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["  REGRESSION test_burn.py::test_burn: joules * J -> * J (+*%), limit joules:20%*"])
