"""Field benchmarks of the gate: its decision on real reruns of this machine, not on simulated ones.

Skipped unless ``--energy-field`` is given (``benchmarks/conftest.py``); minutes to hours, so run them on an idle
machine. Each test records its counts and rates in ``extra_info`` and prints a table:

* ``test_field_gate_pooled``: a ~17 ms pure-Python loop under ``energy()``'s default settings. K baseline sessions
  are saved, then unchanged reruns and reruns of a loop 20 % heavier, interleaved, each a new pytest session gated by
  ``--energy-compare=last:K``. Targets: at most 1 false alarm, at most 1 heavier rerun missed.
* ``test_field_ab``: the same loop through ``energy-bench ab`` on a temporary git repository: base against an
  unchanged commit and against a commit whose loop is 20 % heavier, one A/B job per rerun. Same targets.
* ``test_field_study``: the study subset (resnet18, alexnet x baseline, prune) saved in K sessions and rerun in a
  separate session: no false alarm; then a session whose training rounds are 20 % heavier (5 optimizer steps per
  round, then 6: ``ENERGY_BENCH_TRAIN_STEPS`` in ``benchmarks/test_compression.py``) must fail on training joules.

    pytest benchmarks/field --energy-field -s            # the full figures
    pytest benchmarks/field --energy-field -s --energy-field-reruns=2 --energy-field-baselines=2   # a quick check

The repository's pytest configuration (``faulthandler_timeout = 300``) dumps the stacks of a test that runs longer
than 5 minutes; a field benchmark does by design, so these tests switch that off for themselves and for the pytest
sessions they start (``no_stack_dumps`` and ``session``).
"""

from __future__ import annotations

import faulthandler
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tabulate import tabulate

from energy_bench.runs.thresholds import recommendation_for

REPO = Path(__file__).resolve().parents[2]
#: seconds one call of the loop should take
LOOP_SECONDS = 0.017
#: the controlled change: 20 % more work
HEAVIER = 1.2
#: thresholds when --energy-field-fail is not given: the docs' recommendation for estimated joules (the table
#: docs/gate.md renders from energy_bench.runs.thresholds)
DEFAULT_FAIL = recommendation_for("estimate").thresholds
#: a session that hangs must not hang the field run
SESSION_TIMEOUT = 1800
STUDY_ARGS = [
    "benchmarks/test_compression.py",
    "--energy-models=resnet18,alexnet",
    "--energy-compressors=baseline,prune",
]
STUDY_STEPS = 5

LOOP_TEST = """
N = {n}


def loop():
    total = 0
    for i in range(N):
        total += i * i
    return total


def test_loop(energy):
    energy(loop)
"""


def loop_size(seconds: float = LOOP_SECONDS) -> int:
    """Iterations of ``i * i`` summing that take about ``seconds`` here (best of five timings)."""
    n = 200_000
    best = min(_time_loop(n) for _ in range(5))
    return max(1000, round(n * seconds / best))


def _time_loop(n: int) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i
    return time.perf_counter() - start


@pytest.fixture(autouse=True)
def no_stack_dumps():
    """Cancel pytest's faulthandler timer, armed before setup: a field benchmark runs past 5 minutes by design, and
    a stack dump in its output would read like a hang."""
    faulthandler.cancel_dump_traceback_later()


#: a session run from the repository reads its faulthandler_timeout too, and a study session runs as long
NO_FAULTHANDLER = ("-o", "faulthandler_timeout=0")


def session(args, cwd: Path, env: dict[str, str] | None = None, module: str = "pytest") -> subprocess.CompletedProcess:
    """One new Python process: ``python -m pytest ...`` (or another module), outcome checked by the caller."""
    extra = NO_FAULTHANDLER if module == "pytest" else ()
    command = [sys.executable, "-m", module, *extra, *args]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=SESSION_TIMEOUT
    )


#: what the gate said in each session it failed: "what" -> regression lines (kept in extra_info for diagnosis)
FAILED_LINES: dict[str, list[str]] = {}


def gate_outcome(done: subprocess.CompletedProcess, what: str) -> bool:
    """True when the gate failed the session (exit 1 naming regressions), False when it passed; anything else (a
    failed test, a usage error) fails the benchmark."""
    if done.returncode not in (0, 1) or (done.returncode == 1 and "regression(s)" not in done.stdout):
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        pytest.fail(f"{what}: exit {done.returncode}\n{tail}", pytrace=False)
    if done.returncode == 1:
        FAILED_LINES[what] = _regressions(done).splitlines()
    return done.returncode == 1


def settings(config: pytest.Config) -> tuple[int, int, str]:
    reruns = config.getoption("energy_field_reruns")
    baselines = config.getoption("energy_field_baselines")
    if reruns < 1 or baselines < 1:
        raise pytest.UsageError("--energy-field-reruns and --energy-field-baselines must be at least 1")
    return reruns, baselines, config.getoption("energy_field_fail") or DEFAULT_FAIL


def report(benchmark, title: str, rows: list[dict], seconds: float) -> None:
    benchmark.extra_info["rows"] = rows
    benchmark.extra_info["seconds"] = seconds
    benchmark.extra_info["failed_sessions"] = dict(FAILED_LINES)
    print(f"\n{title} ({seconds / 60:.1f} min)")
    print(tabulate([list(r.values()) for r in rows], headers=list(rows[0]), tablefmt="github", disable_numparse=True))
    for what, lines in FAILED_LINES.items():
        print(f"{what}: the gate failed it", *(f"  {line.strip()}" for line in lines), sep="\n")
    FAILED_LINES.clear()


def rates(name: str, unchanged: list[bool], heavier: list[bool]) -> list[dict]:
    return [
        {"scenario": f"{name}: unchanged", "runs": len(unchanged), "failed": sum(unchanged),
         "rate": f"{sum(unchanged) / len(unchanged):.0%}"},
        {"scenario": f"{name}: 20% heavier", "runs": len(heavier), "failed": sum(heavier),
         "rate": f"{sum(heavier) / len(heavier):.0%}"},
    ]  # fmt: skip


def outcome_counts(unchanged: list[bool], heavier: list[bool]) -> dict[str, float]:
    """False alarms among the unchanged reruns and detections among the heavier ones, as counts and rates."""
    return {
        "false_alarms": sum(unchanged),
        "false_alarm_rate": sum(unchanged) / len(unchanged),
        "caught": sum(heavier),
        "detection_rate": sum(heavier) / len(heavier),
    }


def check_targets(unchanged: list[bool], heavier: list[bool]) -> None:
    assert sum(unchanged) <= 1, f"{sum(unchanged)} of {len(unchanged)} unchanged reruns failed the gate"
    missed = len(heavier) - sum(heavier)
    assert missed <= 1, f"{missed} of {len(heavier)} reruns of a 20% heavier loop passed the gate"


# ---------------------------------------------------------------------------- (a) pooled baselines


def test_field_gate_pooled(benchmark, tmp_path, pytestconfig):
    reruns, baselines, fail = settings(pytestconfig)
    n = loop_size()
    light, heavy = LOOP_TEST.format(n=n), LOOP_TEST.format(n=round(n * HEAVIER))
    test_file = tmp_path / "test_loop.py"
    started = time.perf_counter()

    def run():
        test_file.write_text(light)
        for i in range(baselines):
            done = session(["-p", "no:cacheprovider", "--benchmark-autosave", "test_loop.py"], tmp_path)
            assert done.returncode == 0, f"baseline session {i + 1} failed:\n{done.stdout[-3000:]}"
        gate = ["-p", "no:cacheprovider", f"--energy-compare=last:{baselines}", f"--energy-compare-fail={fail}"]
        unchanged, heavier = [], []
        for i in range(reruns):  # interleaved, so both kinds of rerun see the same hours of the machine
            test_file.write_text(light)
            unchanged.append(gate_outcome(session([*gate, "test_loop.py"], tmp_path), f"unchanged rerun {i + 1}"))
            test_file.write_text(heavy)
            heavier.append(gate_outcome(session([*gate, "test_loop.py"], tmp_path), f"heavier rerun {i + 1}"))
        return unchanged, heavier

    unchanged, heavier = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(
        loop_iterations=n, baselines=baselines, thresholds=fail, **outcome_counts(unchanged, heavier)
    )
    title = f"field: ~17 ms loop, --energy-compare=last:{baselines} --energy-compare-fail={fail}"
    report(benchmark, title, rates("last:K", unchanged, heavier), time.perf_counter() - started)
    check_targets(unchanged, heavier)


# ---------------------------------------------------------------------------- (b) energy-bench ab


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def loop_repo(path: Path, n: int) -> tuple[str, str, str]:
    """A git repository with three commits: the loop, an unchanged commit, and the loop 20 % heavier."""
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.email", "field@example.invalid")
    git(path, "config", "user.name", "field")
    commits = []
    for message, size, note in (("base", n, ""), ("unchanged", n, "no code change\n"), ("heavier", HEAVIER * n, "")):
        (path / "test_loop.py").write_text(LOOP_TEST.format(n=round(size)))
        (path / "NOTES.txt").write_text(note)
        git(path, "add", "-A")
        git(path, "commit", "-q", "--allow-empty", "-m", message)
        commits.append(git(path, "rev-parse", "HEAD"))
    return commits[0], commits[1], commits[2]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_field_ab(benchmark, tmp_path, pytestconfig):
    reruns, _, fail = settings(pytestconfig)
    n = loop_size()
    repo = tmp_path / "repo"
    base, unchanged_commit, heavier_commit = loop_repo(repo, n)
    started = time.perf_counter()

    def ab(head: str, what: str) -> bool:
        args = ["ab", base, head, "--fail", fail, "--", "-p", "no:cacheprovider", "test_loop.py"]
        return gate_outcome(session(args, repo, module="energy_bench.cli"), what)

    def run():
        unchanged, heavier = [], []
        for i in range(reruns):
            unchanged.append(ab(unchanged_commit, f"unchanged A/B {i + 1}"))
            heavier.append(ab(heavier_commit, f"heavier A/B {i + 1}"))
        return unchanged, heavier

    unchanged, heavier = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(loop_iterations=n, thresholds=fail, **outcome_counts(unchanged, heavier))
    report(benchmark, f"field: ~17 ms loop, energy-bench ab --fail {fail}", rates("ab", unchanged, heavier),
           time.perf_counter() - started)  # fmt: skip
    check_targets(unchanged, heavier)


# ---------------------------------------------------------------------------- (c) the study subset


def flagged(done: subprocess.CompletedProcess, kind: str) -> list[str]:
    """Benchmarks of ``kind`` (test_train, test_inference) the gate flagged on joules."""
    pattern = re.compile(rf"^\s+REGRESSION (\S*::{kind}\[[^\]]+\]): joules ")
    return [m.group(1) for line in done.stdout.splitlines() if (m := pattern.match(line))]


def test_field_study(benchmark, tmp_path, pytestconfig):
    _, baselines, fail = settings(pytestconfig)
    storage = f"--benchmark-storage=file://{tmp_path / 'storage'}"
    env = {**os.environ, "ENERGY_BENCH_TRAIN_STEPS": str(STUDY_STEPS)}
    heavier_env = {**env, "ENERGY_BENCH_TRAIN_STEPS": str(STUDY_STEPS + 1)}
    gate = [f"--energy-compare=last:{baselines}", f"--energy-compare-fail={fail}"]
    started = time.perf_counter()

    def run():
        for i in range(baselines):
            done = session(["-p", "no:cacheprovider", *STUDY_ARGS, storage, "--benchmark-autosave"], REPO, env)
            assert done.returncode == 0, f"baseline study session {i + 1} failed:\n{done.stdout[-3000:]}"
        unchanged = session(["-p", "no:cacheprovider", *STUDY_ARGS, storage, *gate], REPO, env)
        heavier = session(["-p", "no:cacheprovider", *STUDY_ARGS, storage, *gate], REPO, heavier_env)
        return unchanged, heavier

    unchanged, heavier = benchmark.pedantic(run, rounds=1, iterations=1)
    unchanged_failed = gate_outcome(unchanged, "unchanged study session")
    heavier_failed = gate_outcome(heavier, "heavier study session")
    rows = [
        {"session": "unchanged", "exit": unchanged.returncode, "train flagged": len(flagged(unchanged, "test_train")),
         "inference flagged": len(flagged(unchanged, "test_inference"))},
        {"session": f"training rounds {STUDY_STEPS} -> {STUDY_STEPS + 1} steps", "exit": heavier.returncode,
         "train flagged": len(flagged(heavier, "test_train")),
         "inference flagged": len(flagged(heavier, "test_inference"))},
    ]  # fmt: skip
    benchmark.extra_info.update(baselines=baselines, thresholds=fail, sessions=rows)
    report(benchmark, f"field: study subset, last:{baselines}, {fail}", rows, time.perf_counter() - started)
    assert not unchanged_failed, "the unchanged study session failed the gate:\n" + _regressions(unchanged)
    assert heavier_failed and flagged(heavier, "test_train"), "20% heavier training rounds passed the gate"


def _regressions(done: subprocess.CompletedProcess) -> str:
    """The gate's regression lines (pytest) or the report's (energy-bench ab markdown and table)."""

    def said(line: str) -> bool:
        line = line.strip()
        return (
            line.startswith(("REGRESSION ", "energy-bench: compared"))
            or "regression(s) in" in line
            or (line.startswith("- ") and ", limit " in line)
        )

    return "\n".join(line for line in done.stdout.splitlines() if said(line))
