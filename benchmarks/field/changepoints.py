"""Field check of the change-point detector on real runs: does ``energy-bench history`` find a planted step at the
right commit, and how often does it find one where nothing changed?

Each trial builds a throwaway git history of ``--commits`` commits of a ~20 ms pure-Python loop and runs real pytest
sessions on it (``--benchmark-autosave``: each run goes into the history store as any saved run does), then reads
the store and runs :func:`energy_bench.history.changepoints.detect` on the joules-per-call series. With
``--runs-per-commit K`` every commit is measured K times, in K passes over the whole history (as asv's
``--interleave-rounds`` spreads its rounds), so a commit's runs see different minutes of the machine.
Scenarios: a step of +10 % at a random commit (judged at the default effect size, 5 %), a step of +5 % (judged at
half of it, 2.5 %), and no step at all (judged at both). A step is found when a regression is reported whose first
commit after is the planted one; every other change point counts as false.

Sessions run one after another, each in a new process pinned to one CPU, so run it on an otherwise idle
machine; the meter is whatever ``--energy-meter=auto`` picks here (on a VM: the CPU-time estimate).

    python benchmarks/field/changepoints.py                        # 10 trials x 40 commits per scenario
    python benchmarks/field/changepoints.py --runs-per-commit 3 --out docs/data/field-changepoints-3.json
    python benchmarks/field/changepoints.py --trials 1,1,1 --commits 8   # a quick look that everything works

It writes ``--out`` (default ``docs/data/field-changepoints.json``), which ``docs/changes.md`` renders.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from energy_bench.history.changepoints import ALPHA, MIN_CHANGE, detect, noise
from energy_bench.history.series import build_series
from energy_bench.meters.cpu_features import describe_cpu, read_cpu
from energy_bench.runs.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the field benchmarks' loop module, sized the same way
from test_field import LOOP_TEST as FIELD_LOOP_TEST
from test_field import loop_size

REPO = Path(__file__).resolve().parents[2]
LOOP_SECONDS = 0.020
#: (name, relative step, the effect sizes it is judged at)
SCENARIOS = (("+10 % step", 0.10, (MIN_CHANGE,)), ("+5 % step", 0.05, (0.025,)), ("no step", 0.0, (MIN_CHANGE, 0.025)))
#: the field benchmarks' loop; the comment makes every commit change the file, as a real commit would
LOOP_TEST = "# commit {commit}\n" + FIELD_LOOP_TEST
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def git(repo: Path, *args: str, when: datetime | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "field", "GIT_AUTHOR_EMAIL": "field@localhost"}
    env |= {"GIT_COMMITTER_NAME": "field", "GIT_COMMITTER_EMAIL": "field@localhost"}
    if when is not None:  # one commit a minute: the store orders runs by commit time
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when.isoformat()
    done = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def run_session(repo: Path) -> int:
    """One pytest session, saved, in a process of its own (as CI runs them: sessions in one process share its
    memory layout and drift together, which made their run-to-run noise larger, not smaller)."""
    # hypothesis' plugin only costs start-up time here: the loop module has no property tests
    quiet = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    command = [sys.executable, "-m", "pytest", "-q", *quiet, "--benchmark-autosave", "test_loop.py"]
    # no bytecode cache: a checkout rewrites test_loop.py, often at the same size, and pytest's cache of the
    # rewritten module is keyed by size and whole-second mtime
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with open(repo.parent / "sessions.log", "a") as log:
        done = subprocess.run(command, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600)
        return done.returncode


def trial(root: Path, n: int, commits: int, step: float, planted: int | None, passes: int) -> tuple[list[str], list]:
    """The history of one trial: the commits' hashes and the joules series the store holds (``passes`` runs each)."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    hashes = []
    for c in range(commits):
        size = round(n * (1 + step)) if planted is not None and c >= planted else n
        (repo / "test_loop.py").write_text(LOOP_TEST.format(commit=c, n=size))
        git(repo, "add", "test_loop.py")
        git(repo, "commit", "-q", "-m", f"commit {c}", when=START + timedelta(minutes=c))
        hashes.append(git(repo, "rev-parse", "HEAD"))
    for p in range(passes):
        for c, commit in enumerate(hashes):
            git(repo, "checkout", "-q", commit)
            if run_session(repo) != 0:
                raise SystemExit(f"the session at commit {c} (pass {p + 1}) failed")
    store = open_store(None, str(repo / ".benchmarks"))
    try:
        series = build_series(store.runs(), "joules")  # in commit order: the store orders runs by commit time
    finally:
        store.close()
    if len(series) != 1 or len(series[0].points) != commits * passes:
        raise SystemExit(f"expected one series of {commits * passes} points, got {[len(s.points) for s in series]}")
    return hashes, series[0]


def score(series, hashes: list[str], planted: int | None, min_change: float) -> dict:
    changes = detect(series, min_change=min_change, alpha=ALPHA)
    target = hashes[planted] if planted is not None else None
    found = [c for c in changes if c.after_commit == target and c.direction == "regression"]
    return {
        "min_change": min_change,
        "found": bool(found),
        "false": len(changes) - len(found),
        "changes": [
            {"after_commit": c.after_commit[:10], "change": round(c.change, 4), "p": c.p_value} for c in changes
        ],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--trials", default="10,10,10", help="trials of the +10 %%, +5 %% and no-step scenarios (default 10,10,10)"
    )
    parser.add_argument("--commits", type=int, default=40)
    parser.add_argument("--runs-per-commit", type=int, default=1, help="sessions per commit, one per pass (default 1)")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)), help="the CPU to run on")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "data" / "field-changepoints.json")
    args = parser.parse_args(argv)
    try:
        trials = [int(t) for t in args.trials.split(",")]
    except ValueError:
        trials = []
    if len(trials) != len(SCENARIOS) or min(trials) < 0 or args.commits < 8 or args.runs_per_commit < 1:
        parser.error(
            f"--trials takes {len(SCENARIOS)} whole numbers >= 0 (e.g. 10,10,10); --commits must be >= 8 and "
            "--runs-per-commit >= 1"
        )
    # One CPU for every session: in a short check on a 2-vCPU VM, pinned sessions spread about half as much as
    # sessions the scheduler placed freely (the run-to-run noise the detector has to see through)
    os.sched_setaffinity(0, {args.cpu})
    rng = random.Random(args.seed)
    n = loop_size(LOOP_SECONDS)
    began = time.monotonic()
    results = []
    for (name, step, effects), count in zip(SCENARIOS, trials):
        for t in range(count):
            planted = rng.randrange(args.commits // 4, 3 * args.commits // 4) if step else None
            with tempfile.TemporaryDirectory() as tmp:
                hashes, series = trial(Path(tmp), n, args.commits, step, planted, args.runs_per_commit)
            scores = [score(series, hashes, planted, effect) for effect in effects]
            values = [p.value for p in series.points]
            results.append(
                {
                    "scenario": name,
                    "step": step,
                    "trial": t,
                    "planted": planted,
                    "scores": scores,
                    "joules": values,
                    "meter": series.points[0].meter,
                    "source": series.points[0].source,
                }
            )
            print(
                f"{name}, trial {t + 1}: "
                + "; ".join(f"at {s['min_change']:.1%}: found={s['found']} false={s['false']}" for s in scores)
                + f" (planted at {planted}, noise {noise(np.array(values)) / np.mean(values):.1%}; changes "
                + ", ".join(f"{c['after_commit'][:7]} {c['change']:+.1%}" for c in scores[0]["changes"])
                + ")",
                flush=True,
            )
    report = {
        "cpu": describe_cpu(cpu) if (cpu := read_cpu()) is not None else None,
        "cores": os.cpu_count(),
        "pinned_cpu": args.cpu,
        "python": platform.python_version(),
        "commit": git(REPO, "rev-parse", "--short", "HEAD"),
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "loop_iterations": n,
        "commits": args.commits,
        "runs_per_commit": args.runs_per_commit,
        "trials": dict(zip((name for name, _, _ in SCENARIOS), trials)),
        "alpha": ALPHA,
        "minutes": round((time.monotonic() - began) / 60, 1),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
