"""Field check of ``energy-bench bisect``: how often it names a heavier loop planted in a real history.

Each trial builds a throwaway git repository: a root commit with the ~17 ms pure-Python loop of
``test_field.py`` under ``energy()``'s default settings (GOOD), then ``--commits`` commits (default 16) of which
most change nothing the benchmark runs (a notes file), one, drawn at random, makes the loop ``--heavier`` times
the work (default 1.2: 20 % more), and every later one keeps it. Then ``energy-bench bisect GOOD HEAD`` runs on
it, each step a real A/B job on this machine, and the trial counts as a hit when it names the planted commit.
Target: at least 9 hits in 10 (``--floor``, as a fraction of the trials); exit 1 below it.

    python benchmarks/field/bisect_field.py --trials 10        # the field figure: an hour or more, idle machine
    python benchmarks/field/bisect_field.py --trials 1         # one bisection, a few minutes

Not a pytest module (no ``test_`` prefix): it runs minutes to hours, so it is started by hand.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIELD = Path(__file__).resolve().parent
REPO = FIELD.parents[1]
sys.path[:0] = [str(FIELD), str(REPO)]

from test_field import DEFAULT_FAIL, LOOP_TEST, git, loop_size  # noqa: E402

#: one bisection that hangs must not hang the field run
TRIAL_TIMEOUT = 3600


def history(path: Path, n: int, commits: int, planted: int, heavier: float) -> tuple[str, list[str]]:
    """GOOD, then ``commits`` commits; the loop is ``heavier`` times the work from commit ``planted`` (0-based) on."""
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.email", "field@example.invalid")
    git(path, "config", "user.name", "field")
    shas = []
    for i in range(-1, commits):
        size = round(heavier * n) if i >= planted else n
        (path / "test_loop.py").write_text(LOOP_TEST.format(n=size))
        (path / "NOTES.txt").write_text(f"commit {i + 1}\n")
        git(path, "add", "-A")
        message = "base" if i < 0 else ("heavier loop" if i == planted else f"notes {i + 1}")
        git(path, "commit", "-q", "-m", message)
        shas.append(git(path, "rev-parse", "HEAD"))
    return shas[0], shas[1:]


def trial(number: int, args: argparse.Namespace, n: int, rng: random.Random) -> dict:
    planted = rng.randrange(args.commits)
    with tempfile.TemporaryDirectory(prefix="energy-bench-bisect-field-") as tmp:
        repo = Path(tmp) / "repo"
        good, shas = history(repo, n, args.commits, planted, args.heavier)
        command = [sys.executable, "-m", "energy_bench.cli", "bisect", good, "HEAD", "--fail", args.fail]
        command += ["--repeat", str(args.repeat)]
        command += ["--max-repeat", str(args.max_repeat)] if args.max_repeat is not None else []
        command += ["--", "-p", "no:cacheprovider", "test_loop.py"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        started = time.perf_counter()
        done = subprocess.run(
            command, cwd=repo, env=env, capture_output=True, text=True, check=False, timeout=TRIAL_TIMEOUT
        )
        seconds = time.perf_counter() - started
    named = re.search(r"^first bad commit: ([0-9a-f]+) ", done.stdout, re.M)
    steps = [line for line in done.stdout.splitlines() if line.startswith("step ")]
    row = {
        "trial": number,
        "planted": f"{planted + 1}/{args.commits} {shas[planted][:10]}",
        "named": named.group(1) if named else f"none (exit {done.returncode})",
        "hit": bool(named) and shas[planted].startswith(named.group(1)),
        "steps": len(steps),
        "minutes": seconds / 60,
    }
    if done.returncode not in (0, 1):
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        print(f"trial {number}: energy-bench bisect exit {done.returncode}:\n{tail}", file=sys.stderr)
    if args.verbose or not row["hit"]:
        print("\n".join(f"    {line}" for line in done.stdout.splitlines()), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="bisections, each on a new history (default 10)")
    parser.add_argument("--commits", type=int, default=16, help="commits after GOOD (default 16)")
    parser.add_argument("--heavier", type=float, default=1.2, help="the planted loop's work factor (default 1.2)")
    parser.add_argument("--fail", default=DEFAULT_FAIL, help=f"bisect's gate (default {DEFAULT_FAIL})")
    parser.add_argument(
        "--repeat", type=int, default=4, help="runs per side and step (default 4: five right verdicts in a row)"
    )
    parser.add_argument(
        "--max-repeat", type=int, default=None, help="bisect's --max-repeat (default: bisect's own, 4 x --repeat)"
    )
    parser.add_argument("--floor", type=float, default=0.9, help="least share of hits (default 0.9: 9 of 10)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the planted commits (default: random)")
    parser.add_argument("--verbose", action="store_true", help="print every bisection's steps, not only misses")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.commits < 1:
        parser.error("--trials and --commits must be at least 1")
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    n = loop_size()
    print(
        f"bisect field check: {args.trials} trial(s), {args.commits} commits, loop of {n} iterations "
        f"x{args.heavier} planted at random (seed {seed}), --fail {args.fail}, --repeat {args.repeat}"
        + (f", --max-repeat {args.max_repeat}" if args.max_repeat is not None else ""),
        flush=True,
    )
    rows = []
    for number in range(1, args.trials + 1):
        row = trial(number, args, n, rng)
        rows.append(row)
        print(
            f"trial {number}: planted {row['planted']}, named {row['named']}: {'hit' if row['hit'] else 'MISS'} "
            f"({row['steps']} steps, {row['minutes']:.1f} min)",
            flush=True,
        )
    hits = sum(row["hit"] for row in rows)
    floor = math.ceil(args.floor * args.trials)
    print(f"named the planted commit in {hits} of {args.trials} (floor {floor})")
    return 0 if hits >= floor else 1


if __name__ == "__main__":
    sys.exit(main())
