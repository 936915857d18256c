"""The study is opt-in: a project with only the core plugin sees none of it; -p or pytest_plugins turns it on."""

from __future__ import annotations

import subprocess
import sys

import pytest

STUDY_FLAGS = ("--energy-models", "--energy-compressors", "--energy-profile", "--energy-data", "--energy-weights")

USES_STUDY_NAMES = """
def test_own_arguments(study_model):
    assert study_model == "mine"

def pytest_generate_tests(metafunc):
    if "study_model" in metafunc.fixturenames:
        metafunc.parametrize("study_model", ["mine"])
"""


def test_core_help_lists_no_study_option(pytester):
    result = pytester.runpytest_subprocess("--help")
    help_text = result.stdout.str()
    assert "--energy-meter" in help_text
    assert not [flag for flag in STUDY_FLAGS if flag in help_text]


def test_core_does_not_parametrize_study_names(pytester):
    # A user's own argument called study_model is theirs: nine models must not appear.
    pytester.makepyfile(USES_STUDY_NAMES)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1)


def test_core_has_no_study_fixtures(pytester):
    pytester.makepyfile("def test_x(study):\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(["*fixture 'study' not found*"])


def test_core_session_imports_no_study_and_no_torch(pytester):
    pytester.makepyfile("""
        import sys

        def test_modules():
            loaded = [m for m in ("energy_bench.study", "energy_bench.compress", "torch", "torchvision", "sklearn")
                      if m in sys.modules]
            assert loaded == []
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("how", ["-p", "conftest"])
def test_study_switched_on(pytester, how):
    pytester.makepyfile("def test_ids(study_model, study_compressor):\n    pass\n")
    args = ["--collect-only", "-q", "--energy-models=resnet18", "--energy-compressors=baseline"]
    if how == "-p":
        args = ["-p", "energy_bench.study", *args]
    else:
        pytester.makeconftest('pytest_plugins = ["energy_bench.study"]')
    result = pytester.runpytest_subprocess(*args)
    result.stdout.fnmatch_lines(["*test_ids[[]resnet18-baseline[]]*", "*1 test collected*"])


def test_study_help_when_switched_on(pytester):
    result = pytester.runpytest_subprocess("-p", "energy_bench.study", "--help")
    assert all(flag in result.stdout.str() for flag in STUDY_FLAGS)


def test_importing_the_harness_imports_no_torch():
    code = (
        "import sys, energy_bench.plugin, energy_bench.plugin.fixtures, energy_bench.plugin.gate, "
        "energy_bench.meters, energy_bench.runs.parse\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'sklearn', 'energy_bench.study') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
