"""``energy-bench ab``: the run order, and whole jobs on a temporary git repository of a tiny project.

The project's conftest charges joules for the work units ``work.step()`` does (``work.UNITS`` per call, 1% noise),
and ``work.py`` is imported from whichever tree pytest runs in: a heavier head commit costs more exactly as far as
the code of that tree says, which is what the A/B job must see.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap

import pytest

from energy_bench.cli import ab as ab_cli
from energy_bench.cli import main
from energy_bench.runs import ab
from energy_bench.runs.store import open_store

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

WORK = """
UNITS = {units}
DONE = [0.0]


def step():
    DONE[0] += UNITS
"""

CONFTEST = """
import random

import work
from energy_bench.meters.base import Meter, Reading, Source
from energy_bench.plugin.session import get_session


class UnitMeter(Meter):
    name = "unit-counter"
    source = Source.MEASURED

    def begin(self):
        return work.DONE[0]

    def end(self, mark):
        return Reading({"units": (work.DONE[0] - mark) * random.gauss(1.0, 0.01)}, 0.01, self.source, self.name)

    def info(self):
        return {"meter": self.name, "source": self.source.value, "devices": ["units"]}


def pytest_configure(config):
    get_session(config).meter = UnitMeter()


def pytest_benchmark_generate_machine_info(config):
    return {"node": "test"}  # py-cpuinfo takes seconds per process
"""

BENCH = """
import work


def test_step(energy):
    energy(work.step, rounds=3, warmup_rounds=0, iterations=10)
    energy.record(units=work.UNITS)
"""

NEW_BENCH = """

def test_new(energy):
    energy(work.step, rounds=3, warmup_rounds=0, iterations=10)
"""

SOMETIMES_BROKEN = """

def test_other(energy):
    energy(work.step, rounds=3, warmup_rounds=0, iterations=10)
    assert work.UNITS == 10, "broken on purpose"
"""

#: pytest arguments for the job's processes: no per-round calibration, and none of the plugins installed here that
#: these tests don't need (each costs start-up time in every process; naming one that is not installed is harmless)
NOT_NEEDED = ("hypothesispytest", "anyio", "typeguard", "xdist", "cacheprovider")
FAST = [*(arg for name in NOT_NEEDED for arg in ("-p", f"no:{name}")), "--energy-min-round-seconds=0"]


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def commit(repo, message, units, extra_bench=""):
    (repo / "work.py").write_text(textwrap.dedent(WORK.format(units=units)))
    (repo / "conftest.py").write_text(CONFTEST)
    (repo / "test_bench.py").write_text(BENCH + extra_bench)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    path = tmp_path / "project"
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.email", "test@example.invalid")
    git(path, "config", "user.name", "test")
    commit(path, "base", units=10)
    monkeypatch.chdir(path)
    return path


def worktrees(repo):
    return [line for line in git(repo, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]


# ---------------------------------------------------------------------------- order and selection


def test_run_order():
    assert [ab.run_order(n) for n in (1, 2, 3, 4)] == ["AB", "ABBA", "ABBABA", "ABBABAAB"]
    with pytest.raises(ValueError):
        ab.run_order(0)
    for repeat in (2, 4):  # a linear drift adds the same to both sides: equal sums of positions
        order = ab.run_order(repeat)
        assert sum(i for i, s in enumerate(order) if s == "A") == sum(i for i, s in enumerate(order) if s == "B")
    order = ab.run_order(4)  # and with 4, a quadratic one
    assert sum(i * i for i, s in enumerate(order) if s == "A") == sum(i * i for i, s in enumerate(order) if s == "B")


def test_schedule_and_select():
    plan = ab.schedule(["x", "y"], 2)
    assert [(p.benchmark, p.side, p.repetition) for p in plan[:4]] == [
        ("x", "base", 0),
        ("x", "head", 0),
        ("x", "head", 1),
        ("x", "base", 1),
    ]
    assert len(plan) == 8 and plan[4].benchmark == "y"
    selection = ab.select(["a", "b", "gone"], ["new", "b", "a"])
    assert selection.common == ["b", "a"] and selection.only_base == ["gone"] and selection.only_head == ["new"]


# ---------------------------------------------------------------------------- whole jobs


def test_heavier_head_is_flagged_and_one_sided_benchmarks_reported(repo, tmp_path, capsys):
    commit(repo, "heavier", units=13, extra_bench=NEW_BENCH)
    saved = tmp_path / "saved"
    store = tmp_path / "history.sqlite"
    args = ["ab", "HEAD~1", "HEAD", "--fail", "joules:10%", "--format", "markdown", "--save", str(saved)]
    code = main([*args, f"--save-history={store}", "--", *FAST])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "**1 regression(s) in head " in out and "(HEAD) vs base " in out
    assert re.search(  # about 10 J -> 13 J per call
        r"- test_bench.py::test_step: joules (9\.9\d*|10(\.0\d*)?) J -> 1[23](\.\d*)? J \(\+[23]\d\.\d%\)", out
    )
    assert "(two-sample t, 2+2 runs)" in out
    assert "> only in head, not compared: test_bench.py::test_new" in out
    assert "> run order per benchmark: ABBA (A = base, B = head)" in out
    assert "[4/4] test_bench.py::test_step (base run 2 of 2)" in err
    # each side imported work.py from its own tree
    units = {}
    for path in sorted((saved / "runs").glob("*.json")):
        side = path.stem.split("-")[1]
        data = json.loads(path.read_text())
        units.setdefault(side, set()).update(b["extra_info"]["units"] for b in data["benchmarks"])
    assert units == {"base": {10}, "head": {13}}
    assert "4 run(s) added to sqlite:///" in err  # every run of both sides, each under its own commit
    kept = open_store(str(store)).runs()
    assert len(kept) == 4 and len({run.commit_id for run in kept}) == 2
    pooled = json.loads((saved / "head.json").read_text())
    (entry,) = pooled["benchmarks"]
    assert (
        entry["extra_info"]["energy"]["runs"]["count"] == 2 and entry["extra_info"]["energy"]["joules"]["rounds"] == 6
    )
    assert len(worktrees(repo)) == 1  # the temporary worktrees are gone


def test_identical_commits_pass(repo, capsys):
    (repo / "NOTES.txt").write_text("a commit that changes no code\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "notes")
    code = main(["ab", "HEAD~1", "--fail", "joules:10%", "--", *FAST])  # head: the working tree, as committed
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "No regressions in head (working tree) vs base " in out
    assert "two-sample Student t on run means, 2+2 runs" in out
    assert len(worktrees(repo)) == 1


def test_a_failing_head_run_fails_the_job_and_one_repeat_says_so(repo, capsys):
    commit(repo, "base with another benchmark", units=10, extra_bench=SOMETIMES_BROKEN)
    commit(repo, "breaks test_other", units=11, extra_bench=SOMETIMES_BROKEN)
    code = main(["ab", "HEAD~1", "HEAD", "--repeat", "1", "--fail", "joules:50%", "--", *FAST])
    out, err = capsys.readouterr()
    assert code == 1
    assert "test_bench.py::test_other (head run 1 of 1) failed (pytest exit 1)" in err
    assert "1 head run(s) failed" in err
    assert "No regressions in head " in out and "between-run noise unknown (one baseline run)" in out
    assert "test_bench.py::test_other: head run 1 of 1 failed (pytest exit 1)" in out


def test_interrupt_removes_the_worktrees(repo, monkeypatch, capsys):
    def interrupted(job, tree, pytest_args):
        assert (job.tmp / "base").is_dir() and len(worktrees(repo)) == 2
        raise KeyboardInterrupt

    monkeypatch.setattr(ab_cli, "collect", interrupted)
    assert main(["ab", "HEAD", "--", *FAST]) == 130
    assert "interrupted; temporary worktrees removed" in capsys.readouterr().err
    assert len(worktrees(repo)) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["ab", "no-such-branch"], "'no-such-branch' is not a commit"),
        (["ab", "HEAD", "--repeat", "0"], "must be at least 1"),
        (["ab", "HEAD", "--fail", "joules:5"], "cannot parse 'joules:5'"),
        (["ab", "HEAD", "--", "-k", "nothing_matches"], "no benchmark selected in both trees"),
    ],
)
def test_usage_errors_exit_2(repo, capsys, args, message):
    pytest_args = FAST if "--" in args else ["--", *FAST]
    with pytest.raises(SystemExit) as info:
        main([*args, *pytest_args])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err
    assert len(worktrees(repo)) == 1


def test_not_a_repository(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["ab", "HEAD"])
    assert info.value.code == 2 and "not inside a git repository" in capsys.readouterr().err
