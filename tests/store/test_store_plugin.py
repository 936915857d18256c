"""The history store in a pytest session: written on every save, read by ``--energy-compare=history:...``."""

from __future__ import annotations

import pytest

from energy_bench.runs.store import open_store
from tests.store import postgres

TEST_FILE = """
def work(n):
    return sum(i * i for i in range(n))


def test_loop(energy):
    energy(work, {n}, rounds=3)
    energy.record(accuracy=0.9)
"""
BASE = ("-p", "no:cacheprovider", "-p", "no:randomly", "--energy-meter=estimate")


def session(pytester: pytest.Pytester, *args: str, n: int = 20_000):
    pytester.makepyfile(test_loop=TEST_FILE.format(n=n))
    return pytester.runpytest_subprocess(*BASE, *args)


def test_autosave_writes_the_sqlite_history_with_no_option(pytester):
    assert session(pytester, "--benchmark-autosave").ret == 0
    assert session(pytester, "--benchmark-autosave").ret == 0
    store = open_store(None, str(pytester.path / ".benchmarks"))
    runs = store.runs()
    assert len(runs) == 2 and all("test_loop.py::test_loop" in r.benchmarks for r in runs)
    assert [r.label for r in runs] == sorted(p.stem for p in (pytester.path / ".benchmarks").glob("*/0*.json"))
    store.close()


def test_the_gate_reads_history_last_n_from_sqlite(pytester):
    for _ in range(3):
        assert session(pytester, "--benchmark-autosave").ret == 0
    result = session(pytester, "--energy-compare=history:last:3", "--energy-compare-fail=joules:1000%")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*energy per call*", "*test_loop*ok*"])
    heavier = session(pytester, "--energy-compare=history:last:3", "--energy-compare-fail=joules:50%", n=200_000)
    assert heavier.ret == 1, heavier.stdout.str()  # 10x the work: a regression on any machine


def test_compare_reads_history_specs(pytester):
    for _ in range(3):
        assert session(pytester, "--benchmark-autosave").ret == 0
    result = pytester.run("energy-bench", "compare", "--baseline", "history:last:2", "history:latest")
    assert result.ret == 0, result.stderr.str()
    labels = sorted(p.stem for p in pytester.path.glob(".benchmarks/*/0*.json"))
    result.stdout.fnmatch_lines([f"2 runs ({labels[0]}..{labels[1]})*baseline", f"{labels[2]}*"])


def test_the_gate_reads_history_from_postgresql(pytester, postgres_server):
    url = postgres_server.create_database("eb_plugin_gate")
    for _ in range(2):
        assert session(pytester, "--benchmark-autosave", f"--energy-history={url}").ret == 0
    result = session(pytester, "--energy-compare=history:last:2", f"--energy-history={url}")
    assert result.ret == 0, result.stdout.str()
    assert postgres.PASSWORD not in result.stdout.str() + result.stderr.str()


def test_no_history_yet_is_a_usage_error(pytester):
    result = session(pytester, "--energy-compare=history:last:5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--energy-compare=history:last:5: no run of this machine*"])


def test_a_malformed_history_url_is_a_usage_error_before_any_test(pytester):
    result = session(pytester, "--benchmark-autosave", "--energy-history=mysql://u:pw@h/db")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unsupported database 'mysql'" in result.stderr.str() and ":pw@" not in result.stderr.str()
    assert not list(pytester.path.glob(".benchmarks/*/0*.json"))


def test_an_unreachable_store_costs_one_line_and_keeps_the_file(pytester):
    url = "postgresql://u:hunter2@127.0.0.1:1/db"
    result = session(pytester, "--benchmark-autosave", f"--energy-history={url}")
    assert result.ret == 0
    out = result.stdout.str()
    assert "the run was not added to the history store" in out and "energy-bench history import" in out
    assert "hunter2" not in out + result.stderr.str() and "Traceback" not in out
    assert len(list(pytester.path.glob(".benchmarks/*/0*.json"))) == 1
