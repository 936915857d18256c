"""``energy-bench compare`` (saved runs against a baseline, or their history) and ``energy-bench report`` (one run)."""

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
from energy_bench.runs.storage import (
    DEFAULT_STORAGE,
    RunLoadError,
    RunNotFound,
    SavedRun,
    Storage,
    load_run_file,
    load_runs,
)

EPILOG = """examples:
  energy-bench compare                      the last two runs saved on this machine
  energy-bench compare 3 7                  runs 0003 and 0007 (the first is the baseline)
  energy-bench compare base.json 1a2b3c     a file and a commit prefix
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
        help="run number, JSON file or commit prefix (default: the last two on this machine)",
    )
    add_storage_options(compare)
    compare.add_argument("--format", choices=formats.FORMATS, default="table", help="output format (default table)")
    compare.add_argument(
        "--fail",
        type=parse_threshold_option,
        metavar="EXPR[,EXPR...]",
        help="exit 1 on a regression beyond these thresholds, e.g. joules:5%%,accuracy:1pt "
        "(threshold AND one-sided Mann-Whitney U test)",
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
    compare.set_defaults(handler=run_compare, subparser=compare)

    report = commands.add_parser("report", help="energy table of one saved run")
    report.add_argument(
        "run",
        nargs="?",
        default="latest",
        metavar="RUN",
        help="run number, JSON file or commit prefix (default: the latest on this machine)",
    )
    add_storage_options(report)
    report.add_argument("--format", choices=formats.FORMATS, default="table", help="output format (default table)")
    report.set_defaults(handler=run_report, subparser=report)


def open_storage(args: argparse.Namespace) -> Storage:
    try:
        return Storage.from_uri(args.storage, args.machine_id)
    except ValueError as exc:
        args.subparser.error(str(exc))


def skipped(message: str) -> None:
    print(f"energy-bench: skipped {message}", file=sys.stderr)


def load_specs(parser: argparse.ArgumentParser, storage: Storage, specs: Sequence[str]) -> list[SavedRun]:
    """The runs named by ``specs``; a spec that names nothing is a usage error, an unreadable file is skipped."""
    runs = []
    for spec in specs:
        try:
            path = storage.find(spec)
        except RunNotFound as exc:
            parser.error(str(exc))
        try:
            runs.append(load_run_file(path))
        except RunLoadError as exc:
            skipped(str(exc))
    return runs


def run_report(args: argparse.Namespace) -> int:
    storage = open_storage(args)
    runs = load_specs(args.subparser, storage, [args.run])
    if not runs:
        args.subparser.error(f"{args.run}: not a readable run")
    print(formats.render_report(runs[0], args.format), end="")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    parser = args.subparser
    storage = open_storage(args)
    runs = load_specs(parser, storage, args.runs) if args.runs else load_runs(storage.run_files(), skipped)
    notes = [note for run in runs for note in run.notes]
    if args.history:
        if not runs:
            parser.error(f"no readable saved runs in {storage.folder}")
        runs.sort(key=lambda run: run.order_key)
        print(formats.render_history(runs, args.format, notes), end="")
        return 0
    if not args.runs:
        runs = runs[-2:]
        notes = [note for run in runs for note in run.notes]
    if len(runs) < 2:
        where = "given" if args.runs else f"in {storage.folder}"
        parser.error(f"need two readable runs to compare, found {len(runs)} {where}")
    baseline = runs[0]
    if not args.force:
        for run in runs[1:]:
            problems = compatibility_problems(
                baseline.benchmarks, run.benchmarks, baseline.machine_energy, run.machine_energy
            )
            if problems:
                parser.error(
                    f"refusing to compare {run.label} with {baseline.label}: {'; '.join(problems)} "
                    "(use --force to compare anyway)"
                )
    thresholds = args.fail or parse_thresholds(DEFAULT_THRESHOLDS)
    report = formats.CompareReport(
        runs=runs,
        comparisons=[compare_records(baseline.benchmarks, run.benchmarks, thresholds, args.alpha) for run in runs[1:]],
        thresholds=thresholds,
        gating=bool(args.fail),
        alpha=args.alpha,
        notes=tuple(notes),
    )
    print(formats.render_compare(report, args.format), end="")
    return 1 if args.fail and report.regressions else 0
