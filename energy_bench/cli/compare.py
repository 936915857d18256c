"""``energy-bench compare``: saved runs against a baseline, or their history (``report`` is in :mod:`.report`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from energy_bench.runs import formats
from energy_bench.runs.compare import (
    ALPHA,
    DEFAULT_THRESHOLDS,
    ThresholdError,
    compare_records,
    compatibility_problems,
    parse_thresholds,
)
from energy_bench.runs.parse import RunLoadError, SavedRun, load_run_file, load_runs
from energy_bench.runs.pool import pooled_run
from energy_bench.runs.store import HistorySpec, parse_history_spec
from energy_bench.runs.store.files import DEFAULT_STORAGE, RunNotFound, RunSpecError, Storage, parse_last
from energy_bench.runs.text import printable

EPILOG = """examples:
  energy-bench compare                      the last two runs saved on this machine
  energy-bench compare 3 7                  runs 0003 and 0007 (the first is the baseline)
  energy-bench compare base.json 1a2b3c     a file and a commit prefix
  energy-bench compare --baseline last:5    the latest run against the 5 runs saved before it, pooled
  energy-bench compare --baseline history:last:5 history:latest   the same, from the history store
  energy-bench compare last:5 9             run 0009 against the 5 runs saved before it (same thing)
  energy-bench compare --fail joules:5%,accuracy:1pt --format markdown >> "$GITHUB_STEP_SUMMARY"
  energy-bench compare --history            every benchmark's trend over all saved runs
"""


def parse_threshold_option(text: str) -> tuple:
    try:
        return parse_thresholds(text)
    except ThresholdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def add_storage_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--storage",
        "-s",
        default=DEFAULT_STORAGE,
        metavar="URI",
        help=f"pytest-benchmark storage: file://PATH or PATH (default {DEFAULT_STORAGE})",
    )
    sub.add_argument(
        "--machine-id",
        default=None,
        help="machine folder inside the storage (default: this machine's, as pytest-benchmark names it)",
    )


def add_parser(commands) -> None:
    compare = commands.add_parser(
        "compare",
        help="compare saved runs (joules, time, accuracy)",
        description="Compare saved runs; the first run is the baseline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="run number, JSON file or commit prefix (default: the last two on this machine); a first RUN of "
        "last:N is the same as --baseline last:N",
    )
    add_storage_options(compare)
    compare.add_argument(
        "--baseline",
        metavar="SPEC",
        help="the baseline: last:N (the N runs saved before the first RUN, pooled: the test then sees how much "
        "whole runs differ) or one run; the RUNs (default: the latest) are each compared with it",
    )
    compare.add_argument("--format", choices=formats.FORMATS, default="table", help="output format (default table)")
    compare.add_argument(
        "--fail",
        type=parse_threshold_option,
        metavar="EXPR[,EXPR...]",
        help="exit 1 on a regression beyond these thresholds, e.g. joules:5%%,accuracy:1pt,joules_to_target:10%% "
        "(threshold AND a significance test: between runs with a pooled baseline, else between rounds)",
    )
    compare.add_argument("--alpha", type=parse_alpha, default=ALPHA, help=f"significance level (default {ALPHA})")
    compare.add_argument(
        "--force", action="store_true", help="compare even measured with estimated energy, or different meters/devices"
    )
    compare.add_argument(
        "--history",
        action="store_true",
        help="each benchmark's trend over all saved runs (or the RUNs given), in commit order",
    )
    compare.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="the history store that history:... specs read (default: $ENERGY_BENCH_HISTORY, else history.sqlite "
        "in --storage)",
    )
    compare.add_argument(
        "--branch", default=None, help="history:last:N: runs of this branch (default: the checkout's branch)"
    )
    compare.set_defaults(handler=run_compare, subparser=compare)


def open_storage(args: argparse.Namespace) -> Storage:
    try:
        return Storage.from_uri(args.storage, args.machine_id)
    except ValueError as exc:
        args.subparser.error(str(exc))


def skipped(message: str) -> None:
    print(f"energy-bench: skipped {message}", file=sys.stderr)


def load_from_store(args: argparse.Namespace, spec: HistorySpec, before: str | None = None) -> list[SavedRun]:
    """``history:last:N`` (this machine's N newest runs on the branch, before ``before``) or ``history:RUN``."""
    import os

    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info
    from pytest_benchmark.utils import get_commit_info

    from energy_bench.runs.store import ENV_VAR, StoreError, open_store
    from energy_bench.runs.store.keys import machine_fingerprint

    try:
        store = open_store(args.store or os.environ.get(ENV_VAR) or None, args.storage)
    except StoreError as exc:
        args.subparser.error(printable(str(exc)))
    machine = machine_fingerprint(pytest_benchmark_generate_machine_info())
    branch = args.branch or get_commit_info().get("branch")
    branch = None if branch == "(unknown)" else branch
    try:
        if spec.last is None:
            return [store.find(spec.run)]
        runs = store.last(spec.last, machine=machine, branch=branch, before=before)
    except (StoreError, RunNotFound) as exc:
        args.subparser.error(printable(str(exc)))
    finally:
        store.close()
    if not runs:
        args.subparser.error(f"{spec.text}: no run of this machine on branch {branch!r} in {store.display_url}")
    return runs


def load_specs(parser: argparse.ArgumentParser, storage: Storage, specs: Sequence[str], args=None) -> list[SavedRun]:
    """The runs named by ``specs``; a spec that names nothing is a usage error, an unreadable file is skipped."""
    runs = []
    for spec in specs:
        try:
            history_spec = parse_history_spec(spec)
        except RunSpecError as exc:
            parser.error(str(exc))
        if history_spec is not None and args is not None:
            runs += load_from_store(args, history_spec)
            continue
        try:
            path = storage.find(spec)
        except RunNotFound as exc:
            parser.error(str(exc))
        try:
            runs.append(load_run_file(path))
        except RunLoadError as exc:
            skipped(str(exc))
    return runs


def split_baseline(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """The baseline spec (``--baseline``, or a first RUN of ``last:N``) and the other RUNs."""
    specs = list(args.runs)
    baseline = args.baseline
    if specs and specs[0].startswith(("last:", "history:last:")):
        if baseline is not None:
            args.subparser.error(f"two baselines: --baseline {baseline} and {specs[0]}")
        baseline = specs.pop(0)
    if baseline is not None and args.history:
        args.subparser.error("--baseline and last:N do not apply to --history")
    return baseline, specs


def load_pool(
    args: argparse.Namespace, storage: Storage, spec: str, currents: list[SavedRun]
) -> tuple[list[SavedRun], list[str]]:
    """The baseline runs of ``spec`` (the N runs saved before the first current run for last:N, or one run) and
    a note when fewer than N were found."""
    parser = args.subparser
    try:
        history_spec = parse_history_spec(spec)
        count = parse_last(spec)
    except RunSpecError as exc:
        parser.error(str(exc))
    if history_spec is not None:
        pool = load_from_store(args, history_spec, before=currents[0].label if currents else None)
        if history_spec.last is not None and len(pool) < history_spec.last:
            return pool, [f"{spec}: only {len(pool)} run(s) of this machine in the history; pooled those"]
        return pool, []
    if count is None:
        pool = load_specs(parser, storage, [spec])
        if not pool:
            parser.error(f"{spec}: not a readable run")
        return pool, []
    pool = storage.load_last(count, skipped, before=currents[0].path if currents else None)
    if not pool:
        parser.error(f"no readable run saved before {currents[0].label} in {storage.folder} for {spec}")
    if len(pool) < count:
        return pool, [f"{spec}: only {len(pool)} readable run(s) saved before {currents[0].label}; pooled those"]
    return pool, []


def check_comparable(args: argparse.Namespace, pool: list[SavedRun], currents: list[SavedRun]) -> list[str]:
    """Usage error when runs are not comparable (without --force); with --force, notes on what was forced."""
    forced = []
    for run in currents:
        for base in pool:
            problems = compatibility_problems(base.benchmarks, run.benchmarks, base.machine_energy, run.machine_energy)
            if problems and not args.force:
                args.subparser.error(
                    f"refusing to compare {run.label} with {base.label}: {'; '.join(problems)} "
                    "(use --force to compare anyway)"
                )
            forced += [f"forced despite: {p}" for p in problems]
    return list(dict.fromkeys(forced))


def run_compare(args: argparse.Namespace) -> int:
    parser = args.subparser
    storage = open_storage(args)
    baseline_spec, specs = split_baseline(args)
    if baseline_spec is not None:
        currents = load_specs(parser, storage, specs or ["latest"], args)
        if not currents:
            parser.error("no readable run to compare with the baseline")
        pool, notes = load_pool(args, storage, baseline_spec, currents)
        return report_compare(args, pool, currents, notes)
    runs = load_specs(parser, storage, specs) if specs else load_runs(storage.run_files(), skipped)
    if args.history:
        if not runs:
            parser.error(f"no readable saved runs in {storage.folder}")
        runs.sort(key=lambda run: run.order_key)
        print(formats.render_history(runs, args.format, [note for run in runs for note in run.notes]), end="")
        return 0
    if not specs:
        runs = runs[-2:]
    if len(runs) < 2:
        where = "given" if specs else f"in {storage.folder}"
        parser.error(f"need two readable runs to compare, found {len(runs)} {where}")
    return report_compare(args, runs[:1], runs[1:])


def report_compare(
    args: argparse.Namespace, pool: list[SavedRun], currents: list[SavedRun], notes: Sequence[str] = ()
) -> int:
    """Each current run against the baseline (one run, or several pooled); print the report, return the exit code."""
    forced = check_comparable(args, pool, currents)
    thresholds = args.fail or parse_thresholds(DEFAULT_THRESHOLDS)
    report = formats.CompareReport(
        runs=[pooled_run(pool), *currents],
        comparisons=[
            compare_records([base.benchmarks for base in pool], run.benchmarks, thresholds, args.alpha)
            for run in currents
        ],
        thresholds=thresholds,
        gating=bool(args.fail),
        alpha=args.alpha,
        notes=(*notes, *[note for run in [*pool, *currents] for note in run.notes], *forced),
        baseline_runs=len(pool),
    )
    print(formats.render_compare(report, args.format), end="")
    return 1 if args.fail and report.regressions else 0
