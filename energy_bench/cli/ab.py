"""``energy-bench ab BASE [HEAD] -- <pytest args>``: both versions of the code in one job, benchmark by benchmark.

BASE (and HEAD, when given) are checked out in temporary git worktrees; without HEAD the current working tree is
the head side, uncommitted changes included. Both trees collect the selected benchmarks; those in both run
alternately (:func:`energy_bench.runs.ab.schedule`), each run one pytest process in its tree's directory with that
tree first on ``PYTHONPATH``, so the code under test is imported from it. Then each side's runs are pooled per
benchmark and gated like ``energy-bench compare`` (:mod:`energy_bench.runs.ab`). The worktrees are removed on the
way out, also on Ctrl-C or SIGTERM.

Exit codes: 0 fine, 1 a regression under ``--fail`` or a head run that failed, 2 bad arguments or trees that cannot
be compared, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_bench.cli import ab_select
from energy_bench.cli.compare import parse_alpha, parse_threshold_option
from energy_bench.errors import EnergyBenchError
from energy_bench.runs import ab, formats
from energy_bench.runs.compare import ALPHA, DEFAULT_THRESHOLDS, parse_thresholds

#: the module name the helper plugin gets in the temporary folder (loaded with -p)
PLUGIN = "_energy_bench_ab"
#: lines of a failed pytest's output shown
TAIL_LINES = 15

EPILOG = """examples:
  energy-bench ab origin/main -- benchmarks/test_x.py                  main vs the working tree
  energy-bench ab v1.2 v1.3 --repeat 4 -- -k resnet                   two tags, 4 runs per side (ABBABAAB)
  energy-bench ab origin/main HEAD --fail joules:10% --format markdown -- benchmarks/ >> "$GITHUB_STEP_SUMMARY"
"""


class AbError(EnergyBenchError):
    """The job cannot run (not a git repository, an unknown commit, a tree whose collection fails): exit 2.

    ``side``: the tree at fault ("base" or "head") when it is one tree's, e.g. its collection failed.
    """

    def __init__(self, message: str, side: str | None = None) -> None:
        super().__init__(message)
        self.side = side


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "ab",
        help="A/B: benchmark two versions of the code alternately in one job and compare them",
        description="Run the selected benchmarks of BASE and HEAD alternately (ABBA...), pool each side's runs "
        "and compare them. pytest arguments go after --.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("base", metavar="BASE", help="commit-ish of the baseline, e.g. origin/main")
    parser.add_argument(
        "head", nargs="?", metavar="HEAD", help="commit-ish to compare (default: the working tree, uncommitted changes)"
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=2,
        help="runs per side and benchmark, in Thue-Morse order (default 2: ABBA; 4: ABBABAAB; 1: AB, no between-run "
        "test)",
    )
    parser.add_argument(
        "--fail",
        type=parse_threshold_option,
        metavar="EXPR[,EXPR...]",
        help="exit 1 on a regression beyond these thresholds, e.g. joules:10%%,accuracy:1pt",
    )
    parser.add_argument("--alpha", type=parse_alpha, default=ALPHA, help=f"significance level (default {ALPHA})")
    parser.add_argument("--format", choices=formats.FORMATS, default="table", help="output format (default table)")
    parser.add_argument("--save", metavar="DIR", help="write base.json, head.json (pooled) and runs/ (every run)")
    parser.add_argument(
        "--save-history",
        metavar="URL",
        nargs="?",
        const="",
        default=None,
        help="also add every run of both sides to the history store (no URL: $ENERGY_BENCH_HISTORY, else "
        ".benchmarks/history.sqlite), each under its own commit",
    )
    parser.add_argument("--force", action="store_true", help="compare even different meters, sources or devices")
    parser.set_defaults(handler=run_ab, subparser=parser, pytest_args=[])


# ---------------------------------------------------------------------------- trees


@dataclass
class Tree:
    side: str  # "base" or "head"
    label: str
    root: Path
    worktree: bool  # a temporary worktree to remove (False: the user's working tree)


def git(args: Sequence[str], cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise AbError(f"git {' '.join(args)}: {reason}")
    return done.stdout.strip()


def resolve_commit(repo: Path, spec: str) -> str:
    try:
        return git(["rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}"], repo)
    except AbError:
        raise AbError(f"{spec!r} is not a commit in {repo} (fetch it first, e.g. git fetch origin)") from None


@dataclass
class Job:
    """The temporary folder, the two trees, and what the runs produced."""

    repo: Path
    subdir: Path  # where the user stands inside the repository: each tree runs pytest in the same place
    tmp: Path
    trees: dict[str, Tree] = field(default_factory=dict)

    def add_worktree(self, side: str, spec: str) -> None:
        commit = resolve_commit(self.repo, spec)
        path = self.tmp / side
        git(["worktree", "add", "--detach", str(path), commit], self.repo)
        self.trees[side] = Tree(side, f"{side} {commit[:10]} ({spec})", path, worktree=True)

    def cleanup(self) -> None:
        for tree in self.trees.values():
            if tree.worktree:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(tree.root)],
                    cwd=self.repo,
                    check=False,
                    capture_output=True,
                )
        shutil.rmtree(self.tmp, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=self.repo, check=False, capture_output=True)


def open_job(base: str, head: str | None) -> Job:
    cwd = Path.cwd()
    try:
        repo = Path(git(["rev-parse", "--show-toplevel"], cwd))
    except (AbError, OSError) as exc:
        raise AbError(f"not inside a git repository ({exc})") from None
    job = Job(repo, cwd.resolve().relative_to(repo.resolve()), Path(tempfile.mkdtemp(prefix="energy-bench-ab-")))
    try:
        job.add_worktree("base", base)
        if head is None:
            job.trees["head"] = Tree("head", "head (working tree)", repo, worktree=False)
        else:
            job.add_worktree("head", head)
        plugin_dir = job.tmp / "plugin"
        plugin_dir.mkdir()
        shutil.copyfile(ab_select.__file__, plugin_dir / f"{PLUGIN}.py")
    except BaseException:
        job.cleanup()
        raise
    return job


# ---------------------------------------------------------------------------- pytest processes


def child_env(job: Job, tree: Tree, **variables: str) -> dict[str, str]:
    """The environment of a pytest process in ``tree``: its root (and ``src/``) first on PYTHONPATH."""
    env = os.environ.copy()
    paths = [str(tree.root)]
    if (tree.root / "src").is_dir():
        paths.append(str(tree.root / "src"))
    paths.append(str(job.tmp / "plugin"))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop(ab_select.COLLECT, None)
    env.pop(ab_select.SELECT, None)
    env.update(variables)
    return env


def run_pytest(job: Job, tree: Tree, arguments: Sequence[str], **variables: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "-p", PLUGIN, *arguments]
    return subprocess.run(
        command,
        cwd=tree.root / job.subdir,
        env=child_env(job, tree, **variables),
        capture_output=True,
        text=True,
        check=False,
    )


def tail(done: subprocess.CompletedProcess) -> str:
    lines = (done.stdout + done.stderr).strip().splitlines()
    return "\n".join("    " + line for line in lines[-TAIL_LINES:])


def collect(job: Job, tree: Tree, pytest_args: Sequence[str]) -> list[str]:
    """Node ids of the benchmarks ``pytest --collect-only -q <args>`` selects in ``tree``."""
    out = job.tmp / f"collect-{tree.side}.json"
    done = run_pytest(job, tree, ["--collect-only", "-q", *pytest_args], **{ab_select.COLLECT: str(out)})
    if done.returncode not in (0, 5) or not out.is_file():  # 5: nothing collected
        raise AbError(
            f"collecting the benchmarks in {tree.label} failed (pytest exit {done.returncode}):\n{tail(done)}",
            side=tree.side,
        )
    return json.loads(out.read_text(encoding="utf-8"))


@dataclass
class Outcomes:
    """Each side's JSON results by repetition, and a line per run that failed or gave no result."""

    results: dict[str, dict[int, list[dict[str, Any]]]] = field(default_factory=lambda: {"base": {}, "head": {}})
    problems: list[str] = field(default_factory=list)
    head_failures: int = 0


def run_all(job: Job, plan: list[ab.PlannedRun], pytest_args: Sequence[str], repeat: int) -> Outcomes:
    outcomes = Outcomes()
    runs_dir = job.tmp / "runs"
    runs_dir.mkdir()
    for number, planned in enumerate(plan, start=1):
        tree = job.trees[planned.side]
        which = f"{planned.side} run {planned.repetition + 1} of {repeat}"
        print(f"energy-bench ab: [{number}/{len(plan)}] {planned.benchmark} ({which})", file=sys.stderr, flush=True)
        out = runs_dir / f"{number:04d}-{planned.side}-{planned.repetition + 1}.json"
        done = run_pytest(job, tree, [f"--benchmark-json={out}", *pytest_args], **{ab_select.SELECT: planned.benchmark})
        result = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else None
        names = [b.get("fullname") for b in (result or {}).get("benchmarks", [])]
        if done.returncode != 0 or planned.benchmark not in names:
            why = f"pytest exit {done.returncode}" if done.returncode != 0 else "no result (skipped?)"
            outcomes.problems.append(f"{planned.benchmark}: {which} failed ({why})")
            print(f"energy-bench ab: {planned.benchmark} ({which}) failed ({why}):\n{tail(done)}", file=sys.stderr)
            outcomes.head_failures += planned.side == "head" and done.returncode != 0
        if result is not None and planned.benchmark in names:
            outcomes.results[planned.side].setdefault(planned.repetition, []).append(result)
    return outcomes


# ---------------------------------------------------------------------------- the command


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def guarded(command: str, args: argparse.Namespace, work: Callable[[], int]) -> int:
    """``work()`` with its worktrees removed on SIGTERM too (a cancelled CI job): an :class:`AbError` is a usage
    error of ``command``, an interrupt exit 130."""
    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        return work()
    except AbError as exc:
        args.subparser.error(str(exc))
    except KeyboardInterrupt:
        print(f"energy-bench {command}: interrupted; temporary worktrees removed", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_ab(args: argparse.Namespace) -> int:
    def work() -> int:
        job = open_job(args.base, args.head)
        try:
            return compare_trees(args, job)
        finally:
            job.cleanup()

    return guarded("ab", args, work)


@dataclass
class Measured:
    """One A/B job's outcome: the report (None when no head run gave a result because head runs failed)."""

    report: formats.CompareReport | None
    outcomes: Outcomes
    base: list
    head: list


def measure(
    job: Job,
    pytest_args: Sequence[str],
    *,
    repeat: int = 2,
    fail: tuple | None = None,
    alpha: float = ALPHA,
    force: bool = False,
) -> Measured:
    """Collect both trees, run the plan, pool each side and gate head against base (``fail``, else the default
    thresholds, reported but not gating). Raises :class:`AbError` when the trees cannot be compared."""
    pytest_args = list(pytest_args)
    base_ids = collect(job, job.trees["base"], pytest_args)
    selection = ab.select(base_ids, collect(job, job.trees["head"], pytest_args))
    if not selection.common:
        side = "head" if base_ids else None
        raise AbError("no benchmark selected in both trees" + _only_lines(selection, ", "), side=side)
    order = ab.run_order(repeat)
    print(
        f"energy-bench ab: {len(selection.common)} benchmark(s) x {2 * repeat} runs, order {order} per benchmark",
        file=sys.stderr,
    )
    outcomes = run_all(job, ab.schedule(selection.common, repeat), pytest_args, repeat)
    base = ab.side_runs(outcomes.results["base"], "base")
    head = ab.side_runs(outcomes.results["head"], "head")
    if not base or not head:
        missing = "either side" if not (base or head) else ("head" if base else "base")
        if outcomes.head_failures:  # the head's tests fail: a failure of the change, not of the job
            print(f"energy-bench ab: no benchmark gave a result on {missing}; head runs failed", file=sys.stderr)
            return Measured(None, outcomes, base, head)
        side = "head" if base else "base"
        raise AbError(f"no benchmark gave a result on {missing}: " + "; ".join(outcomes.problems), side=side)
    problems = ab.ab_problems(base, head)
    if problems and not force:
        raise AbError(f"refusing to compare: {'; '.join(problems)} (use --force to compare anyway)")
    notes = [f"run order per benchmark: {order} (A = base, B = head)"]
    notes += [f"only in {side}, not compared: {name}" for side, names in _only(selection) for name in names]
    notes += outcomes.problems + [f"forced despite: {p}" for p in problems]
    thresholds = fail or parse_thresholds(DEFAULT_THRESHOLDS)
    labels = (job.trees["base"].label, job.trees["head"].label)
    report = ab.ab_report(base, head, labels, thresholds, gating=bool(fail), alpha=alpha, notes=notes)
    return Measured(report, outcomes, base, head)


def compare_trees(args: argparse.Namespace, job: Job) -> int:
    measured = measure(job, args.pytest_args, repeat=args.repeat, fail=args.fail, alpha=args.alpha, force=args.force)
    report, outcomes = measured.report, measured.outcomes
    if report is None:
        return 1
    if args.save:
        save(Path(args.save), job, measured.base, measured.head, outcomes)
    if args.save_history is not None:
        save_history(args.save_history, job)
    print(formats.render_compare(report, args.format), end="")
    if outcomes.head_failures:
        print(f"energy-bench ab: {outcomes.head_failures} head run(s) failed", file=sys.stderr)
    return 1 if (args.fail and report.regressions) or outcomes.head_failures else 0


def _only(selection: ab.Selection) -> list[tuple[str, list[str]]]:
    return [("base", selection.only_base), ("head", selection.only_head)]


def _only_lines(selection: ab.Selection, separator: str) -> str:
    parts = [f"only in {side}: {' '.join(names)}" for side, names in _only(selection) if names]
    return f" ({separator.join(parts)})" if parts else ""


def save_history(url: str, job: Job) -> None:
    """Every run of the job into the history store; a store that cannot take them costs one line, not the report."""
    import os

    from energy_bench.runs.parse import RunLoadError, read_json
    from energy_bench.runs.store import ENV_VAR, StoreError, open_store
    from energy_bench.runs.text import printable

    paths = sorted((job.tmp / "runs").rglob("*.json"))
    try:
        store = open_store(url or os.environ.get(ENV_VAR) or None)
        try:
            added = sum(store.add(read_json(p), origin=str(p), text=p.read_text(encoding="utf-8")) for p in paths)
        finally:
            store.close()
    except (StoreError, RunLoadError, OSError) as exc:
        print(f"energy-bench ab: runs not added to the history store: {printable(str(exc))}", file=sys.stderr)
        return
    print(f"energy-bench ab: {added} run(s) added to {store.display_url}", file=sys.stderr)


def save(folder: Path, job: Job, base, head, outcomes: Outcomes) -> None:
    """``base.json`` and ``head.json`` (each side pooled), and every run's own file under ``runs/``."""
    folder.mkdir(parents=True, exist_ok=True)
    for side, runs in (("base", base), ("head", head)):
        results = [r for rep in outcomes.results[side].values() for r in rep]
        (folder / f"{side}.json").write_text(json.dumps(ab.pooled_json(runs, results), indent=2), encoding="utf-8")
    shutil.copytree(job.tmp / "runs", folder / "runs", dirs_exist_ok=True)
