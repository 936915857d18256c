"""Nothing finished is lost: the benchmark journal, `energy-bench recover`, SIGKILL and SIGTERM mid-run.

A tiny project of three benchmarks whose third one kills its own process runs in a subprocess (pytester), with the
CPU-time estimate meter; workloads are a few milliseconds.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys

import pytest

from energy_bench.cli import main as cli
from energy_bench.plugin import journal

BASE = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--energy-meter=estimate", "--benchmark-autosave")

PROJECT = """
import os
import signal

def work(n):
    return sum(i * i for i in range(n))

def test_first(energy):
    energy(work, 2000, rounds=3)
    energy.record(accuracy=0.9)

def test_second(energy):
    energy(work, 3000, rounds=3)

def test_third(energy):
    os.kill(os.getpid(), signal.{signal})

def test_fourth(energy):
    energy(work, 1000, rounds=3)
"""


def storage(pytester) -> str:
    return str(pytester.path / ".benchmarks")


def saved_runs(pytester):
    return sorted((pytester.path / ".benchmarks").glob("*/[0-9][0-9][0-9][0-9]_*.json"))


def journals(pytester):
    return sorted((pytester.path / ".benchmarks").glob(f"*/{journal.GLOB}"))


def names(path):
    return [b["name"] for b in json.loads(path.read_text())["benchmarks"]]


def test_sigkill_mid_run_then_recover_gives_a_run_compare_accepts(pytester, capsys):
    pytester.makepyfile(PROJECT.format(signal="SIGKILL"))
    killed = pytester.runpytest_subprocess(*BASE)
    assert killed.ret == -signal.SIGKILL
    assert saved_runs(pytester) == [] and len(journals(pytester)) == 1

    # the next saving run says there is something to recover, and how
    pytester.makepyfile(PROJECT.format(signal="SIGKILL").replace("def test_third", "def skipped_third"))
    later = pytester.runpytest(*BASE)
    assert later.ret == 0
    later.stdout.fnmatch_lines(
        ["*interrupted run left 2 finished benchmark(s) unsaved*energy-bench recover --storage*"]
    )
    assert len(journals(pytester)) == 1  # not merged silently: still there

    assert cli(["recover", "--storage", storage(pytester)]) == 0
    out = capsys.readouterr().out
    assert "saved 2 benchmark(s) of an interrupted run" in out
    assert journals(pytester) == []
    recovered = [p for p in saved_runs(pytester) if p.name.startswith("0002_")]
    assert len(recovered) == 1 and names(recovered[0]) == ["test_first", "test_second"]
    data = json.loads(recovered[0].read_text())
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(data)
    assert data["machine_info"]["energy"]["meter"] == "estimate"
    assert data["benchmarks"][0]["extra_info"]["accuracy"] == 0.9

    assert cli(["compare", "--storage", storage(pytester), "1", "2"]) == 0
    table = capsys.readouterr().out
    assert "test_first" in table and "test_second" in table
    assert cli(["recover", "--storage", storage(pytester)]) == 0
    assert "no journal to recover" in capsys.readouterr().out


def test_sigterm_saves_like_ctrl_c(pytester):
    pytester.makepyfile(PROJECT.format(signal="SIGTERM"))
    result = pytester.runpytest_subprocess(*BASE)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*SIGTERM*"])
    (run,) = saved_runs(pytester)
    assert names(run) == ["test_first", "test_second"]
    assert journals(pytester) == []  # saved normally: the journal is gone


def test_sigterm_handler_is_the_sessions_only(pytester):
    before = signal.getsignal(signal.SIGTERM)
    pytester.makepyfile("""
        import signal
        from energy_bench.plugin import journal

        def test_installed():
            assert signal.getsignal(signal.SIGTERM) is journal._interrupt
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert signal.getsignal(signal.SIGTERM) is before


def test_journal_written_as_benchmarks_finish_and_removed_after_saving(pytester):
    pytester.makepyfile("""
        import glob, json, os

        def test_one(benchmark):
            benchmark(sum, range(10))

        def test_journal_holds_the_first(benchmark):
            (path,) = glob.glob(".benchmarks/*/.energy-bench-journal-*.jsonl")
            lines = [json.loads(line) for line in open(path)]
            assert lines[0]["energy_bench_journal"] == 1 and "machine_info" in lines[0]
            assert lines[0]["pid"] == os.getpid() and isinstance(lines[0]["pid_start"], int)
            assert [line["benchmark"]["name"] for line in lines[1:]] == ["test_one"]
            benchmark(sum, range(10))
    """)
    pytester.runpytest(*BASE).assert_outcomes(passed=2)
    assert journals(pytester) == [] and len(saved_runs(pytester)) == 1


def test_no_journal_without_saving(pytester):
    pytester.makepyfile("""
        import glob

        def test_one(benchmark):
            benchmark(sum, range(10))

        def test_none(benchmark):
            assert glob.glob(".benchmarks/*/.energy-bench-*") == []
            benchmark(sum, range(10))
    """)
    pytester.runpytest(*BASE[:-1]).assert_outcomes(passed=2)


def write_journal(folder, header, *lines):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{journal.PREFIX}1-test.jsonl"
    head = {"energy_bench_journal": 1, "save": "abc_123", "machine_info": {}, "commit_info": {}, **header}
    path.write_text("\n".join([json.dumps(head), *lines]) + "\n")
    return path


def bench_line(name):
    return json.dumps({"datetime": "2026-01-01T00:00:00", "benchmark": {"name": name, "fullname": f"t.py::{name}"}})


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_recover_skips_a_torn_line_and_numbers_after_existing_runs(tmp_path, capsys):
    folder = tmp_path / "store" / "Linux-CPython-3.11-64bit"
    header = {"host": platform.node(), "pid": dead_pid()}
    write_journal(folder, header, bench_line("a"), '{"datetime": "x", "bench', bench_line("b"))
    (folder / "0007_old.json").write_text("{}")
    assert cli(["recover", "-s", f"file://{tmp_path / 'store'}"]) == 0
    captured = capsys.readouterr()
    assert "line 3 is incomplete or corrupt: skipped" in captured.err
    run = folder / "0008_abc_123.json"
    assert names(run) == ["a", "b"] and "0008_abc_123.json" in captured.out


def test_recover_leaves_a_running_processes_journal_alone(tmp_path, capsys):
    folder = tmp_path / "store" / "m"
    path = write_journal(folder, {"host": platform.node(), "pid": os.getpid()}, bench_line("a"))
    assert cli(["recover", "-s", str(tmp_path / "store")]) == 0
    assert "still being written by a running process" in capsys.readouterr().out
    assert path.exists() and not list(folder.glob("0*.json"))


def test_recover_keeps_what_it_cannot_read(tmp_path, capsys):
    folder = tmp_path / "store" / "m"
    folder.mkdir(parents=True)
    bad = folder / f"{journal.PREFIX}2-x.jsonl"
    bad.write_text("not json\n")
    assert cli(["recover", "-s", str(tmp_path / "store")]) == 2
    assert "not an energy-bench journal" in capsys.readouterr().err and bad.exists()


def test_an_empty_journal_is_removed(tmp_path, capsys):
    path = write_journal(tmp_path / "store" / "m", {"host": "elsewhere", "pid": 1})
    assert cli(["recover", "-s", str(tmp_path / "store")]) == 0
    assert "no finished benchmark" in capsys.readouterr().out and not path.exists()


def test_start_time_read_past_a_command_name_with_spaces_and_parentheses(tmp_path):
    # /proc/PID/stat: pid (comm) state ppid ...; field 22 is the start time
    fields = ["S", *[str(n) for n in range(4, 22)], "123456", "0"]
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_bytes(b"42 (a b) (c)) " + " ".join(fields).encode())
    assert journal.process_start_time(42, proc=tmp_path) == 123456
    assert journal.process_start_time(43, proc=tmp_path) is None
    (tmp_path / "42" / "stat").write_bytes(b"42 (short) S 1")
    assert journal.process_start_time(42, proc=tmp_path) is None


@pytest.mark.skipif(journal.process_start_time(os.getpid()) is None, reason="no /proc/PID/stat here")
def test_a_live_process_that_reused_the_writers_pid_is_not_the_writer(tmp_path, capsys):
    folder = tmp_path / "store" / "m"
    started = journal.process_start_time(os.getpid())
    header = {"host": platform.node(), "pid": os.getpid(), "pid_start": started - 1}
    reused = write_journal(folder, header, bench_line("a"))
    assert not journal.read_journal(reused).is_live()
    assert cli(["recover", "-s", str(tmp_path / "store")]) == 0
    assert "saved 1 benchmark(s)" in capsys.readouterr().out and not reused.exists()


@pytest.mark.skipif(journal.process_start_time(os.getpid()) is None, reason="no /proc/PID/stat here")
def test_the_writer_itself_is_live_and_an_old_header_falls_back_to_the_pid(tmp_path):
    here = {"host": platform.node(), "pid": os.getpid()}
    same = write_journal(tmp_path / "a", {**here, "pid_start": journal.process_start_time(os.getpid())})
    assert journal.read_journal(same).is_live()
    assert journal.read_journal(write_journal(tmp_path / "b", here)).is_live()  # no pid_start: pid only
