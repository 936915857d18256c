"""``energy-bench bisect GOOD BAD [--fail EXPR] -- <pytest args>``: the first commit where the gate fails.

The candidates are ``git rev-list --first-parent --ancestry-path GOOD..BAD``, oldest first. Each step is one
``energy-bench ab`` job (:func:`energy_bench.cli.ab.measure`): GOOD and the candidate in temporary worktrees,
measured alternately, the candidate gated against GOOD with ``--fail`` (default joules:10%). A regression makes the
candidate bad, none good; a candidate whose benchmarks cannot be measured (a head run fails, its collection fails,
no result) is skipped, like ``git bisect skip``. The search itself is :func:`energy_bench.runs.bisect.bisect`.

A step the runs cannot decide says neither good nor bad: its change lies beyond a threshold but is not confirmed
(not significant, or not clear of GOOD's runs), or it lies inside but the runs cannot show it there (the change's
upper confidence bound is beyond the threshold). On a noisy runner those are the verdicts that send a bisection
the wrong way: a heavier commit measured a few percent lighter than it is looks good. Such a step is measured
again in a new job with twice the runs per side, up to ``--max-repeat``, and the last job decides (each job is a
test of its own, so no run is judged twice). On a quiet runner the first job shows every step, at no extra cost.

Exit codes: 0 the first bad commit was found, 1 it was not (BAD passes the gate, or skips leave a range),
2 bad arguments (an unknown commit, GOOD not an ancestor of BAD, a bad ``--fail``) or GOOD that cannot be measured,
130 interrupted.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

from energy_bench.cli import ab as ab_cli
from energy_bench.cli.ab import AbError, git, positive_int, resolve_commit
from energy_bench.cli.compare import parse_alpha, parse_threshold_option
from energy_bench.runs import bisect as search
from energy_bench.runs.compare import ALPHA, BenchmarkComparison, parse_thresholds
from energy_bench.runs.text import printable

#: the gate when --fail is not given
DEFAULT_FAIL = "joules:10%"

EPILOG = """examples:
  energy-bench bisect v1.2 main -- benchmarks/test_x.py                 first commit 10% heavier in joules
  energy-bench bisect v1.2 v1.3 --fail joules:5%,accuracy:1pt --repeat 4 -- -k resnet
"""


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bisect",
        help="find the first commit between GOOD and BAD where the gate fails, one A/B job per step",
        description="Bisect GOOD..BAD (first-parent): each step measures a commit against GOOD with energy-bench "
        "ab and gates it with --fail. pytest arguments go after --. Exit 0 when the first bad commit is found, "
        "1 when it is not.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("good", metavar="GOOD", help="commit-ish that passes the gate (the baseline of every step)")
    parser.add_argument("bad", metavar="BAD", help="commit-ish that fails it; GOOD must be one of its ancestors")
    parser.add_argument(
        "--fail",
        type=parse_threshold_option,
        default=parse_thresholds(DEFAULT_FAIL),
        metavar="EXPR[,EXPR...]",
        help="the gate: a regression beyond these thresholds makes a commit bad (default "
        + DEFAULT_FAIL.replace("%", "%%")
        + ")",
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=2, help="runs per side and benchmark in each step (default 2: ABBA)"
    )
    parser.add_argument(
        "--max-repeat",
        type=positive_int,
        default=None,
        help="a step the runs cannot decide (a change beyond a threshold not confirmed, or one inside not shown "
        "there) is measured again with twice the runs, up to this many per side (default 4 x --repeat; equal to "
        "--repeat: never again)",
    )
    parser.add_argument("--alpha", type=parse_alpha, default=ALPHA, help=f"significance level (default {ALPHA})")
    parser.add_argument("--force", action="store_true", help="compare even different meters, sources or devices")
    parser.set_defaults(handler=run_bisect, subparser=parser, pytest_args=[])


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:10]

    def __str__(self) -> str:
        return f"{self.short} {printable(self.subject)}"


def candidates(repo: Path, good: str, bad: str) -> list[Commit]:
    """The commits after GOOD up to BAD, oldest first, along BAD's first parents; GOOD must be an ancestor of BAD."""
    good_sha, bad_sha = resolve_commit(repo, good), resolve_commit(repo, bad)
    if good_sha == bad_sha:
        raise AbError(f"GOOD and BAD are the same commit ({good_sha[:10]}): nothing to bisect")
    try:
        git(["merge-base", "--is-ancestor", good_sha, bad_sha], repo)
    except AbError:
        raise AbError(f"GOOD {good!r} is not an ancestor of BAD {bad!r}") from None
    lines = git(
        ["rev-list", "--reverse", "--first-parent", "--ancestry-path", "--format=%H %s", f"{good_sha}..{bad_sha}"],
        repo,
    ).splitlines()
    commits = [Commit(*line.partition(" ")[::2]) for line in lines if not line.startswith("commit ")]
    if not commits or commits[-1].sha != bad_sha:
        raise AbError(f"no first-parent path from GOOD {good!r} to BAD {bad!r} (GOOD is on a merged side branch?)")
    return commits


@dataclass
class Judged:
    verdict: str
    detail: str
    regressions: list[str]
    #: changes beyond their threshold that the gate did not confirm: "good" on this evidence is not a verdict
    unconfirmed: list[str] = field(default_factory=list)


def joules_change(comparisons: list[BenchmarkComparison]) -> str:
    """The largest joules change among the compared benchmarks, with its benchmark when there are several."""
    changes = [
        (c.metrics["joules"].change_percent, c.fullname)
        for c in comparisons
        if "joules" in c.metrics and c.metrics["joules"].change_percent is not None
    ]
    if not changes:
        return "no joules compared"
    percent, name = max(changes)
    return f"joules {percent:+.1f}%" + (f" ({printable(name)})" if len(changes) > 1 else "")


def unconfirmed(comparisons: list[BenchmarkComparison], alpha: float) -> list[str]:
    """Gated metrics a "good" verdict does not rest on: a change beyond the threshold on the worse side that the
    gate did not confirm (the t test did not pass, or the runs were not clear of GOOD's: the gate asks for both),
    or a change the between-run test could not show inside the threshold."""
    found = []
    for comparison in comparisons:
        name = printable(comparison.fullname)
        for metric in comparison.metrics.values():
            threshold = metric.threshold
            if threshold is None or metric.regression:
                continue
            worse = float(threshold.worse_by(metric.baseline, metric.current))
            if math.isfinite(worse) and worse > threshold.amount:
                why = (
                    "not significant"
                    if metric.p_worse is None or metric.p_worse > alpha
                    else "not clear of GOOD's runs"
                )
                found.append(f"{name}: {metric.metric} beyond {threshold}, {why}")
            elif metric.within is False:
                found.append(f"{name}: {metric.metric} not shown within {threshold}")
    return found


def repeats(args: argparse.Namespace) -> list[int]:
    """Runs per side of each job a step may take: ``--repeat``, doubled up to ``--max-repeat``."""
    limit = max(args.max_repeat if args.max_repeat is not None else 4 * args.repeat, args.repeat)
    sizes = [args.repeat]
    while sizes[-1] < limit:
        sizes.append(min(2 * sizes[-1], limit))
    return sizes


def job_alpha(args: argparse.Namespace) -> float:
    """The level each job of a step tests at: ``--alpha`` shared among the jobs a step may take (see :func:`judge`)."""
    return args.alpha / len(repeats(args))


def judge(args: argparse.Namespace, good: Commit, commit: Commit) -> Judged:
    """``commit`` against GOOD, gated by ``--fail``: one ``energy-bench ab`` job, and again with twice the runs while
    the runs cannot decide (see :func:`unconfirmed`), up to ``--max-repeat`` runs per side.

    Every job is a new look at the same question, and stopping at the first that says "bad" would raise the false
    alarm rate with each look; so each job tests at ``--alpha`` divided by the jobs a step may take (Bonferroni:
    the step as a whole keeps its false alarms within ``--alpha``)."""
    sizes = repeats(args)
    alpha = job_alpha(args)
    for repeat, again in zip(sizes, [*sizes[1:], None]):
        judged = judge_once(args, good, commit, repeat, alpha)
        if judged.verdict != "good" or not judged.unconfirmed:
            return judged
        if again is not None:
            print(f"    {commit}: {judged.detail}, {judged.unconfirmed[0]}; again with --repeat {again}", flush=True)
    judged.detail += f"; not confirmed with {repeat} runs per side: {judged.unconfirmed[0]}"
    return judged


def judge_once(args: argparse.Namespace, good: Commit, commit: Commit, repeat: int, alpha: float) -> Judged:
    """One ``energy-bench ab`` job: ``commit`` against GOOD, ``repeat`` runs per side, tested at ``alpha``."""
    job = ab_cli.open_job(good.sha, commit.sha)
    try:
        measured = ab_cli.measure(job, args.pytest_args, repeat=repeat, fail=args.fail, alpha=alpha, force=args.force)
    except AbError as exc:
        if exc.side != "head":
            raise AbError(f"GOOD {good} cannot be measured against {commit.short}: {exc}") from None
        return Judged("skip", printable(str(exc).splitlines()[0].rstrip(":")), [])
    finally:
        job.cleanup()
    if measured.report is None or measured.outcomes.head_failures:
        failed = measured.outcomes.head_failures
        return Judged("skip", f"{failed} benchmark run(s) failed", [])
    comparisons = measured.report.comparisons[0]
    regressions = measured.report.regressions
    if regressions:
        return Judged("bad", joules_change(comparisons), regressions)
    return Judged("good", joules_change(comparisons), [], unconfirmed(comparisons, alpha))


def run_bisect(args: argparse.Namespace) -> int:
    return ab_cli.guarded("bisect", args, lambda: bisect_commits(args))


def bisect_commits(args: argparse.Namespace) -> int:
    try:
        repo = Path(git(["rev-parse", "--show-toplevel"], Path.cwd()))
    except (AbError, OSError) as exc:
        raise AbError(f"not inside a git repository ({exc})") from None
    commits = candidates(repo, args.good, args.bad)
    good_sha = resolve_commit(repo, args.good)
    good = Commit(good_sha, git(["log", "-1", "--format=%s", good_sha], repo))
    bound = math.ceil(math.log2(len(commits))) + 1
    sizes = repeats(args)
    jobs = (
        f"{sizes[0]} runs per side"
        if len(sizes) == 1
        else f"{'/'.join(map(str, sizes))} runs per side while undecided, each at alpha {job_alpha(args):.3g}"
    )
    print(
        f"energy-bench bisect: {len(commits)} commit(s) after GOOD {good} up to BAD {commits[-1]}; "
        f"about {bound} step(s), each A/B against GOOD gated by {','.join(map(str, args.fail))} ({jobs})",
        flush=True,
    )
    details: dict[str, Judged] = {}

    def verdict(commit: Commit) -> str:
        judged = judge(args, good, commit)
        details[commit.sha] = judged
        print(f"step {len(details)}: {commit}: {judged.verdict} ({judged.detail})", flush=True)
        for line in judged.regressions:
            print(f"    {line}", flush=True)
        return judged.verdict

    result = search.bisect(commits, verdict)
    return conclude(repo, result, details)


def conclude(repo: Path, result: search.BisectResult, details: dict[str, Judged]) -> int:
    if result.no_regression:
        print(
            f"no commit fails the gate: BAD {result.commits[-1]} passes against GOOD (if BAD is known to be worse, "
            "measure more runs per step: a larger --repeat or --max-repeat)"
        )
        return 1
    culprit = result.culprit
    if culprit is not None:
        print(f"\nfirst bad commit: {culprit}")
        print(git(["diff", "--stat", f"{culprit.sha}^", culprit.sha], repo))
        return 0
    said = {commit.sha: details[commit.sha].verdict if commit.sha in details else "untested" for commit in result.range}
    if result.bad_known:
        print(
            f"\nthe first bad commit could not be isolated (skipped commits); it is one of these {len(result.range)}:"
        )
    else:
        print(
            f"\nBAD could not be measured: the first bad commit, if any, is one of these {len(result.range)} "
            "(none may be bad):"
        )
    for commit in result.range:
        print(f"  {commit} ({said[commit.sha]})")
    return 1
