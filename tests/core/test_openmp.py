"""--energy-omp-wait-policy: OMP_WAIT_POLICY set before conftests load torch, recorded in machine_info.energy."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest

from energy_bench.plugin import openmp
from energy_bench.plugin.openmp import WaitPolicy

ENERGY_TEST = """
    import os

    def test_policy(energy):
        energy(sum, range(100), rounds=2, warmup_rounds=0, iterations=1)
        print("POLICY SEEN BY THE TEST:", os.environ.get("OMP_WAIT_POLICY"))
"""
ARGS = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "-s",
    "--energy-meter=estimate",
    "--benchmark-max-time=0.05",
    "--benchmark-json=out.json",
)
# Looked up, not imported: pytester drops modules a test imported, and torch cannot be imported twice in a process.
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


@pytest.fixture
def fresh(monkeypatch):
    """No OMP_WAIT_POLICY in the environment (this very process got one from the plugin at its start)."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)


@pytest.mark.parametrize(
    "choice, before, loaded, expected, after",
    [
        (None, None, None, WaitPolicy("PASSIVE", "energy-bench"), "PASSIVE"),
        (None, "active", None, WaitPolicy("active", "environment"), "active"),  # the environment wins
        ("active", None, None, WaitPolicy("ACTIVE", "energy-bench"), "ACTIVE"),
        ("passive", "ACTIVE", None, WaitPolicy("PASSIVE", "energy-bench"), "PASSIVE"),  # an explicit choice wins
        ("passive", "passive", None, WaitPolicy("passive", "environment"), "passive"),
        ("keep", None, None, WaitPolicy(None, "not set"), None),
        ("keep", "ACTIVE", None, WaitPolicy("ACTIVE", "environment"), "ACTIVE"),
        (None, None, "torch", WaitPolicy(None, "not applied: torch loaded before"), None),
        ("active", "PASSIVE", "libgomp", WaitPolicy("PASSIVE", "not applied: libgomp loaded before"), "PASSIVE"),
    ],
)
def test_apply(monkeypatch, choice, before, loaded, expected, after):
    monkeypatch.setattr(openmp, "openmp_loaded", lambda: loaded)
    environ = {} if before is None else {"OMP_WAIT_POLICY": before}
    assert openmp.apply(choice, environ) == expected
    assert environ.get("OMP_WAIT_POLICY") == after


def test_openmp_loaded_finds_the_runtime_of_this_process():
    code = "from energy_bench.plugin.openmp import openmp_loaded; print(openmp_loaded())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "None"  # a bare interpreter has no OpenMP runtime


def run_and_read(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_subprocess(*ARGS, *args)
    result.assert_outcomes(passed=1)
    return result, json.loads((pytester.path / "out.json").read_text())["machine_info"]["energy"]


def test_default_sets_passive_before_conftests(pytester: pytest.Pytester, fresh) -> None:
    pytester.makeconftest(
        "import os\nSEEN_BY_CONFTEST = os.environ.get('OMP_WAIT_POLICY')\nprint('CONFTEST', SEEN_BY_CONFTEST)"
    )
    pytester.makepyfile(ENERGY_TEST)
    result, energy = run_and_read(pytester)
    result.stdout.fnmatch_lines(["CONFTEST PASSIVE", "*POLICY SEEN BY THE TEST: PASSIVE*"])
    assert energy["omp_wait_policy"] == "PASSIVE" and energy["omp_wait_policy_source"] == "energy-bench"
    assert energy["meter"] == "estimate"


def test_the_environment_wins_over_the_default(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    pytester.makepyfile(ENERGY_TEST)
    result, energy = run_and_read(pytester)
    result.stdout.fnmatch_lines(["*POLICY SEEN BY THE TEST: ACTIVE*"])
    assert (energy["omp_wait_policy"], energy["omp_wait_policy_source"]) == ("ACTIVE", "environment")


def test_ini_twin_keep_leaves_the_environment_alone(pytester: pytest.Pytester, fresh) -> None:
    pytester.makeini("[pytest]\nenergy_omp_wait_policy = keep\n")
    pytester.makepyfile(ENERGY_TEST)
    result, energy = run_and_read(pytester)
    result.stdout.fnmatch_lines(["*POLICY SEEN BY THE TEST: None*"])
    assert (energy["omp_wait_policy"], energy["omp_wait_policy_source"]) == (None, "not set")


def test_bad_choice_is_a_usage_error(pytester: pytest.Pytester, fresh) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-omp-wait-policy=lazy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --energy-omp-wait-policy: 'lazy' is not one of passive, active, keep"])


@needs_torch
def test_torch_imported_in_a_conftest_reads_passive(pytester: pytest.Pytester, fresh, monkeypatch) -> None:
    """libgomp prints the policy it read when it loads (OMP_DISPLAY_ENV): PASSIVE, set before the conftest ran."""
    monkeypatch.setenv("OMP_DISPLAY_ENV", "TRUE")
    pytester.makeconftest("import torch\n\ntorch.ones(4).sum()\n")
    pytester.makepyfile(ENERGY_TEST)
    result, energy = run_and_read(pytester)
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in result.stderr.str()
    assert (energy["omp_wait_policy"], energy["omp_wait_policy_source"]) == ("PASSIVE", "energy-bench")


@needs_torch
def test_torch_loaded_before_pytest_is_recorded_as_not_applied(pytester: pytest.Pytester, fresh) -> None:
    pytester.makepyfile(ENERGY_TEST)
    script = textwrap.dedent(
        f"""
        import sys
        import torch
        import pytest
        sys.exit(pytest.main({list(ARGS)!r}))
        """
    )
    result = pytester.run(sys.executable, "-c", script)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*POLICY SEEN BY THE TEST: None*"])
    energy = json.loads((pytester.path / "out.json").read_text())["machine_info"]["energy"]
    assert (energy["omp_wait_policy"], energy["omp_wait_policy_source"]) == (None, "not applied: torch loaded before")


def test_recorded_without_any_meter(pytester: pytest.Pytester, fresh) -> None:
    pytester.makepyfile("def test_plain(benchmark):\n    benchmark(sum, range(10))\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--benchmark-max-time=0.01", "--benchmark-json=out.json")
    result.assert_outcomes(passed=1)
    energy = json.loads((pytester.path / "out.json").read_text())["machine_info"]["energy"]
    assert set(energy) == {"omp_wait_policy", "omp_wait_policy_source"}  # no meter was built, nothing else
