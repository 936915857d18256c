"""``energy-bench bisect``: the search on made-up histories, and one whole bisection of a temporary git repository.

The repository is test_ab.py's tiny project (its conftest charges joules per work unit of ``work.step()``, 1%
noise), so every step is a real ``energy-bench ab`` job that sees exactly what each commit's ``work.py`` says.
"""

from __future__ import annotations

import math
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energy_bench.cli import main
from energy_bench.runs.bisect import bisect
from tests.core.test_ab import FAST, commit, git, worktrees
from tests.core.test_ab import repo as repo  # the fixture

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def monotone(culprit: int, skipped=frozenset()):
    """A verdict for commits 0..N-1 whose first bad one is ``culprit`` (N: none), skipping ``skipped``; it records
    every commit it is asked about."""
    asked = []

    def verdict(index: int) -> str:
        asked.append(index)
        if index in skipped:
            return "skip"
        return "bad" if index >= culprit else "good"

    return verdict, asked


# ---------------------------------------------------------------------------- the search


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_finds_the_culprit_within_log2_n_plus_one_verdicts(data):
    n = data.draw(st.integers(1, 2000), label="n")
    culprit = data.draw(st.integers(0, n - 1), label="culprit")
    verdict, asked = monotone(culprit)
    result = bisect(list(range(n)), verdict)
    assert result.culprit == culprit and result.range == [culprit] and result.bad_known
    assert len(asked) <= math.ceil(math.log2(n)) + 1
    assert asked[0] == n - 1  # BAD first
    assert len(set(asked)) == len(asked)
    assert [(s.commit, s.verdict) for s in result.steps] == [(i, verdict(i)) for i in asked[: len(result.steps)]]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_skips_give_a_range_that_holds_the_culprit(data):
    n = data.draw(st.integers(1, 60), label="n")
    culprit = data.draw(st.integers(0, n), label="culprit")  # n: no commit is bad
    skipped = data.draw(st.frozensets(st.integers(0, n - 1)), label="skipped")
    verdict, asked = monotone(culprit, skipped)
    result = bisect(list(range(n)), verdict)
    assert len(set(asked)) == len(asked) <= n
    if culprit == n and n - 1 not in skipped:
        assert result.no_regression and result.culprit is None and result.range == []
        return
    assert result.range and result.range == list(range(result.first, result.last + 1))
    if culprit < n:
        assert culprit in result.range
    if result.culprit is not None:
        assert result.culprit == culprit and culprit not in skipped
        return
    # not isolated: every commit of the range but a known bad last one was skipped
    assert result.culprit is None
    inner = result.range[:-1] if result.bad_known else result.range
    assert set(inner) <= skipped and inner
    if result.bad_known:
        assert verdict(result.last) == "bad"
    else:
        assert n - 1 in skipped  # BAD itself could not be measured
    assert result.first == 0 or verdict(result.first - 1) == "good"


def test_bad_that_passes_and_bad_input():
    verdict, asked = monotone(culprit=5)
    result = bisect(list("abcde"), lambda c: verdict("abcde".index(c)))
    assert result.no_regression and asked == [4]
    with pytest.raises(ValueError, match="no commits"):
        bisect([], lambda c: "good")
    with pytest.raises(ValueError, match="not one of good, bad, skip"):
        bisect([1, 2], lambda c: "maybe")


# ---------------------------------------------------------------------------- the command


@needs_git
def test_bisect_names_the_heavier_commit(repo, capsys):
    (repo / "NOTES.txt").write_text("no code\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a commit that changes no code")
    commit(repo, "three times the work", units=30)
    heavier = git(repo, "rev-parse", "HEAD").strip()
    commit(repo, "still heavy", units=31)
    good = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    code = main(["bisect", good, "HEAD", "--fail", "joules:10%", "--repeat", "1", "--", *FAST])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert f"first bad commit: {heavier[:10]} three times the work" in out
    assert "work.py | 2 +-" in out  # the culprit's diff --stat against its parent
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert 2 <= len(steps) <= 3  # ceil(log2 3) + 1
    assert steps[0].startswith("step 1: ") and "still heavy: bad (joules +" in steps[0]
    assert any(f"{heavier[:10]} three times the work: bad (joules +" in s for s in steps)
    assert len(worktrees(repo)) == 1  # every step's worktrees are gone


@needs_git
def test_a_commit_whose_benchmark_fails_is_skipped(repo, capsys):
    (repo / "work.py").write_text("raise ImportError('broken on purpose')\n")
    git(repo, "commit", "-q", "-am", "broken")
    commit(repo, "heavier and fixed", units=30)
    code = main(["bisect", "HEAD~2", "HEAD", "--repeat", "1", "--", *FAST])
    out, err = capsys.readouterr()
    # BAD is bad, the broken commit is skipped: the first bad one is either of them
    assert code == 1, out + err
    assert " broken: skip (collecting the benchmarks in head " in out
    assert "could not be isolated (skipped commits); it is one of these 2:" in out
    assert " broken (skip)" in out and " heavier and fixed (bad)" in out
    assert len(worktrees(repo)) == 1


@needs_git
def test_a_bad_that_passes_exits_1(repo, capsys):
    (repo / "NOTES.txt").write_text("no code\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "notes")
    code = main(["bisect", "HEAD~1", "HEAD", "--repeat", "1", "--", *FAST])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert len([line for line in out.splitlines() if line.startswith("step ")]) == 1
    assert "no commit fails the gate: BAD " in out and "notes passes against GOOD" in out
    assert len(worktrees(repo)) == 1


@needs_git
@pytest.mark.parametrize(
    "change, subject, undecided",
    [
        ("heavier", "three times the work", "joules beyond joules:10%, not significant"),
        ("notes", "notes", "joules not shown within joules:10%"),
    ],
)
def test_a_step_the_runs_cannot_decide_is_measured_again(repo, capsys, change, subject, undecided):
    if change == "heavier":
        commit(repo, subject, units=30)
    else:
        (repo / "NOTES.txt").write_text("no code\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", subject)
    # at alpha 1e-100 no 2 + 2 or 4 + 4 runs are significant (t would need to pass ~1e16), and the upper confidence
    # bound of any change is far beyond 10 %: neither bad nor good is shown, so the step is measured again, then
    # judged by the last job
    args = ["--fail", "joules:10%", "--repeat", "2", "--max-repeat", "4", "--alpha", "1e-100"]
    code = main(["bisect", "HEAD~1", "HEAD", *args, "--", *FAST])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    again = [line for line in out.splitlines() if "again with --repeat" in line]
    assert len(again) == 1 and f"{undecided}; again with --repeat 4" in again[0]
    assert err.count("x 4 runs, order ABBA") == 1 and err.count("x 8 runs, order ABBABAAB") == 1
    assert f"{subject}: good (joules " in out and "not confirmed with 4 runs per side: " in out
    assert "no commit fails the gate" in out
    assert len(worktrees(repo)) == 1


@needs_git
@pytest.mark.parametrize(
    "args, message",
    [
        (["bisect", "no-such-branch", "HEAD"], "'no-such-branch' is not a commit"),
        (["bisect", "HEAD", "HEAD~1"], "is not an ancestor of BAD"),
        (["bisect", "HEAD", "HEAD"], "nothing to bisect"),
        (["bisect", "HEAD~1", "HEAD", "--fail", "joules:5"], "cannot parse 'joules:5'"),
    ],
)
def test_usage_errors_exit_2(repo, capsys, args, message):
    commit(repo, "second", units=11)
    with pytest.raises(SystemExit) as info:
        main([*args, "--", *FAST])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err
    assert len(worktrees(repo)) == 1
